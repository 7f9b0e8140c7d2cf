"""`wattscale simulate`: replay a load trace and real prices through wattscale and its baselines.

`add_simulate_parser(subparsers)` registers the subcommand on the main CLI's subparsers; the
handler returns an exit code: 0 on success, 2 for bad input (one readable line on stderr, never
a traceback). With no arguments it runs the embedded default (a bundled sample of real data).
`python -m wattscale.cli_simulate ...` runs it on its own.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from wattscale.data import SAMPLE_DAYS, SAMPLE_DIR, SAMPLE_REGIONS, SAMPLE_START, SAMPLE_TRACE
from wattscale.sim.errors import OutsideDataError, SimInputError
from wattscale.sim.markets import load_table
from wattscale.sim.model import ReplicaModel
from wattscale.sim.policies.base import Policy
from wattscale.sim.run import (
    CURRENCY,
    OPTIONAL_POLICY_NAMES,
    POLICY_NAMES,
    SimulationResult,
    parse_policies,
    simulate,
)
from wattscale.sim.scenario import (
    MAX_READING_WINDOW_SECONDS,
    READING_WINDOW_SECONDS,
    Scenario,
    build_scenario,
)
from wattscale.sim.series import DEFAULT_MAX_GAP_HOURS

MAX_GAP_HOURS = 168
EXIT_OK = 0
EXIT_BAD_INPUT = 2
DEFAULT_GPU_HOUR_COST = 2.5
DEFAULT_PEAK_REPLICAS = 20
# Standard-time UTC offsets of known regions: a trace's t=0 is taken as local midnight there.
REGION_UTC_OFFSET_HOURS = {
    "US-CAL-CISO": -8.0,
    "US-TEX-ERCO": -6.0,
    "US-MIDA-PJM": -5.0,
    "CA-ON": -5.0,
    "DE-LU": 1.0,
    "FR": 1.0,
    "NL": 1.0,
    "ES": 1.0,
    "GB": 0.0,
    "AU-NSW": 10.0,
    "JP-TK": 9.0,
    "KR": 9.0,
    "SG": 8.0,
}


class SimulateUsageError(Exception):
    """A mistake in the command line: one line on stderr, exit code 2."""


def add_simulate_parser(subparsers: Any) -> None:
    """Register `simulate` on the main CLI's subparsers."""
    p = subparsers.add_parser(
        "simulate",
        help="replay a load trace and real prices: wattscale vs baselines vs the optimum",
        description=(
            "Replay a load trace and hourly prices/carbon through wattscale's planner and "
            "baselines (static, reactive, carbon-capped, greedy) and the offline optimum "
            "(oracle). With no arguments: 3 days of a bundled 7-day sample of real US data. "
            f"Costs are in {CURRENCY} (prices' price_usd_mwh column, fixed FX)."
        ),
    )
    configure_parser(p)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the simulate options to a parser and set its handler."""
    _data_options(p.add_argument_group("data"))
    _fleet_options(p.add_argument_group("the deployment"))
    _run_options(p.add_argument_group("policies and output"))
    p.set_defaults(handler=run_simulate)


def _data_options(p: argparse._ArgumentGroup) -> None:
    """What is replayed: the trace, the price and carbon series, the regions and the period."""
    p.add_argument("--trace", type=Path, help="per-request CSV or rate series (default: sample)")
    p.add_argument("--prices-dir", type=Path, help="directory of <REGION>.csv hourly prices")
    p.add_argument("--carbon-dir", type=Path, help="directory of <REGION>.csv hourly carbon")
    p.add_argument("--regions", help="comma-separated regions (default: the sample's US trio)")
    p.add_argument("--home-region", help="region of the single-region baselines (default: first)")
    p.add_argument("--start", help=f"first day, YYYY-MM-DD, UTC (default {SAMPLE_START})")
    p.add_argument("--days", type=float, help=f"days to simulate (default {SAMPLE_DAYS})")
    p.add_argument(
        "--trace-tz-offset-hours",
        type=float,
        help="UTC offset of the trace's local time (default: the home region's standard time)",
    )
    p.add_argument(
        "--max-gap-hours",
        type=int,
        default=DEFAULT_MAX_GAP_HOURS,
        help="interpolate price/carbon gaps up to this long, refuse longer (default %(default)s)",
    )
    p.add_argument(
        "--smooth-rates",
        action="store_true",
        help="replay a rate series as smooth rates (default: with the per-request traces' "
        "minute-to-minute burstiness)",
    )
    p.add_argument(
        "--price-markets",
        type=Path,
        metavar="FILE.csv",
        help="how each region's prices are published (region,kind,publish_local_time,time_zone): "
        "rows replace the shipped table; regions no table lists replay as real-time",
    )
    p.add_argument(
        "--idle-below-percent",
        type=float,
        default=0.0,
        help="take this percent of the trace's peak rate off every minute, clipped at zero: "
        "its quiet hours become idle hours (for wattscale-zero; default %(default)s: the trace "
        "as it is)",
    )


def _fleet_options(p: argparse._ArgumentGroup) -> None:
    """The deployment replayed: its size, costs, cold start, quota, objective and variants."""
    p.add_argument(
        "--peak-replicas",
        type=int,
        default=DEFAULT_PEAK_REPLICAS,
        help="replicas the busiest minute needs; the trace is scaled to it (default %(default)s)",
    )
    p.add_argument(
        "--gpu-hour-cost",
        type=float,
        default=DEFAULT_GPU_HOUR_COST,
        help="cost of holding one GPU for an hour, USD: ~2-4 for a cloud renter, 0 for an owner "
        "paying only power (default %(default)s)",
    )
    p.add_argument(
        "--cold-start-seconds", type=int, default=300, help="model load time (default 300)"
    )
    p.add_argument("--quota-per-region", type=int, help="max replicas per region (2 x peak)")
    p.add_argument(
        "--reading-window-seconds",
        type=int,
        default=READING_WINDOW_SECONDS,
        help="what every autoscaler's demand reading averages over, in whole minutes: the "
        "operator's metrics rate_window_seconds (default %(default)s)",
    )
    p.add_argument(
        "--capacity-hint-factor",
        type=float,
        default=1.0,
        help="wattscale starts learning capacity from this multiple of the true capacity "
        "(1 = a right hint; default %(default)s)",
    )
    p.add_argument(
        "--objective",
        choices=("cost", "carbon", "balanced"),
        default="cost",
        help="what wattscale minimises (the InferenceDeployment's placement.objective; "
        "default %(default)s)",
    )
    p.add_argument(
        "--carbon-price-per-tonne",
        type=float,
        help="USD per tonne CO2 for --objective balanced (placement.carbonPricePerTonne)",
    )
    p.add_argument(
        "--idle-seconds",
        type=int,
        help="wattscale-zero's idle window before zero (scaleToZero.idleSeconds; default: the "
        "API's, 1800): for sensitivity studies",
    )
    p.add_argument(
        "--variants",
        metavar="LIST",
        help="replay wattscale with GPU variants of Llama-3.1-8B (h100, a100; e.g. h100,a100): "
        "the mix of all of them and each alone, and what the mix saved (only wattscale runs)",
    )


def _run_options(p: argparse._ArgumentGroup) -> None:
    """Which policies run, and where the results go."""
    p.add_argument(
        "--policies",
        help=f"comma-separated subset of {','.join(POLICY_NAMES)} (default: all), or "
        f"{','.join(OPTIONAL_POLICY_NAMES)} (wattscale with slo.minReplicas 0: scale to zero "
        "and back; only when named)",
    )
    p.add_argument(
        "--oracle-integer",
        action="store_true",
        help="solve the oracle as a MILP (whole replicas) instead of its LP relaxation",
    )
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write the results as JSON")
    p.add_argument("--report", type=Path, metavar="DIR", help="write an HTML report into DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_start(text: str) -> datetime:
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise SimulateUsageError(f"--start {text!r} is not a date YYYY-MM-DD") from None
    return day.replace(tzinfo=UTC)


def _regions(text: str | None) -> list[str]:
    if text is None:
        return list(SAMPLE_REGIONS)
    regions = [r.strip() for r in text.split(",") if r.strip()]
    if not regions:
        raise SimulateUsageError("--regions is empty")
    for region in regions:
        # A region names a file <REGION>.csv: no path separators, no dot-dot.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", region):
            raise SimulateUsageError(
                f"--regions: {region[:64]!r} is not a region name (letters, digits, '-', '_')"
            )
    return regions


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None] | None]]:
    if not enabled:
        yield lambda _name, _total: None
        return
    bar = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    def factory(name: str, total: int) -> Callable[[int], None]:
        task = bar.add_task(name, total=total)

        def tick(minute: int) -> None:
            if minute % 60 == 59 or minute == total - 1:
                bar.update(task, completed=minute + 1)

        return tick

    with bar:
        yield factory


def print_table(result: SimulationResult, console: Console) -> None:
    """The results table and the headline ratios."""
    sc = result.scenario
    table = Table(
        title=(
            f"{', '.join(sc.regions)} (home {sc.home_region}), {sc.start:%Y-%m-%d} + "
            f"{sc.minutes / 1440:g} days, peak {sc.peak_replicas} replicas, "
            f"GPU {sc.gpu_hour_cost:g} {CURRENCY}/h"
        )
    )
    for col in (
        "policy",
        f"total {CURRENCY}",
        f"GPU {CURRENCY}",
        f"energy {CURRENCY}",
        "energy kWh",
        "carbon kg",
        "SLO met",
        "replica-h",
        "migrations",
        "cold starts",
        "CO2 price",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, r in result.results.items():
        label = name
        if name == "oracle" and result.oracle is not None and not result.oracle.integer:
            label = "oracle (LP)"
        table.add_row(
            label,
            f"{r.total_cost:,.2f}",
            f"{r.gpu_cost:,.2f}",
            f"{r.energy_cost:,.2f}",
            f"{r.energy_kwh:,.0f}",
            f"{r.carbon_kg:,.0f}",
            f"{100 * r.slo_attainment:.2f} %",
            f"{r.replica_hours:,.0f}",
            str(r.migrations),
            str(r.cold_starts),
            r.carbon_price_label(),
        )
    console.print(table)
    head = result.headline()
    if head:
        console.print("  ".join(f"{k}={v:.4f}" for k, v in head.items()))
    if result.oracle is not None:
        console.print(
            f"proven lower bound on any schedule that serves each minute's demand in that "
            f"minute: {result.oracle.lower_bound:,.2f} {CURRENCY}"
        )


def run_simulate(args: argparse.Namespace) -> int:
    """The `simulate` handler: exit code 0, or 2 with one line on stderr for bad input."""
    if args.variants is not None:
        return _run_variants(args)
    err = Console(stderr=True)
    try:
        result = _run(args)
    except (SimInputError, SimulateUsageError) as problem:
        print(f"wattscale simulate: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for warning in result.scenario.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)
    print_table(result, out)
    try:
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.json}")
        if args.report is not None:
            from wattscale.sim.report import write_report

            print(f"wrote {write_report(result, args.report)}")
    except OSError as problem:
        print(f"wattscale simulate: cannot write output: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _run(args: argparse.Namespace) -> SimulationResult:
    policies = parse_policies(args.policies)
    scenario = _checked_scenario(args)
    factories = {
        "wattscale": _wattscale_factory(args),
        "wattscale-zero": _wattscale_factory(args, scale_to_zero=True),
    }
    show = not args.no_progress and sys.stderr.isatty()
    with _progress(show) as progress:
        return simulate(
            scenario, policies, progress, oracle_integer=args.oracle_integer, factories=factories
        )


def _checked_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario the options describe, every option checked first."""
    regions = _regions(args.regions)
    home = args.home_region or regions[0]
    start = _parse_start(args.start or SAMPLE_START)
    days = args.days if args.days is not None else SAMPLE_DAYS
    if not 0 <= args.max_gap_hours <= MAX_GAP_HOURS:
        raise SimulateUsageError(
            f"--max-gap-hours must be between 0 and {MAX_GAP_HOURS} (got {args.max_gap_hours})"
        )
    idle = args.idle_below_percent
    if not (math.isfinite(idle) and 0 <= idle < 100):
        raise SimulateUsageError(f"--idle-below-percent must be in [0, 100) (got {idle:g})")
    window = args.reading_window_seconds
    if window % 60 or not 60 <= window <= MAX_READING_WINDOW_SECONDS:
        raise SimulateUsageError(
            "--reading-window-seconds must be whole minutes between 60 and "
            f"{MAX_READING_WINDOW_SECONDS} (got {window})"
        )
    offset = args.trace_tz_offset_hours
    if offset is None:
        offset = REGION_UTC_OFFSET_HOURS.get(home, 0.0)
    if not (math.isfinite(offset) and -14 <= offset <= 14):
        raise SimulateUsageError(
            f"--trace-tz-offset-hours must be between -14 and 14 (got {offset:g})"
        )
    try:
        return _scenario(args, regions, home, start, days, offset)
    except OutsideDataError as problem:
        if args.prices_dir is None:
            raise SimulateUsageError(
                f"{problem}; the bundled sample covers 2024-07-08..2024-07-15 only: "
                "pass --prices-dir and --carbon-dir for other periods"
            ) from None
        raise


