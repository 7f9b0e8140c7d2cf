"""Hourly price and carbon series per region, read from `<DIR>/<REGION>.csv`.

The files have the shapes of the project's shared data (`prices/`, `carbon/`):

- prices: `timestamp_utc,region,price_per_mwh,currency,price_usd_mwh`
- carbon: `timestamp_utc,region,gco2_per_kwh,...`

Costs are compared in USD through the `price_usd_mwh` column (a fixed FX rate per currency, see
the data README): the simulator's output currency is always USD.

Missing hours are linearly interpolated when a gap is at most `max_gap_hours` long (a warning is
recorded); a longer gap inside the simulated period is refused.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from wattscale.sim.errors import OutsideDataError, SimInputError, csv_problems

FloatArray = npt.NDArray[np.float64]

HOUR_S = 3600
DEFAULT_MAX_GAP_HOURS = 6


def parse_utc(text: str) -> datetime:
    """Parse `YYYY-MM-DDTHH:MM:SSZ` (or without Z) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class HourlySeries:
    """One region's hourly values over [start, start + hours) with interpolation notes."""

    region: str
    start: datetime
    values: FloatArray
    unit: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def hours(self) -> int:
        return int(self.values.shape[0])


def _read_rows(path: Path, column: str) -> dict[datetime, float]:
    """The file's rows (cached: a run reads each file for the period and the hour before)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _read_rows_cached(str(path), column, stamp)


@functools.lru_cache(maxsize=64)
def _read_rows_cached(name: str, column: str, _mtime_ns: int) -> dict[datetime, float]:
    path = Path(name)
    try:
        handle = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise SimInputError(f"{path}: file not found") from None
    except OSError as err:
        raise SimInputError(f"{path}: cannot read ({err.strerror})") from None
    with handle, csv_problems(path, "a CSV file"):
        rows = _hourly_rows(path, csv.DictReader(handle), column)
    if not rows:
        raise SimInputError(f"{path}: no data rows")
    return rows


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _hourly_rows(path: Path, reader: csv.DictReader[str], column: str) -> dict[datetime, float]:
    """Hourly means of the rows; a timestamp written twice is refused (never last-wins)."""
    fields = reader.fieldnames or []
    if "timestamp_utc" not in fields or column not in fields:
        shown = ", ".join(_short(f) for f in fields[:8])
        raise SimInputError(
            f"{path}: expected columns 'timestamp_utc' and '{column}', found {shown}"
        )
    seen: dict[datetime, int] = {}
    sums: dict[datetime, list[float]] = {}
    for line_no, row in enumerate(reader, start=2):
        raw_t, raw_v = row.get("timestamp_utc") or "", row.get(column) or ""
        try:
            stamp = parse_utc(raw_t)
        except (ValueError, OverflowError):
            raise SimInputError(
                f"{path}:{line_no}: timestamp_utc {_short(raw_t)} is not an ISO time"
            ) from None
        if stamp in seen:
            raise SimInputError(
                f"{path}:{line_no}: timestamp_utc {raw_t.strip()} repeats line {seen[stamp]} "
                "(each time must appear once)"
            )
        seen[stamp] = line_no
        if raw_v.strip() == "":
            continue  # an empty value is a gap, handled like a missing row
        try:
            value = float(raw_v)
        except ValueError:
            raise SimInputError(
                f"{path}:{line_no}: {column} {_short(raw_v)} is not a number"
            ) from None
        if not math.isfinite(value):
            continue
        # Sub-hourly rows (15-minute day-ahead prices) are averaged into their hour.
        acc = sums.setdefault(stamp.replace(minute=0, second=0, microsecond=0), [0.0, 0.0])
        acc[0] += value
        acc[1] += 1
    return {hour: total / count for hour, (total, count) in sums.items()}


def load_hourly(
    directory: Path,
    region: str,
    column: str,
    unit: str,
    start: datetime,
    hours: int,
    max_gap_hours: int = DEFAULT_MAX_GAP_HOURS,
) -> HourlySeries:
    """Read `directory/region.csv` and return `hours` hourly values from `start` (UTC, on the hour).

    Short gaps are interpolated (with a warning), long gaps and a period outside the file refused.
    """
    path = directory / f"{region}.csv"
    rows = _read_rows(path, column)
    first, last = min(rows), max(rows)
    end = start + timedelta(hours=hours - 1)
    if start < first or end > last:
        raise OutsideDataError(
            f"{path}: the period {start:%Y-%m-%dT%H}Z..{end:%Y-%m-%dT%H}Z is outside the data "
            f"({first:%Y-%m-%dT%H}Z..{last:%Y-%m-%dT%H}Z)"
        )
    values = np.full(hours, np.nan)
    for k in range(hours):
        stamp = start + timedelta(hours=k)
        if stamp in rows:
            values[k] = rows[stamp]
    warnings: list[str] = []
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        # Widen the window by the gap limit so gaps at the period's edges can be bridged.
        runs = np.split(missing, np.flatnonzero(np.diff(missing) > 1) + 1)
        for run in runs:
            lo, hi = int(run[0]), int(run[-1])
            length = hi - lo + 1
            gap_from = start + timedelta(hours=lo)
            if length > max_gap_hours:
                raise SimInputError(
                    f"{path}: {length} missing hours from {gap_from:%Y-%m-%dT%H}Z "
                    f"(at most {max_gap_hours} are interpolated); choose another period"
                )
            before = _neighbour(rows, gap_from, -1, max_gap_hours)
            after = _neighbour(rows, start + timedelta(hours=hi), +1, max_gap_hours)
            if before is None or after is None:
                raise SimInputError(
                    f"{path}: missing hours at {gap_from:%Y-%m-%dT%H}Z have no neighbour to "
                    "interpolate from"
                )
            (t0, v0), (t1, v1) = before, after
            span = (t1 - t0).total_seconds()
            for k in run:
                stamp = start + timedelta(hours=int(k))
                w = (stamp - t0).total_seconds() / span
                values[k] = v0 + (v1 - v0) * w
            warnings.append(
                f"{region}: interpolated {length} missing hour(s) of {column} from "
                f"{gap_from:%Y-%m-%dT%H}Z"
            )
    return HourlySeries(
        region=region, start=start, values=values, unit=unit, warnings=tuple(warnings)
    )


def _neighbour(
    rows: dict[datetime, float], stamp: datetime, direction: int, limit: int
) -> tuple[datetime, float] | None:
    for k in range(1, limit + 2):
        probe = stamp + timedelta(hours=direction * k)
        if probe in rows:
            return probe, rows[probe]
    return None


def load_prices(
    directory: Path, region: str, start: datetime, hours: int, max_gap_hours: int
) -> HourlySeries:
    """Hourly prices in USD/MWh (the `price_usd_mwh` column)."""
    return load_hourly(directory, region, "price_usd_mwh", "USD/MWh", start, hours, max_gap_hours)


def load_carbon(
    directory: Path, region: str, start: datetime, hours: int, max_gap_hours: int
) -> HourlySeries | None:
    """Hourly direct carbon intensity in gCO2/kWh, or None when the region has no carbon file."""
    if not (directory / f"{region}.csv").exists():
        return None
    return load_hourly(directory, region, "gco2_per_kwh", "gCO2/kWh", start, hours, max_gap_hours)
