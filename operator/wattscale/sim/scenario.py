"""A simulation scenario: the regions, the period, the load, prices, carbon and the replica model.

Everything a run needs, already aligned on the simulation's 1-minute grid (prices and carbon stay
hourly; `hour_of(minute)` maps between them). Built by `build_scenario` from files on disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from wattscale.metrics.config import MetricsConfig
from wattscale.sim.errors import OutsideDataError, SimInputError
from wattscale.sim.load import HISTORY_MINUTES, Load, build_load, burstiness_factors, read_trace
from wattscale.sim.markets import MarketRule, PriceKnowledge, load_table, rules_for
from wattscale.sim.model import ReplicaModel
from wattscale.sim.pools import PoolModels
from wattscale.sim.series import DEFAULT_MAX_GAP_HOURS, load_carbon, load_prices

FloatArray = npt.NDArray[np.float64]

MINUTES_PER_HOUR = 60
MINUTES_PER_DAY = 1440
# Bounds on what a run may ask for: every array is sized by these, so none can grow without end.
MAX_DAYS = 731
MAX_PEAK_REPLICAS = 10_000  # the CRD's maxReplicas bound
MAX_GPU_HOUR_COST = 1_000.0
MAX_COLD_START_SECONDS = 3_600  # the CRD's coldStartSeconds bound
READING_WINDOW_SECONDS = int(MetricsConfig.model_fields["rate_window_seconds"].default)
"""How long one demand reading averages over (`Observation.read_demand`): the operator's
default rate window, 120 s."""
MAX_READING_WINDOW_SECONDS = 3_600


@dataclass(frozen=True)
class Scenario:
    """Inputs of one simulation run, aligned on a 1-minute grid starting at `start`."""

    regions: tuple[str, ...]
    home_region: str
    start: datetime
    minutes: int
    load: Load
    price_usd_mwh: FloatArray  # (hours_available, regions); may run past the period (day-ahead)
    carbon_g_per_kwh: FloatArray  # (hours_available, regions); NaN where a region has no data
    model: ReplicaModel
    gpu_hour_cost: float
    quota: tuple[int, ...]
    peak_replicas: int
    min_replicas: int = 1
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # How each region's prices are published (`sim.markets`); empty: every region real-time.
    markets: tuple[MarketRule, ...] = ()
    # Prices of the hour before `start` (what a real-time feed shows at minute 0); None: hour 0's.
    price_lead_usd_mwh: FloatArray | None = None
    # With variants (`sim.variants`): each column is a variant in a region, with its own model
    # and GPU price; None: one column per region, `model` and `gpu_hour_cost` for all.
    pools: PoolModels | None = None
    # What a live autoscaler's demand reading averages over (whole minutes of the replay).
    reading_window_seconds: int = READING_WINDOW_SECONDS

    @property
    def reading_window_minutes(self) -> int:
        return max(1, self.reading_window_seconds // 60)

    def gpu_hour_cost_per_column(self) -> float | FloatArray:
        """USD per replica-hour, per column (a scalar without variants)."""
        if self.pools is None:
            return self.gpu_hour_cost
        return self.pools.per_column(self.pools.gpu_hour_cost)

    @property
    def home(self) -> int:
        return self.regions.index(self.home_region)

    @property
    def hours(self) -> int:
        return -(-self.minutes // MINUTES_PER_HOUR)

    def hour_of(self, minute: int) -> int:
        return minute // MINUTES_PER_HOUR

    def minute_prices(self) -> FloatArray:
        """USD/MWh for every simulated minute and region."""
        idx = np.arange(self.minutes) // MINUTES_PER_HOUR
        return np.asarray(self.price_usd_mwh[idx], dtype=np.float64)

    def minute_carbon(self) -> FloatArray:
        idx = np.arange(self.minutes) // MINUTES_PER_HOUR
        return np.asarray(self.carbon_g_per_kwh[idx], dtype=np.float64)

    @cached_property
    def price_knowledge(self) -> PriceKnowledge:
        """What every (non-oracle) policy knows of prices at each minute (`sim.markets`)."""
        rules = self.markets or rules_for(self.regions, {})
        lead = self.price_lead_usd_mwh
        if lead is None:
            lead = self.price_usd_mwh[0]
        return PriceKnowledge(self.price_usd_mwh, lead, rules, self.start, self.minutes)

    def known_prices(self, minute: int) -> FloatArray:
        """USD/MWh per hour from the start as a live operator sees them at `minute`."""
        return self.price_knowledge.view(minute)


def _check_bounds(
    days: float,
    peak_replicas: int,
    gpu_hour_cost: float,
    quota_per_region: int | None,
    model: ReplicaModel,
) -> None:
    """Refuse values no run needs before anything is sized by them."""
    if not (math.isfinite(days) and 0 < days <= MAX_DAYS):
        raise SimInputError(f"--days must be > 0 and at most {MAX_DAYS} (got {days:g})")
    if not 1 <= peak_replicas <= MAX_PEAK_REPLICAS:
        raise SimInputError(
            f"--peak-replicas must be between 1 and {MAX_PEAK_REPLICAS} (got {peak_replicas})"
        )
    if not (math.isfinite(gpu_hour_cost) and 0 <= gpu_hour_cost <= MAX_GPU_HOUR_COST):
        raise SimInputError(
            f"--gpu-hour-cost must be between 0 and {MAX_GPU_HOUR_COST:g} (got {gpu_hour_cost:g})"
        )
    if quota_per_region is not None and not 1 <= quota_per_region <= 2 * MAX_PEAK_REPLICAS:
        raise SimInputError(
            f"--quota-per-region must be between 1 and {2 * MAX_PEAK_REPLICAS} "
            f"(got {quota_per_region})"
        )
    if not 0 <= model.cold_start_s <= MAX_COLD_START_SECONDS:
        raise SimInputError(
            f"--cold-start-seconds must be between 0 and {MAX_COLD_START_SECONDS} "
            f"(got {model.cold_start_s})"
        )


def _check_regions(regions: list[str], home_region: str) -> None:
    """Regions listed once, the home among them."""
    if not regions:
        raise SimInputError("no regions given")
    if len(set(regions)) != len(regions):
        raise SimInputError(f"regions listed twice: {','.join(regions)}")
    if home_region not in regions:
        raise SimInputError(
            f"home region {home_region} is not one of --regions {','.join(regions)}"
        )


def _check_files(regions: list[str], prices_dir: Path, carbon_dir: Path) -> None:
    """Both directories exist, and every region has a price file."""
    for directory, what in ((prices_dir, "prices"), (carbon_dir, "carbon")):
        if not directory.is_dir():
            raise SimInputError(f"{what} directory {directory} does not exist")
    known = sorted(p.stem for p in prices_dir.glob("*.csv"))
    for region in regions:
        if region in known:
            continue
        if (carbon_dir / f"{region}.csv").exists():
            raise SimInputError(
                f"missing price file {prices_dir / (region + '.csv')} for region {region} "
                "(it has carbon data but no prices)"
            )
        raise SimInputError(
            f"unknown region {region}: no {prices_dir / (region + '.csv')} "
            f"(regions with prices: {', '.join(known) or 'none'})"
        )


class _Hours(NamedTuple):
    """The period's hours to read from a series file, and the longest gap to interpolate."""

    start: datetime
    hours: int
    max_gap_hours: int