def _run_variants(args: argparse.Namespace) -> int:
    """`--variants`: wattscale on the mix of the variants and on each alone, compared."""
    from wattscale.sim.engine import replay
    from wattscale.sim.variants import expand, parse_variants

    try:
        scenario = _checked_scenario(args)
        variants = parse_variants(args.variants, scenario.model)
        make = _wattscale_factory(args)
    except (SimInputError, SimulateUsageError) as problem:
        print(f"wattscale simulate: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    runs = [[v] for v in variants] + ([variants] if len(variants) > 1 else [])
    results = {}
    for run in runs:
        name = "+".join(v.name for v in run)
        results[name] = replay(make(), expand(scenario, run))
    out = Console() if Console().is_terminal else Console(width=160)
    table = Table(
        title=f"wattscale with variants: {', '.join(scenario.regions)}, {scenario.start:%Y-%m-%d}"
        f" + {scenario.minutes / 1440:g} days, H100 {scenario.gpu_hour_cost:g} {CURRENCY}/h"
    )
    for col in ("variants", f"total {CURRENCY}", f"GPU {CURRENCY}", "energy kWh", "SLO met",
                "replica-h"):  # fmt: skip
        table.add_column(col, justify="left" if col == "variants" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r.total_cost:,.2f}", f"{r.gpu_cost:,.2f}", f"{r.energy_kwh:,.0f}",
                      f"{100 * r.slo_attainment:.2f} %", f"{r.replica_hours:,.0f}")  # fmt: skip
    out.print(table)
    if len(variants) > 1:
        mix = results["+".join(v.name for v in variants)]
        best = min((v.name for v in variants), key=lambda n: results[n].total_cost)
        cost = results[best].total_cost
        saved = 100.0 * (1.0 - mix.total_cost / cost) if cost else 0.0
        out.print(f"mix vs best single variant ({best}): {saved:+.2f} % saved")
    return EXIT_OK


