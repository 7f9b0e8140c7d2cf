"""Series lookups by binary search answer exactly what a scan in order answers.

The reference functions below are the scans the lookups replaced; random series (firm points
with gaps, forecasts overlapping them or not, aligned or not) are queried at random instants.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from wattscale.signals import Point, Series

pytestmark = pytest.mark.unit

T0 = datetime(2024, 7, 1, tzinfo=UTC)


def _points(rng: random.Random, start_minute: int, count: int) -> tuple[Point, ...]:
    out, t = [], start_minute
    for _ in range(count):
        t += rng.choice([0, 0, 0, 15, 60])  # gaps now and then
        length = rng.choice([15, 30, 60])
        out.append(Point(T0 + timedelta(minutes=t), T0 + timedelta(minutes=t + length), t))
        t += length
    return tuple(out)


def _ref_all(s: Series) -> list[Point]:
    merged = list(s.points)
    for p in s.forecast:
        if not any(q.start < p.end and p.start < q.end for q in s.points):
            merged.append(p)
    merged.sort(key=lambda p: p.start)
    return merged


def _ref_current(s: Series, now: datetime) -> Point | None:
    for group in (s.points, s.forecast):
        for p in group:
            if p.covers(now):
                return p
    return None


def _ref_latest_before(s: Series, now: datetime) -> Point | None:
    candidates = [p for p in _ref_all(s) if p.start <= now]
    return candidates[-1] if candidates else None


@pytest.mark.parametrize("seed", range(20))
def test_lookups_equal_the_scans(seed: int) -> None:
    rng = random.Random(seed)
    firm = _points(rng, 0, rng.randint(0, 30))
    forecast = _points(rng, rng.choice([0, 7, 600, 1200]), rng.randint(0, 30))
    s = Series("x", "price", "USD/kWh", firm, T0, forecast=forecast)
    assert s.all_points() == _ref_all(s)
    for _ in range(100):
        now = T0 + timedelta(minutes=rng.uniform(-60, 3000))
        assert s.current(now) == _ref_current(s, now)
        assert s.latest_before(now) == _ref_latest_before(s, now)
        assert s.point_at(now) == next((p for p in _ref_all(s) if p.covers(now)), None)
        horizon = timedelta(minutes=rng.choice([30, 240]))
        end = now + horizon
        assert s.upcoming(now, horizon) == [p for p in _ref_all(s) if p.end > now and p.start < end]
