"""Turn a pydantic ValidationError into one readable line per problem, never a traceback.

``spec.slo.maxReplicas: must be >= minReplicas (got 0 < 1)`` is the shape: the field's path as a
user writes it in YAML, then what is wrong and what was given.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from wattscale.api.common import PATTERN_WORDS

_SHORT = 40


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union[")):
            continue  # pydantic's internal validator names are noise to a user
        else:
            out += ("." if out else "") + part
    return out


def _describe(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    given = err.get("input")
    simple = {
        "missing": "required field is missing",
        "extra_forbidden": "unknown field (check the spelling; see `kubectl explain`)",
        "string_type": f"must be a string (got {_got(given)})",
        "int_type": f"must be an integer (got {_got(given)})",
        "int_parsing": f"must be an integer (got {_got(given)})",
        "int_from_float": f"must be a whole number (got {_got(given)})",
        "int_parsing_size": f"must be a whole number within int64 (got {_got(given)})",
        "bool_type": f"must be true or false (got {_got(given)})",
        "bool_parsing": f"must be true or false (got {_got(given)})",
        "list_type": f"must be a list (got {_got(given)})",
        "model_type": f"must be an object with fields (got {_got(given)})",
        "dict_type": f"must be an object with fields (got {_got(given)})",
        "float_type": f"must be a number (got {_got(given)})",
        "float_parsing": f"must be a number (got {_got(given)})",
        "datetime_type": f"must be an RFC 3339 time (got {_got(given)})",
        "datetime_parsing": f"must be an RFC 3339 time (got {_got(given)})",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than_equal": ("must be >=", "ge"),
        "greater_than": ("must be >", "gt"),
        "less_than_equal": ("must be <=", "le"),
        "less_than": ("must be <", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {ctx.get(key)} (got {_got(given)})"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"must be at least {ctx.get('min_length')} characters (got {_got(given)})"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return "must have at least one item"
        return f"must have at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "string_pattern_mismatch":
        meaning = PATTERN_WORDS.get(str(ctx.get("pattern")))
        if meaning:
            return f"must be {meaning} (got {_got(given)})"
        return f"must match {ctx.get('pattern')} (got {_got(given)})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_got(given)})"
    discriminator = str(ctx.get("discriminator", "")).strip("'")
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags")
        return f"{discriminator} must be one of {expected} (got {_got(ctx.get('tag'))})"
    if kind == "union_tag_not_found":
        return f"{discriminator} is required"
    if kind == "wattscale_rule":
        return str(ctx.get("message"))
    message = err["msg"]
    return message[0].lower() + message[1:] if message else kind


def format_errors(error: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: ``<field path>: <what is wrong (got ...)>``."""
    lines = []
    for err in error.errors(include_url=False):
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        field = ctx.get("field") if err["type"] == "wattscale_rule" else None
        if field:
            loc = (*loc, *str(field).split("."))
        path = _path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        lines.append(f"{path}: {_describe(err)}" if path else _describe(err))
    return lines