def _wattscale_factory(
    args: argparse.Namespace, scale_to_zero: bool = False
) -> Callable[[], Policy]:
    """wattscale with the objective, carbon price and capacity hint asked for."""
    price = args.carbon_price_per_tonne
    if args.objective == "balanced" and price is None:
        raise SimulateUsageError("--objective balanced needs --carbon-price-per-tonne")
    if price is not None and (price < 0 or not math.isfinite(price)):
        raise SimulateUsageError("--carbon-price-per-tonne must be >= 0")
    hint = args.capacity_hint_factor
    if not math.isfinite(hint) or hint <= 0:
        raise SimulateUsageError("--capacity-hint-factor must be positive")
    idle_seconds = args.idle_seconds
    if idle_seconds is not None and not 60 <= idle_seconds <= 604_800:
        raise SimulateUsageError(
            f"--idle-seconds must be between 60 and 604800, as scaleToZero.idleSeconds "
            f"(got {idle_seconds})"
        )

    def make() -> Policy:
        from wattscale.sim.policies.wattscale import WattscalePolicy

        return WattscalePolicy(
            capacity_hint_factor=hint,
            objective=args.objective,
            carbon_price_per_tonne=price or 0.0,
            scale_to_zero=scale_to_zero,
            idle_seconds=idle_seconds,
        )

    return make


def _scenario(
    args: argparse.Namespace,
    regions: list[str],
    home: str,
    start: datetime,
    days: float,
    offset: float,
) -> Scenario:
    return build_scenario(
        trace=args.trace or SAMPLE_TRACE,
        prices_dir=args.prices_dir or SAMPLE_DIR / "prices",
        carbon_dir=args.carbon_dir or SAMPLE_DIR / "carbon",
        regions=regions,
        home_region=home,
        start=start,
        days=days,
        peak_replicas=args.peak_replicas,
        gpu_hour_cost=args.gpu_hour_cost,
        model=ReplicaModel(cold_start_s=args.cold_start_seconds),
        trace_tz_offset_hours=offset,
        quota_per_region=args.quota_per_region,
        max_gap_hours=args.max_gap_hours,
        price_markets=load_table(args.price_markets),
        burstiness=not args.smooth_rates,
        idle_below_percent=args.idle_below_percent,
        reading_window_seconds=args.reading_window_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run `simulate` on its own (as `python -m wattscale.cli_simulate`)."""
    parser = argparse.ArgumentParser(prog="wattscale simulate")
    configure_parser(parser)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
