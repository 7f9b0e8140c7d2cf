"""The shared benchmark data (real hourly prices and carbon intensity) for tests.

The data lives in `../shared/data` next to the repository (override with WATTSCALE_DATA_DIR).
"""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path


def data_dir() -> Path:
    """The shared data directory: $WATTSCALE_DATA_DIR, else <repo>/../shared/data."""
    env = os.environ.get("WATTSCALE_DATA_DIR")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def prices_csv(region: str) -> Path:
    """Path of the hourly price file of a region (e.g. DE-LU)."""
    return data_dir() / "prices" / f"{region}.csv"


def carbon_csv(region: str) -> Path:
    """Path of the hourly carbon-intensity file of a region (e.g. GB)."""
    return data_dir() / "carbon" / f"{region}.csv"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _key(t: datetime) -> str:
    # The files' timestamps are fixed-width `YYYY-MM-DDTHH:00:00Z`: they sort as strings.
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=32)
def _rows(path: Path) -> tuple[dict[str, str], ...]:
    with path.open(encoding="utf-8", newline="") as fh:
        return tuple(csv.DictReader(fh))


def prices(region: str, start: datetime, hours: int) -> list[tuple[datetime, float, str]]:
    """(hour start UTC, price per MWh, currency) rows in [start, start + hours)."""
    lo, hi = _key(start), _key(start + timedelta(hours=hours))
    return [
        (_ts(row["timestamp_utc"]), float(row["price_per_mwh"]), row["currency"])
        for row in _rows(prices_csv(region))
        if lo <= row["timestamp_utc"] < hi
    ]


def carbon(region: str, start: datetime, hours: int) -> list[tuple[datetime, float]]:
    """(hour start UTC, gCO2eq/kWh direct) rows in [start, start + hours)."""
    lo, hi = _key(start), _key(start + timedelta(hours=hours))
    return [
        (_ts(row["timestamp_utc"]), float(row["gco2_per_kwh"]))
        for row in _rows(carbon_csv(region))
        if lo <= row["timestamp_utc"] < hi
    ]
