"""`wattscale signals read`: check a Region's price, carbon and grid-event feeds before applying it.

    wattscale signals read --region-file region.yaml [--secret NAME/KEY=VALUE ...]
    wattscale signals read --config price.yaml --kind price --currency EUR

Prints the current value, its age and staleness, warnings, and the next hours of the forecast.
There is no cluster here, so Secret references are resolved from `--secret name/key=value` flags
or from environment variables `WATTSCALE_SECRET_<NAME>_<KEY>` (upper case, other characters `_`),
e.g. `WATTSCALE_SECRET_ENTSOE_TOKEN` for `{name: entsoe, key: token}`.

The lead's `cli.py` wires it in with `add_signals_parser(subparsers)`; each parser sets
`func`, which takes the parsed arguments and returns the exit code (0 ok, 1 a feed failed,
2 bad input).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table

from wattscale.api.documents import DocumentError, read_documents
from wattscale.api.errors import format_errors
from wattscale.api.sources import CarbonSource, GridEventSource, PriceSource, SecretKeyRef
from wattscale.signals.base import GridEvents, Series, SignalError, utc
from wattscale.signals.registry import (
    build_carbon_source,
    build_grid_event_source,
    build_price_source,
)

Kind = Literal["price", "carbon", "gridEvents"]
_ADAPTERS: dict[Kind, TypeAdapter[Any]] = {
    "price": TypeAdapter(PriceSource),
    "carbon": TypeAdapter(CarbonSource),
    "gridEvents": TypeAdapter(GridEventSource),
}


MAX_HOURS = 336
"""Forecast hours `--hours` may show: the longest horizon a source offers (two weeks)."""


class UsageError(Exception):
    """Bad command-line input or an unreadable/invalid file (exit code 2)."""


def add_signals_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `signals read` to an argparse subparsers object; returns the `signals` parser."""
    signals = subparsers.add_parser(
        "signals", help="read energy price, carbon and grid-event feeds"
    )
    sub = signals.add_subparsers(dest="signals_command", metavar="COMMAND", required=True)
    read = sub.add_parser(
        "read",
        help="print current values, age and forecast of a Region's feeds",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    src = read.add_mutually_exclusive_group(required=True)
    src.add_argument("--region-file", type=Path, help="a Region YAML (reads spec.energy)")
    src.add_argument("--config", type=Path, help="one source config YAML (as under spec.energy)")
    read.add_argument(
        "--kind",
        choices=["price", "carbon", "gridEvents"],
        help="what --config describes (needed for csv and prometheus, which exist for both)",
    )
    read.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME/KEY=VALUE",
        help="a Secret value (repeatable); also read from WATTSCALE_SECRET_<NAME>_<KEY>",
    )
    read.add_argument("--currency", help="the Region's currency (default: spec.energy.currency)")
    read.add_argument(
        "--at", help="evaluate as of this UTC time (ISO 8601), e.g. to replay a CSV file"
    )
    read.add_argument("--hours", type=int, default=12, help="forecast hours to show (12)")
    read.add_argument("--json", action="store_true", help="machine-readable output")
    read.set_defaults(func=run_signals_read)
    parser: argparse.ArgumentParser = signals
    return parser


# -------------------------------------------------------------------------------- secrets


def _env_name(ref: SecretKeyRef) -> str:
    return "WATTSCALE_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", f"{ref.name}_{ref.key}").upper()


def parse_secret_flags(flags: Sequence[str]) -> dict[str, str]:
    """`name/key=value` (or `namespace/name/key=value`) flags as a dict."""
    out: dict[str, str] = {}
    for flag in flags:
        ref, sep, value = flag.partition("=")
        if not sep or ref.count("/") not in (1, 2):
            raise UsageError(f"--secret {flag.split('=')[0]!r}: expected NAME/KEY=VALUE")
        out[ref] = value
    return out


def secret_resolver(flags: Mapping[str, str], env: Mapping[str, str]) -> Any:
    """A SecretResolver over --secret flags, then environment variables."""

    def resolve(ref: SecretKeyRef) -> str:
        for key in (f"{ref.namespace}/{ref.name}/{ref.key}", f"{ref.name}/{ref.key}"):
            if key in flags:
                return flags[key]
        name = _env_name(ref)
        if name in env:
            return env[name]
        raise KeyError(f"pass --secret {ref.name}/{ref.key}=... or set {name}")

    return resolve


# -------------------------------------------------------------------------------- loading


@dataclass
class Wanted:
    """One source to read."""

    kind: Kind
    config: Any


def _load_yaml(path: Path) -> list[Any]:
    try:
        return read_documents(path)
    except DocumentError as exc:
        raise UsageError(str(exc)) from None


