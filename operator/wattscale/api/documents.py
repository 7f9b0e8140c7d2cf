"""Read YAML documents from a file with bounds: size, nesting, alias expansion, text encoding.

`wattscale validate` and `wattscale signals read` read files a person hands them. Whatever those
files hold, reading them ends in the documents or in one :class:`DocumentError` line, never in a
traceback and never in unbounded work: the file is read up to the API server's request limit, the
YAML event stream is checked for depth and for expanded size (anchors and aliases counted as
copies, so a "billion laughs" file is refused before it is built) before any object is
constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 3 * 1024 * 1024
"""The API server refuses request bodies over 3 MiB; nothing valid is larger."""

MAX_DEPTH = 64
"""Nesting of mappings and sequences; a wattscale object is about 6 deep."""

MAX_NODES = 200_000
"""Scalars, mappings and sequences after expanding aliases."""


class DocumentError(ValueError):
    """A file that cannot be read as YAML documents; the message is one line."""


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """The file's text: at most ``limit`` bytes of UTF-8, else a one-line DocumentError."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise DocumentError(f"{path}: cannot read ({err.strerror or type(err).__name__})") from None
    if len(data) > limit:
        raise DocumentError(f"{path}: larger than {limit // (1024 * 1024)} MiB")
    return decode_utf8(data, str(path))


def decode_utf8(data: bytes, where: str) -> str:
    """UTF-8 text without NUL bytes, else a one-line DocumentError naming the offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DocumentError(
            f"{where}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise DocumentError(f"{where}: binary data (a NUL byte at offset {nul}), not text")
    return text


def _yaml_line(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML{where}: {problem}"


def check_shape(text: str, where: str) -> None:
    """Refuse YAML nested deeper than MAX_DEPTH or expanding to more than MAX_NODES nodes."""
    depth = 0
    stack: list[list[Any]] = []  # per open collection: [anchor, nodes inside so far]
    sizes: dict[str, int] = {}
    total = 0

    def add(count: int) -> None:
        nonlocal total
        total += count
        if stack:
            stack[-1][1] += count
        if total > MAX_NODES:
            raise DocumentError(f"{where}: more than {MAX_NODES} YAML nodes (aliases expanded)")

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise DocumentError(f"{where}: nested deeper than {MAX_DEPTH} levels")
                stack.append([event.anchor, 1])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
                anchor, count = stack.pop()
                if anchor:
                    sizes[anchor] = count
                add(count)
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor:
                    sizes[event.anchor] = 1
                add(1)
            elif isinstance(event, yaml.AliasEvent):
                add(sizes.get(event.anchor or "", 1))
    except yaml.YAMLError as err:
        raise DocumentError(f"{where}: {_yaml_line(err)}") from None


def parse_documents(text: str, where: str) -> list[Any]:
    """The non-empty documents of ``text``, after :func:`check_shape`."""
    check_shape(text, where)
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise DocumentError(f"{where}: {_yaml_line(err)}") from None
    except (ValueError, OverflowError) as err:
        # PyYAML builds ints, floats and timestamps with Python's constructors: a 5,000-digit
        # integer or 2024-13-45 raise ValueError there, not YAMLError.
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DocumentError(f"{where}: not valid YAML: a value cannot be read ({first})") from None


def read_documents(path: Path) -> list[Any]:
    """The non-empty YAML documents of a file, bounded; one-line DocumentError otherwise."""
    return parse_documents(read_text(path), str(path))
