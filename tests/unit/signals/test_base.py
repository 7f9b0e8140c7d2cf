"""Series semantics, point cleaning, currency conversion, secrets and the TTL cache."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from wattscale.api.sources import SecretKeyRef
from wattscale.signals.base import (
    BadPayload,
    Cached,
    ConfigError,
    CurrencyMismatch,
    GridEvent,
    GridEvents,
    Point,
    RateLimited,
    Series,
    SourceContext,
    StaleData,
    Unreachable,
    clean_points,
    dict_secret_resolver,
    price_factor,
    resolve_secret,
)

pytestmark = pytest.mark.unit

T0 = datetime(2024, 7, 1, 10, tzinfo=UTC)
H = timedelta(hours=1)


def hourly(
    values: list[object], start: datetime = T0
) -> list[tuple[datetime, datetime, object, None]]:
    return [(start + i * H, start + (i + 1) * H, v, None) for i, v in enumerate(values)]


def series(
    points: tuple[Point, ...], forecast: tuple[Point, ...] = (), max_age: float = 3600
) -> Series:
    return Series("t", "price", "EUR/kWh", points, T0, forecast=forecast, max_age_seconds=max_age)


def test_clean_points_drops_nan_inf_and_junk_and_keeps_negatives() -> None:
    points, warnings = clean_points(hourly([1.0, math.nan, "inf", -500.0, None, "x", "2.5"]), "t")
    assert [p.value for p in points] == [1.0, -500.0, 2.5]
    assert any("dropped 4" in w for w in warnings)
    assert any("gap" in w for w in warnings)


def test_clean_points_deduplicates_keeping_last_and_warns() -> None:
    raw = [*hourly([1.0, 2.0]), (T0, T0 + H, 9.0, None)]
    points, warnings = clean_points(raw, "t")
    assert [p.value for p in points] == [9.0, 2.0]
    assert any("duplicated" in w for w in warnings)


def test_clean_points_sorts_and_scales() -> None:
    raw = list(reversed(hourly([100.0, 200.0])))
    points, warnings = clean_points(raw, "t", scale=1 / 1000)
    assert [p.value for p in points] == [0.1, 0.2]
    assert points[0].start == T0
    assert warnings == ()


def test_clean_points_reports_missing_hours_without_inventing() -> None:
    raw = hourly([1.0]) + hourly([2.0], start=T0 + 3 * H)
    points, warnings = clean_points(raw, "t")
    assert len(points) == 2
    assert any("2 h missing" in w for w in warnings)


def test_series_current_age_and_staleness() -> None:
    pts, _ = clean_points(hourly([1.0, 2.0]), "t")
    s = series(pts, max_age=1800)
    assert s.value(T0 + timedelta(minutes=30)) == 1.0
    assert s.age_seconds(T0 + H) == 0
    after = T0 + 2 * H + timedelta(minutes=20)
    assert s.age_seconds(after) == 1200
    assert not s.is_stale(after)
    assert s.value(after) == 2.0  # newest earlier value while not stale
    late = T0 + 3 * H
    assert s.is_stale(late)
    with pytest.raises(StaleData, match="maxAgeSeconds"):
        s.value(late)
    assert math.isinf(s.age_seconds(T0 - H))


def test_series_prefers_firm_points_over_forecast() -> None:
    firm, _ = clean_points(hourly([1.0]), "t")
    fc, _ = clean_points(hourly([5.0, 6.0]), "t")
    s = series(firm, fc)
    assert s.value(T0) == 1.0
    assert [p.value for p in s.upcoming(T0, 3 * H)] == [1.0, 6.0]


def test_price_factor_same_currency_converted_and_refused() -> None:
    assert price_factor("t", "EUR", "EUR", None) == (1.0, "EUR")
    assert price_factor("t", None, "USD", None) == (1.0, "USD")
    assert price_factor("t", "EUR", "USD", 1.08) == (1.08, "USD")
    with pytest.raises(CurrencyMismatch) as err:
        price_factor("t", "EUR", "USD", None)
    assert "fxRateToRegionCurrency" in str(err.value)
    with pytest.raises(ConfigError):
        price_factor("t", None, None, None)


def test_secret_resolution_never_leaks_the_value() -> None:
    ctx = SourceContext(secrets=dict_secret_resolver({"ns/s/token": "sekrit"}))
    assert resolve_secret(ctx, SecretKeyRef(name="s", key="token", namespace="ns"), "t", "x") == (
        "sekrit"
    )
    with pytest.raises(ConfigError) as err:
        resolve_secret(ctx, SecretKeyRef(name="other", key="token"), "t", "API token")
    assert "other" in str(err.value)
    assert "sekrit" not in str(err.value)


def test_grid_events_cap_and_staleness() -> None:
    events = GridEvents(
        "t",
        (
            GridEvent(T0, T0 + H, 0.5, "capped"),
            GridEvent(T0 + timedelta(minutes=30), None, 0.0, "excluded"),
        ),
        fetched_at=T0,
        max_age_seconds=600,
    )
    assert events.cap_fraction(T0 - H) == 1.0
    assert events.cap_fraction(T0) == 0.5
    assert events.cap_fraction(T0 + 5 * H) == 0.0
    assert events.is_stale(T0 + timedelta(minutes=11))


class FakeSource:
    name = "fake"
    kind = "price"

    def __init__(self, outcomes: list[Series | Exception]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    def read(self, now: datetime) -> Series:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_cache_reuses_within_ttl_and_refreshes_after() -> None:
    good = series(clean_points(hourly([1.0]), "t")[0])
    inner = FakeSource([good])
    cache = Cached[Series](inner, refresh_seconds=60)
    assert cache.read(T0) is good
    assert cache.read(T0 + timedelta(seconds=59)) is good
    assert inner.calls == 1
    cache.read(T0 + timedelta(seconds=61))
    assert inner.calls == 2


def test_cache_serves_last_good_value_with_error() -> None:
    good = series(clean_points(hourly([1.0]), "t")[0])
    inner = FakeSource([good, Unreachable("fake", "down")])
    cache = Cached[Series](inner, refresh_seconds=1)
    cache.read(T0)
    stale = cache.read(T0 + timedelta(seconds=5))
    assert stale.points == good.points
    assert isinstance(stale.last_error, Unreachable)


def test_cache_raises_typed_error_without_a_previous_value() -> None:
    cache = Cached[Series](FakeSource([Unreachable("fake", "down")]), refresh_seconds=1)
    with pytest.raises(Unreachable):
        cache.read(T0)


def test_cache_wraps_unexpected_exceptions() -> None:
    cache = Cached[Series](FakeSource([ZeroDivisionError("boom")]), refresh_seconds=1)
    with pytest.raises(BadPayload, match="ZeroDivisionError"):
        cache.read(T0)


def test_cache_honours_retry_after() -> None:
    good = series(clean_points(hourly([1.0]), "t")[0])
    inner = FakeSource([good, RateLimited("fake", "slow down", retry_after=120), good])
    cache = Cached[Series](inner, refresh_seconds=1)
    cache.read(T0)
    limited = cache.read(T0 + timedelta(seconds=2))
    assert isinstance(limited.last_error, RateLimited)
    assert inner.calls == 2
    again = cache.read(T0 + timedelta(seconds=60))  # still inside Retry-After: no call
    assert isinstance(again.last_error, RateLimited)
    assert inner.calls == 2
    fresh = cache.read(T0 + timedelta(seconds=130))
    assert fresh.last_error is None
    assert inner.calls == 3