def _prices(
    prices_dir: Path, regions: list[str], span: _Hours, warnings: list[str]
) -> list[FloatArray]:
    """Each region's hourly prices over the period, with one extra day when the data has it
    (the day-ahead horizon at the period's end); their warnings appended to ``warnings``."""
    start, hours, max_gap_hours = span
    prices = []
    for region in regions:
        try:
            series = load_prices(prices_dir, region, start, hours + 24, max_gap_hours)
        except OutsideDataError:
            series = load_prices(prices_dir, region, start, hours, max_gap_hours)
        warnings.extend(series.warnings)
        prices.append(series.values)
    return prices


def _carbon(
    carbon_dir: Path, regions: list[str], span: _Hours, warnings: list[str]
) -> list[FloatArray]:
    """Each region's hourly carbon intensity (NaN where a region has no carbon file, said once
    in ``warnings``)."""
    carbons = []
    missing: list[str] = []
    for region in regions:
        cseries = load_carbon(carbon_dir, region, *span)
        if cseries is None:
            missing.append(region)
            carbons.append(np.full(span.hours, np.nan))
        else:
            warnings.extend(cseries.warnings)
            carbons.append(cseries.values)
    if missing:
        warnings.append(
            f"no carbon data for {', '.join(missing)}: energy there is not counted in "
            "carbon_kg (see carbon_unknown_kwh)"
        )
    return carbons


