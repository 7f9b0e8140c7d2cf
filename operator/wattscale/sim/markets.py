"""What a live operator knew of each price series, and when: the replay's price knowledge.

Each price series belongs to a market with a publication rule, read from a table (data, not code
keyed on file names): `wattscale/data/price_markets.csv` for the regions the project ships,
overridable per run with a CSV of the same columns (`region,kind,publish_local_time,time_zone,
market,source`):

- `day-ahead`: the prices of local delivery day D are published on day D-1 at
  `publish_local_time` in the market's own `time_zone` (e.g. CAISO 13:00 Pacific, ERCOT 13:30
  Central, SDAC 12:45 CET, JEPX ~10:10 JST); the `source` column says where the time comes from;
- `real-time`: an hour's price is known only once the hour is over.

A region the table does not list is real-time (nothing known ahead), so a user's own price files
replay honestly. Beyond what is published, a policy sees the operator's own price forecast: the
controller passes the planner the feed's known points and the planner extends the last known value
over the rest of the horizon (`planner.costing._series`); for a real-time feed that is the latest
completed hour. `PriceKnowledge.view` builds exactly that view for every policy alike.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from wattscale.sim.errors import SimInputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAY_AHEAD = "day-ahead"
REAL_TIME = "real-time"
KINDS = (DAY_AHEAD, REAL_TIME)
COLUMNS = ("region", "kind", "publish_local_time", "time_zone")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class MarketRule:
    """How one region's prices are published."""

    region: str
    kind: str = REAL_TIME
    publish_local_time: time | None = None
    time_zone: str = "UTC"
    market: str = ""
    source: str = ""

    @property
    def day_ahead(self) -> bool:
        return self.kind == DAY_AHEAD

    def describe(self) -> str:
        if self.publish_local_time is None:
            return f"{self.region}: real-time (known after each hour)"
        return (
            f"{self.region}: day-ahead, published {self.publish_local_time:%H:%M} "
            f"{self.time_zone} the day before"
        )


def unknown_region(region: str) -> MarketRule:
    """The rule of a region no table lists: real-time, nothing known ahead."""
    return MarketRule(region=region, source="not in the price-market table: real-time")


def _rule(path: Path | str, line_no: int, row: dict[str, str]) -> MarketRule:
    region = (row.get("region") or "").strip()
    kind = (row.get("kind") or "").strip().lower()
    if not region:
        raise SimInputError(f"{path}:{line_no}: empty region")
    if kind not in KINDS:
        raise SimInputError(f"{path}:{line_no}: kind {kind!r} is not one of {', '.join(KINDS)}")
    zone = (row.get("time_zone") or "").strip() or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SimInputError(f"{path}:{line_no}: unknown time zone {zone!r}") from None
    raw = (row.get("publish_local_time") or "").strip()
    publish: time | None = None
    if kind == DAY_AHEAD:
        match = _HHMM.match(raw)
        if match is None:
            raise SimInputError(
                f"{path}:{line_no}: a day-ahead market needs publish_local_time HH:MM (got {raw!r})"
            )
        publish = time(int(match.group(1)), int(match.group(2)))
    return MarketRule(
        region=region,
        kind=kind,
        publish_local_time=publish,
        time_zone=zone,
        market=(row.get("market") or "").strip(),
        source=(row.get("source") or "").strip(),
    )


def parse_table(text: str, origin: Path | str) -> dict[str, MarketRule]:
    """Rules by region from the CSV text of a price-market table."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SimInputError(f"{origin}: missing column(s) {', '.join(missing)}")
    rules: dict[str, MarketRule] = {}
    for line_no, row in enumerate(reader, start=2):
        rule = _rule(origin, line_no, row)
        rules[rule.region] = rule
    return rules


def shipped_table() -> dict[str, MarketRule]:
    """The table shipped with wattscale (`wattscale/data/price_markets.csv`)."""
    ref = resources.files("wattscale.data").joinpath("price_markets.csv")
    return parse_table(ref.read_text(encoding="utf-8"), "price_markets.csv")


def load_table(override: Path | None = None) -> dict[str, MarketRule]:
    """The shipped table, with the rows of `override` (a CSV of the same shape) replacing it."""
    rules = shipped_table()
    if override is None:
        return rules
    try:
        text = override.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SimInputError(f"{override}: price-market table not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SimInputError(f"{override}: cannot read the price-market table ({err})") from None
    rules.update(parse_table(text, override))
    return rules


def rules_for(
    regions: tuple[str, ...] | list[str], table: dict[str, MarketRule]
) -> tuple[MarketRule, ...]:
    """One rule per region, unknown regions real-time."""
    return tuple(table.get(r) or unknown_region(r) for r in regions)


def known_hours(rule: MarketRule, start: datetime, minutes: int) -> IntArray:
    """Per simulated minute: how many hours from `start` have a price known at that minute.

    Real-time: the hours already over. Day-ahead: also every local delivery day whose results were
    published by then (the current hour's day was always published the day before).
    """
    t = np.arange(minutes, dtype=np.int64)
    known = t // 60  # hours already over
    if not rule.day_ahead or rule.publish_local_time is None:
        return known
    zone = ZoneInfo(rule.time_zone)
    events = np.zeros(minutes, dtype=np.int64)
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = (start + timedelta(minutes=minutes)).astimezone(zone).date() + timedelta(days=1)
    day = first
    while day <= last:
        published = datetime.combine(day, rule.publish_local_time, zone)
        # Prices of day+1 (local) are known from `published`, up to the local midnight after it.
        day_end = datetime.combine(day + timedelta(days=2), time(0), zone)
        through = int(np.ceil((day_end - start).total_seconds() / 3600.0))
        at = int(np.ceil((published - start).total_seconds() / 60.0))
        at = max(at, 0)
        if at < minutes:
            events[at] = max(events[at], through)
        day += timedelta(days=1)
    return np.maximum(known, np.maximum.accumulate(events))


class PriceKnowledge:
    """Every policy's view of prices at a minute: published values, then the operator's forecast.

    `prices` (hours, regions) runs from the period's start and may extend past it (day-ahead
    horizon); `lead` is the hour before the start (what a real-time feed shows at minute 0).
    """

    def __init__(
        self,
        prices: FloatArray,
        lead: FloatArray,
        rules: tuple[MarketRule, ...],
        start: datetime,
        minutes: int,
    ) -> None:
        self.rules = rules
        self._prices = np.asarray(prices, dtype=np.float64)
        self._lead = np.asarray(lead, dtype=np.float64)
        available = self._prices.shape[0]
        self.known = (
            np.column_stack([np.minimum(known_hours(r, start, minutes), available) for r in rules])
            if rules
            else np.zeros((minutes, 0), dtype=np.int64)
        )
        self._cache_key: tuple[int, ...] | None = None
        self._cache: FloatArray | None = None

    def view(self, minute: int) -> FloatArray:
        """(hours, regions) from the start: each region's known hours, then its last known value
        carried forward (the operator's persistence forecast) up to the longest known horizon."""
        row = self.known[minute]
        hour = minute // 60
        key = (hour, *(int(k) for k in row))
        if key == self._cache_key and self._cache is not None:
            return self._cache
        length = max(hour + 1, int(row.max()) if row.size else 0)
        out = np.empty((length, self._prices.shape[1]), dtype=np.float64)
        for i, k in enumerate(row):
            k = int(k)
            out[:k, i] = self._prices[:k, i]
            out[k:, i] = self._prices[k - 1, i] if k > 0 else self._lead[i]
        out.setflags(write=False)
        self._cache_key, self._cache = key, out
        return out
