"""Bad input for the three commands a person feeds files to: validate, simulate, signals read.

Each case writes its files into an empty directory, runs one command line there and names the
words the one error line must hold. The corpus test (tests/unit/cli/test_bad_input_corpus.py)
runs every case in-process and checks: a non-zero exit, no traceback, exactly one error line
holding those words, and a bounded peak of allocated memory. The API objects of
``tests/cases/malformed.py`` join the corpus as `validate` cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.cases.malformed import CASES as OBJECT_CASES
from tests.cases.malformed import example
from wattscale.data import SAMPLE_DIR

Argv = Callable[[Path], list[str]]


@dataclass(frozen=True)
class BadInput:
    name: str
    command: str  # validate | simulate | signals
    argv: Argv  # the command line, given the directory the files were written to
    says: str  # words the one error line holds
    files: dict[str, bytes] = field(default_factory=dict)  # "{d}" in them: the directory

    def write(self, directory: Path) -> list[str]:
        """Write the files into ``directory``; the command line to run there."""
        for rel, content in self.files.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.replace(b"{d}", str(directory).encode()))
        return self.argv(directory)


def _validate(name: str, content: bytes, says: str) -> BadInput:
    return BadInput(
        name, "validate", lambda d: ["validate", str(d / "in.yaml")], says, {"in.yaml": content}
    )


def _nest(depth: int) -> bytes:
    return b"spec: " + b"[" * depth + b"]" * depth + b"\n"


def _laughs() -> bytes:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for k in range(1, 10):
        prev = f"*a{k - 1}"
        lines.append(f"a{k}: &a{k} [{', '.join([prev] * 10)}]")
    return ("\n".join(lines) + "\n").encode()


_ID = example("InferenceDeployment")
VALIDATE: list[BadInput] = [
    _validate("empty_file", b"", "no objects"),
    _validate("only_document_markers", b"---\n---\n", "no objects"),
    _validate("only_comments", b"# nothing here\n", "no objects"),
    _validate("latin1_bytes", "model: caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
    _validate("utf16_file", yaml.safe_dump(_ID).encode("utf-16"), "not UTF-8 text"),
    _validate("nul_bytes", b"apiVersion: v1\x00\x00\n", "binary data"),
    _validate("png_header", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"),
    _validate("nesting_20000_deep", _nest(20_000), "nested deeper than 64 levels"),
    _validate("billion_laughs", _laughs(), "YAML nodes (aliases expanded)"),
    _validate("larger_than_3_mib", b"# " + b"x" * (3 * 2**20) + b"\n", "larger than 3 MiB"),
    _validate("unclosed_flow", b"spec: [unclosed\n", "not valid YAML at line 2"),
    _validate("tab_indent", b"spec:\n\tslo: 1\n", "not valid YAML at line 2"),
    _validate("int_of_5000_digits", b"spec: " + b"9" * 5000 + b"\n", "a value cannot be read"),
    _validate("impossible_timestamp", b"when: 2024-13-45\n", "a value cannot be read"),
    _validate("a_list_not_an_object", b"- 1\n- 2\n", "must be a mapping"),
    _validate("a_scalar_document", b"just words\n", "must be a mapping"),
    _validate("unknown_kind", b"apiVersion: wattscale.io/v1alpha1\nkind: Pod\n", "kind: must be"),
    _validate("wrong_api_version", b"apiVersion: v1\nkind: Region\n", "apiVersion: must be"),
    _validate(
        "metadata_a_string",
        json.dumps({**_ID, "metadata": "llama"}).encode(),
        "metadata: must be an object with fields",
    ),
    _validate(
        "spec_a_list",
        json.dumps({**_ID, "spec": [1, 2]}).encode(),
        "spec: must be an object with fields",
    ),
    _validate(
        "infinite_replicas",
        yaml.safe_dump(_ID).replace("maxReplicas: 12", "maxReplicas: .inf").encode(),
        "spec.slo.maxReplicas",
    ),
    BadInput(
        "missing_file", "validate", lambda d: ["validate", str(d / "nope.yaml")], "cannot read"
    ),
    BadInput("a_directory", "validate", lambda d: ["validate", str(d)], "cannot read"),
]
VALIDATE += [
    _validate(f"object_{c.name}", yaml.safe_dump(c.doc).encode(), c.problem) for c in OBJECT_CASES
]


# ------------------------------------------------------------------------------- simulate


def _sim(name: str, extra: list[str], says: str, files: dict[str, bytes] | None = None) -> BadInput:
    def argv(d: Path) -> list[str]:
        return ["simulate", "--no-progress", *[a.replace("{d}", str(d)) for a in extra]]

    return BadInput(name, "simulate", argv, says, files or {})


def _sample(region: str, kind: str = "prices") -> bytes:
    return (SAMPLE_DIR / kind / f"{region}.csv").read_bytes()


def _prices(content: bytes) -> dict[str, bytes]:
    """A prices dir whose US-CAL-CISO file is `content`, the other sample regions intact."""
    files = {f"p/{r}.csv": _sample(r) for r in ("US-TEX-ERCO", "US-MIDA-PJM")}
    files["p/US-CAL-CISO.csv"] = content
    files.update({f"c/{r}.csv": _sample(r, "carbon") for r in ("US-TEX-ERCO", "US-MIDA-PJM")})
    return files


def _duplicated_hour() -> bytes:
    lines = _sample("US-CAL-CISO").decode().splitlines(keepends=True)
    return "".join([*lines[:50], lines[49], *lines[50:]]).encode()


_DIRS = ["--prices-dir", "{d}/p", "--carbon-dir", "{d}/c"]
SIMULATE: list[BadInput] = [
    _sim("days_1e9", ["--days", "1e9"], "--days must be > 0 and at most 731"),
    _sim("days_nan", ["--days", "nan"], "--days must be > 0"),
    _sim("days_negative", ["--days", "-3"], "--days must be > 0"),
    _sim("days_not_a_number", ["--days", "three"], "invalid float value"),
    _sim(
        "cold_start_1e12",
        ["--cold-start-seconds", "1000000000000"],
        "--cold-start-seconds must be between 0 and 3600",
    ),
    _sim("cold_start_float_text", ["--cold-start-seconds", "1e12"], "invalid int value"),
    _sim(
        "peak_replicas_1e11",
        ["--peak-replicas", "100000000000"],
        "--peak-replicas must be between 1 and 10000",
    ),
    _sim("peak_replicas_zero", ["--peak-replicas", "0"], "--peak-replicas must be between 1"),
    _sim("tz_offset_nan", ["--trace-tz-offset-hours", "nan"], "--trace-tz-offset-hours must be"),
    _sim(
        "tz_offset_1e308", ["--trace-tz-offset-hours", "1e308"], "--trace-tz-offset-hours must be"
    ),
    _sim("gpu_hour_cost_inf", ["--gpu-hour-cost", "inf"], "--gpu-hour-cost must be between"),
    _sim("quota_huge", ["--quota-per-region", "100000000000"], "--quota-per-region must be"),
    _sim("max_gap_huge", ["--max-gap-hours", "1000000000000"], "--max-gap-hours must be between"),
    _sim("start_not_a_date", ["--start", "yesterday"], "is not a date YYYY-MM-DD"),
    _sim("start_at_the_end_of_time", ["--start", "9999-12-30"], "past the year 9999"),
    _sim("region_with_a_path", ["--regions", "../../etc/passwd"], "is not a region name"),
    _sim("regions_empty", ["--regions", ","], "--regions is empty"),
    _sim("unknown_policy", ["--policies", "magic"], "magic"),
    _sim(
        "binary_trace",
        ["--trace", "{d}/t.csv"],
        "not UTF-8 text",
        {"t.csv": b"\xff\xd8\xff\xe0JFIF\x00\x01" * 64},
    ),
    _sim(
        "trace_with_nul",
        ["--trace", "{d}/t.csv"],
        "is not a number",
        {"t.csv": b"t_start_s,rate_rps\n0,1\x00\n"},
    ),
    _sim(
        "trace_field_200kb",
        ["--trace", "{d}/t.csv"],
        "not a CSV trace",
        {"t.csv": b"t_start_s,rate_rps\n0," + b"9" * 200_000 + b"\n"},
    ),
    _sim(
        "trace_rate_not_a_number",
        ["--trace", "{d}/t.csv"],
        "rate_rps 'lots' is not a number",
        {"t.csv": b"t_start_s,rate_rps\n0,lots\n"},
    ),
    _sim(
        "trace_far_future",
        ["--trace", "{d}/t.csv"],
        "is past 400 days",
        {"t.csv": b"t_start_s,rate_rps\n0,1\n1e15,2\n"},
    ),
    _sim(
        "trace_request_far_future",
        ["--trace", "{d}/t.csv"],
        "is past 400 days",
        {"t.csv": b"t_rel_s,context_tokens,generated_tokens\n0,10,10\n1e14,10,10\n"},
    ),
    _sim("trace_wrong_columns", ["--trace", "{d}/t.csv"], "not a trace", {"t.csv": b"a,b\n1,2\n"}),
    _sim("trace_empty", ["--trace", "{d}/t.csv"], "not a trace", {"t.csv": b""}),
    _sim("trace_is_a_directory", ["--trace", "{d}"], "cannot read trace"),
    _sim("prices_duplicate_timestamp", _DIRS, "repeats line 50", _prices(_duplicated_hour())),
    _sim("prices_binary", _DIRS, "not UTF-8 text", _prices(b"\xff\xfe\x00\x01" * 100)),
    _sim(
        "prices_nul",
        _DIRS,
        "is not a number",
        _prices(b"timestamp_utc,price_usd_mwh\n2024-07-08T00:00:00Z,1\x00\n"),
    ),
    _sim(
        "prices_bad_timestamp",
        _DIRS,
        "is not an ISO time",
        _prices(b"timestamp_utc,price_usd_mwh\nsoon,1\n"),
    ),
    _sim(
        "prices_wrong_columns",
        _DIRS,
        "expected columns 'timestamp_utc' and 'price_usd_mwh'",
        _prices(b"time,price\n2024-07-08T00:00:00Z,1\n"),
    ),
]


# ----------------------------------------------------------------------------- signals read


def _signals(
    name: str,
    config: bytes,
    says: str,
    extra: list[str] | None = None,
    files: dict[str, bytes] | None = None,
) -> BadInput:
    def argv(d: Path) -> list[str]:
        more = [a.replace("{d}", str(d)) for a in extra or []]
        return ["signals", "read", "--config", str(d / "cfg.yaml"), *more]

    return BadInput(name, "signals", argv, says, {"cfg.yaml": config, **(files or {})})


def _csv_cfg(data: bytes, says: str, name: str) -> BadInput:
    return _signals(
        name,
        b"type: csv\npath: {d}/feed.csv\n",
        says,
        ["--kind", "price", "--at", "2024-07-08T12:00Z"],
        {"feed.csv": data},
    )


SIGNALS: list[BadInput] = [
    _signals("config_empty", b"", "must hold exactly one source config"),
    _signals("config_a_list", b"- 1\n", "must hold exactly one source config"),
    _signals("config_no_type", b"path: x.csv\n", "type is required"),
    _signals("config_unknown_type", b"type: nordpool\n", "not a valid price source"),
    _signals("config_latin1", "type: caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
    _signals("config_nested_deep", _nest(5000), "nested deeper than 64 levels"),
    _signals("config_laughs", _laughs(), "YAML nodes (aliases expanded)"),
    _signals("entsoe_short_zone", b"type: entsoe\nbiddingZone: short\n", "biddingZone"),
    _signals(
        "tou_unknown_timezone",
        b'type: tou\ntimezone: Mars/Olympus\ndefaultPricePerKwh: "0.1"\n',
        "unknown IANA timezone",
    ),
    _signals(
        "tou_refresh_absurd",
        b'type: tou\ntimezone: UTC\ndefaultPricePerKwh: "0.1"\nrefreshSeconds: 1e12\n',
        "refreshSeconds",
    ),
    _signals(
        "at_not_a_time", b"type: csv\npath: x.csv\n", "--at", ["--kind", "price", "--at", "noon"]
    ),
    _signals(
        "hours_absurd",
        b"type: csv\npath: x.csv\n",
        "--hours must be between 0 and 336",
        ["--kind", "price", "--hours", "100000000"],
    ),
    _signals(
        "secret_flag_without_value",
        b"type: csv\npath: x.csv\n",
        "expected NAME/KEY=VALUE",
        ["--kind", "price", "--secret", "token"],
    ),
    BadInput(
        "region_file_spec_a_string",
        "signals",
        lambda d: ["signals", "read", "--region-file", str(d / "r.yaml")],
        "holds no document with spec.energy",
        {"r.yaml": b"kind: Region\nspec: hello\n"},
    ),
    BadInput(
        "region_file_binary",
        "signals",
        lambda d: ["signals", "read", "--region-file", str(d / "r.yaml")],
        "not UTF-8 text",
        {"r.yaml": b"\xff\xfe" + b"\x00k\x00i" * 10},
    ),
    _csv_cfg(b"\xff\xfe\x00t\x00i\x00m\x00e", "not UTF-8 text", "csv_feed_utf16"),
    _csv_cfg(
        "timestamp_utc,price_per_mwh\n2024-07-08T00:00Z,caf\u00e9\n".encode("latin-1"),
        "not UTF-8 text",
        "csv_feed_latin1",
    ),
    _csv_cfg(
        b"timestamp_utc,price_per_mwh\n2024-07-08T00:00Z,1\x00\n", "binary data", "csv_feed_nul"
    ),
    _csv_cfg(
        b'timestamp_utc,price_per_mwh\n2024-07-08T00:00Z,"' + b"9" * 200_000 + b'"\n',
        "not a usable CSV file",
        "csv_feed_field_200kb",
    ),
]

ALL: list[BadInput] = VALIDATE + SIMULATE + SIGNALS
