"""A static time-of-use tariff: prices by weekday and local wall-clock time in an IANA timezone.

The tariff is expanded minute by minute in UTC and each instant is mapped to its local wall time
with zoneinfo, so DST days come out right by construction: a 23-hour spring-forward day has 23
hours of prices, a 25-hour fall-back day 25, and a window that starts inside a skipped hour starts
when the clock jumps past it. Consecutive minutes with the same price merge into one Point.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from wattscale.api.sources import TouPriceSource, TouWindow
from wattscale.signals.base import (
    Point,
    Series,
    SourceContext,
    price_factor,
    price_unit,
    utc,
)

NAME = "tou"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MINUTE = timedelta(minutes=1)


def hhmm(value: str) -> int:
    """Minutes since midnight of `HH:MM` (`24:00` -> 1440)."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def window_matches(window: TouWindow, weekday: int, minute: int) -> bool:
    """Whether local (weekday 0=Mon, minute of day) falls in the window."""
    start, end = hhmm(window.start), hhmm(window.end)
    today = _DAYS[weekday] in window.days
    if start == end:  # the whole day
        return today
    if start < end:
        return today and start <= minute < end
    yesterday = _DAYS[(weekday - 1) % 7] in window.days
    return (today and minute >= start) or (yesterday and minute < end)


def price_at(config: TouPriceSource, local: datetime) -> float:
    """The tariff price (tariff currency per kWh) at a local wall-clock time."""
    minute = local.hour * 60 + local.minute
    for window in config.windows:
        if window_matches(window, local.weekday(), minute):
            return float(window.pricePerKwh)
    return float(config.defaultPricePerKwh)


def expand(config: TouPriceSource, start: datetime, end: datetime) -> list[Point]:
    """Piecewise-constant prices over [start, end) (UTC), tariff currency per kWh."""
    tz = ZoneInfo(config.timezone)
    t = utc(start).replace(second=0, microsecond=0)
    end = utc(end)
    points: list[Point] = []
    seg_start = t
    seg_price = price_at(config, t.astimezone(tz))
    while t < end:
        t += MINUTE
        price = price_at(config, t.astimezone(tz)) if t < end else None
        if price != seg_price:
            points.append(Point(seg_start, t, seg_price))
            if price is None:
                break
            seg_start, seg_price = t, price
    return points


class TouSource:
    """A tariff declared in the Region: no I/O, never stale."""

    kind = "price"

    def __init__(self, config: TouPriceSource, ctx: SourceContext) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx

    def read(self, now: datetime) -> Series:
        """Prices from the start of the current local day to `horizonHours` ahead."""
        now = utc(now)
        tz = ZoneInfo(self.config.timezone)
        local_midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        start = utc(local_midnight)
        if start > now:  # a midnight skipped by DST resolves forward; start an hour earlier
            start = now.replace(minute=0, second=0, microsecond=0)
        fx, currency = price_factor(
            NAME, self.config.currency, self.ctx.region_currency, self.config.fxRateToRegionCurrency
        )
        raw = expand(self.config, start, now + timedelta(hours=self.config.horizonHours))
        points = tuple(Point(p.start, p.end, p.value * fx) for p in raw)
        return Series(
            source=NAME,
            kind="price",
            unit=price_unit(currency),
            points=points,
            fetched_at=now,
            max_age_seconds=self.config.maxAgeSeconds,
        )