def _validate(kind: Kind, raw: object, where: str) -> Any:
    try:
        return _ADAPTERS[kind].validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(format_errors(exc))
        raise UsageError(f"{where} is not a valid {kind} source: {problems}") from None


def load_region(path: Path) -> tuple[list[Wanted], str | None]:
    """The sources and currency of a Region YAML (the first document with spec.energy)."""
    for doc in _load_yaml(path):
        spec = doc.get("spec") if isinstance(doc, dict) else None
        energy = spec.get("energy") if isinstance(spec, dict) else None
        if not isinstance(energy, dict):
            continue
        wanted = [
            Wanted(kind, _validate(kind, energy[kind], f"{path}: spec.energy.{kind}"))
            for kind in ("price", "carbon", "gridEvents")
            if energy.get(kind) is not None
        ]
        currency = energy.get("currency")
        return wanted, str(currency) if currency else "USD"
    raise UsageError(f"{path} holds no document with spec.energy (is it a Region?)")


def load_config(path: Path, kind: Kind | None) -> Wanted:
    """One source config; its kind from --kind or from the only union that accepts it."""
    docs = _load_yaml(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise UsageError(f"{path} must hold exactly one source config mapping")
    raw = docs[0]
    if kind is not None:
        return Wanted(kind, _validate(kind, raw, str(path)))
    fits: list[Wanted] = []
    for k in _ADAPTERS:
        try:
            fits.append(Wanted(k, _ADAPTERS[k].validate_python(raw)))
        except ValidationError:
            continue
    if len(fits) == 1:
        return fits[0]
    if not fits:
        # Re-validate against the union the `type` suggests, to show its errors.
        if not isinstance(raw.get("type"), str):
            raise UsageError(f"{path}: type is required (e.g. entsoe, csv, tou, openadr3)")
        guess: Kind = "gridEvents" if raw.get("type") in ("openadr3", "static") else "price"
        if raw.get("type") in ("wattTime", "gbCarbonIntensity"):
            guess = "carbon"
        _validate(guess, raw, str(path))
    raise UsageError(f"{path}: type {raw.get('type')!r} fits several kinds; pass --kind")


# ------------------------------------------------------------------------------- reading


@dataclass
class Outcome:
    """The result of reading one source."""

    kind: Kind
    source_type: str
    value: Series | GridEvents | None = None
    error: SignalError | None = None


def read_all(
    wanted: Sequence[Wanted], *, secrets: Any, currency: str | None, now: datetime
) -> list[Outcome]:
    """Build and read each source once; errors are captured, never raised."""
    out: list[Outcome] = []
    for w in wanted:
        result = Outcome(w.kind, w.config.type)
        try:
            if w.kind == "price":
                result.value = build_price_source(
                    w.config, secrets=secrets, region_currency=currency, cache=False
                ).read(now)
            elif w.kind == "carbon":
                result.value = build_carbon_source(w.config, secrets=secrets, cache=False).read(now)
            else:
                result.value = build_grid_event_source(w.config, secrets=secrets, cache=False).read(
                    now
                )
        except SignalError as err:
            result.error = err
        except Exception as err:  # one source's surprise is that source's row
            result.error = SignalError(
                w.config.type, f"unexpected {type(err).__name__} while reading"
            )
        out.append(result)
    return out


# ------------------------------------------------------------------------------ printing


def _age(seconds: float) -> str:
    if math.isinf(seconds):
        return "no data"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt_value(v: float, unit: str) -> str:
    return f"{v:.5f}" if unit.endswith("/kWh") and not unit.startswith("gCO2") else f"{v:.1f}"


def _t(t: datetime | None) -> str:
    return "open-ended" if t is None else utc(t).strftime("%Y-%m-%d %H:%M Z")


def render(outcomes: Sequence[Outcome], now: datetime, hours: int, console: Console) -> None:
    """Print a summary table, then the forecast / events of each source."""
    summary = Table(title=f"Signals at {_t(now)}")
    for col in ("signal", "source", "now", "unit", "age", "status"):
        summary.add_column(col)
    for o in outcomes:
        if o.error is not None:
            summary.add_row(o.kind, o.source_type, "-", "-", "-", f"[red]{o.error}[/red]")
        elif isinstance(o.value, Series):
            s = o.value
            point = s.current(now) or s.latest_before(now)
            shown = _fmt_value(point.value, s.unit) if point else "-"
            status = "[yellow]stale[/yellow]" if s.is_stale(now) else "[green]fresh[/green]"
            if s.warnings:
                status += " (" + "; ".join(s.warnings) + ")"
            summary.add_row(o.kind, o.source_type, shown, s.unit, _age(s.age_seconds(now)), status)
        elif isinstance(o.value, GridEvents):
            ev = o.value
            cap = ev.cap_fraction(now)
            status = f"{len(ev.events)} event(s)" + (
                " (" + "; ".join(ev.warnings) + ")" if ev.warnings else ""
            )
            summary.add_row(o.kind, o.source_type, f"cap {cap:.0%}", "capacity", "0 s", status)
    console.print(summary)
    for o in outcomes:
        if isinstance(o.value, Series) and hours > 0:
            s = o.value
            table = Table(title=f"{o.kind} ({o.source_type}), next {hours} h")
            for col in ("from", "to", s.unit, "note"):
                table.add_column(col)
            firm = set(s.points)
            for p in s.upcoming(now, timedelta(hours=hours)):
                note = ", ".join(x for x in ("" if p in firm else "forecast", p.label or "") if x)
                table.add_row(_t(p.start), _t(p.end), _fmt_value(p.value, s.unit), note)
            console.print(table)
        elif isinstance(o.value, GridEvents) and o.value.events:
            table = Table(title=f"grid events ({o.source_type})")
            for col in ("from", "to", "cap", "kind", "level", "program", "reason"):
                table.add_column(col)
            for e in o.value.events:
                table.add_row(
                    _t(e.start),
                    _t(e.end),
                    f"{e.cap_fraction:.0%}",
                    e.kind,
                    "" if e.level is None else str(e.level),
                    e.program,
                    e.reason,
                )
            console.print(table)


def to_json(outcomes: Sequence[Outcome], now: datetime, hours: int) -> list[dict[str, Any]]:
    """A JSON-able view of the outcomes."""
    out: list[dict[str, Any]] = []
    for o in outcomes:
        item: dict[str, Any] = {"signal": o.kind, "source": o.source_type}
        if o.error is not None:
            item["error"] = {"type": type(o.error).__name__, "message": str(o.error)}
        elif isinstance(o.value, Series):
            s = o.value
            point = s.current(now) or s.latest_before(now)
            item |= {
                "unit": s.unit,
                "value": point.value if point else None,
                "ageSeconds": None if math.isinf(s.age_seconds(now)) else s.age_seconds(now),
                "stale": s.is_stale(now),
                "warnings": list(s.warnings),
                "points": [
                    {"start": p.start.isoformat(), "end": p.end.isoformat(), "value": p.value}
                    for p in s.upcoming(now, timedelta(hours=hours))
                ],
            }
        elif isinstance(o.value, GridEvents):
            item |= {
                "capFraction": o.value.cap_fraction(now),
                "events": [
                    {
                        "start": e.start.isoformat(),
                        "end": e.end.isoformat() if e.end else None,
                        "capFraction": e.cap_fraction,
                        "kind": e.kind,
                        "level": e.level,
                        "program": e.program,
                        "reason": e.reason,
                    }
                    for e in o.value.events
                ],
                "warnings": list(o.value.warnings),
            }
        out.append(item)
    return out


# ------------------------------------------------------------------------------ command


def run_signals_read(args: argparse.Namespace, console: Console | None = None) -> int:
    """Handler of `wattscale signals read`; returns the exit code."""
    console = console or Console()
    try:
        if not 0 <= args.hours <= MAX_HOURS:
            raise UsageError(f"--hours must be between 0 and {MAX_HOURS} (got {args.hours})")
        now = datetime.now(UTC) if not args.at else utc(datetime.fromisoformat(args.at))
        secrets = secret_resolver(parse_secret_flags(args.secret), os.environ)
        if args.region_file is not None:
            wanted, currency = load_region(args.region_file)
            if not wanted:
                raise UsageError(f"{args.region_file}: spec.energy has no price/carbon/gridEvents")
        else:
            wanted, currency = [load_config(args.config, args.kind)], None
        currency = args.currency or currency
    except UsageError as exc:
        _error_line(console, str(exc))
        return 2
    except ValueError as exc:
        _error_line(console, f"--at: {exc}")
        return 2
    outcomes = read_all(wanted, secrets=secrets, currency=currency, now=now)
    if args.json:
        console.print_json(json.dumps(to_json(outcomes, now, args.hours)))
        return 1 if any(o.error is not None for o in outcomes) else 0
    render(outcomes, now, args.hours, console)
    failed = [o for o in outcomes if o.error is not None]
    for o in failed:
        _error_line(console, f"{o.kind} ({o.source_type}): {o.error}")
    return 1 if failed else 0


def _error_line(console: Console, text: str) -> None:
    """One line, never wrapped, never read as rich markup (it may quote a user's file)."""
    console.print("error: " + " ".join(text.split()), markup=False, highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: `python -m wattscale.cli_signals signals read ...`."""
    parser = argparse.ArgumentParser(prog="wattscale")
    add_signals_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