def build_scenario(
    *,
    trace: Path,
    prices_dir: Path,
    carbon_dir: Path,
    regions: list[str],
    home_region: str,
    start: datetime,
    days: float,
    peak_replicas: int,
    gpu_hour_cost: float,
    model: ReplicaModel | None = None,
    trace_tz_offset_hours: float = 0.0,
    quota_per_region: int | None = None,
    max_gap_hours: int = DEFAULT_MAX_GAP_HOURS,
    price_markets: dict[str, MarketRule] | None = None,
    burstiness: bool = True,
    idle_below_percent: float = 0.0,
    reading_window_seconds: int = READING_WINDOW_SECONDS,
) -> Scenario:
    """Read the files and build a scenario; every problem is a `SimInputError`.

    `price_markets`: how each region's prices are published (default: the shipped table,
    `sim.markets.load_table`); regions it does not list are real-time.
    `reading_window_seconds`: what every autoscaler's demand reading averages over.
    """
    model = model or ReplicaModel()
    _check_regions(regions, home_region)
    _check_bounds(days, peak_replicas, gpu_hour_cost, quota_per_region, model)
    try:
        start + timedelta(days=days + 2)
    except OverflowError:
        raise SimInputError(
            f"--start {start:%Y-%m-%d} + {days:g} days is past the year 9999"
        ) from None
    _check_files(regions, prices_dir, carbon_dir)
    minutes = round(days * MINUTES_PER_DAY)
    hours = -(-minutes // MINUTES_PER_HOUR)
    warnings: list[str] = []
    span = _Hours(start, hours, max_gap_hours)
    prices = _prices(prices_dir, regions, span, warnings)
    n_price_hours = min(p.shape[0] for p in prices)
    lead = _lead_prices(prices_dir, regions, start, max_gap_hours, [p[0] for p in prices])
    table = load_table() if price_markets is None else price_markets
    markets = rules_for(regions, table)
    warnings.extend(
        f"{r.region}: not in the price-market table, replayed as real-time (nothing known ahead)"
        for r in markets
        if r.region not in table
    )
    carbons = _carbon(carbon_dir, regions, span, warnings)
    shape = read_trace(trace)
    peak_tokens = peak_replicas * model.safe_tokens_per_s
    burst = burstiness_factors() if burstiness else None
    load = build_load(
        shape,
        minutes,
        peak_tokens,
        trace_tz_offset_hours,
        source=trace.name,
        burst=burst,
        idle_below_percent=idle_below_percent,
        history_minutes=HISTORY_MINUTES,
    )
    quota = quota_per_region if quota_per_region is not None else 2 * peak_replicas
    if quota < peak_replicas:
        raise SimInputError(
            f"the per-region quota {quota} is below --peak-replicas {peak_replicas}"
        )
    return Scenario(
        regions=tuple(regions),
        home_region=home_region,
        start=start,
        minutes=minutes,
        load=load,
        price_usd_mwh=np.column_stack([p[:n_price_hours] for p in prices]),
        carbon_g_per_kwh=np.column_stack(carbons),
        model=model,
        gpu_hour_cost=gpu_hour_cost,
        quota=tuple([quota] * len(regions)),
        peak_replicas=peak_replicas,
        warnings=tuple(warnings),
        markets=markets,
        price_lead_usd_mwh=lead,
        reading_window_seconds=reading_window_seconds,
    )


def _lead_prices(
    prices_dir: Path,
    regions: list[str],
    start: datetime,
    max_gap_hours: int,
    first: list[float],
) -> FloatArray:
    """Each region's price in the hour before `start` (hour 0's when the file starts there)."""
    out = []
    for region, fallback in zip(regions, first, strict=True):
        try:
            before = load_prices(prices_dir, region, start - timedelta(hours=1), 1, max_gap_hours)
            out.append(float(before.values[0]))
        except SimInputError:
            out.append(float(fallback))
    return np.asarray(out, dtype=np.float64)
