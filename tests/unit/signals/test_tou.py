"""Time-of-use tariffs: weekday windows, wrap past midnight, and DST-change days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from wattscale.api.sources import TouPriceSource
from wattscale.signals.base import CurrencyMismatch, Point, SourceContext
from wattscale.signals.tou import TouSource, expand

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")


def tariff(**kw: object) -> TouPriceSource:
    base = {
        "type": "tou",
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "defaultPricePerKwh": "0.20",
        "windows": [
            {
                "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
                "start": "07:00",
                "end": "21:00",
                "pricePerKwh": "0.35",
            },
            {"days": ["Sat", "Sun"], "start": "23:00", "end": "06:00", "pricePerKwh": "0.10"},
        ],
    }
    return TouPriceSource.model_validate({**base, **kw})


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN)


def price(series_points: list[Point], t: datetime) -> float:
    return next(p.value for p in series_points if p.covers(t.astimezone(UTC)))


def test_weekday_window_and_weekend_wrap_past_midnight() -> None:
    pts = expand(
        tariff(), local(2024, 7, 5, 0).astimezone(UTC), local(2024, 7, 9, 0).astimezone(UTC)
    )
    assert price(pts, local(2024, 7, 5, 6, 59)) == 0.20  # Friday before peak
    assert price(pts, local(2024, 7, 5, 7)) == 0.35
    assert price(pts, local(2024, 7, 5, 23, 30)) == 0.20  # Friday night: window is Sat/Sun only
    assert price(pts, local(2024, 7, 6, 23, 30)) == 0.10  # Saturday night
    assert price(pts, local(2024, 7, 8, 5, 59)) == 0.10  # Monday early: wrapped from Sunday
    assert price(pts, local(2024, 7, 8, 6)) == 0.20


def test_spring_forward_day_has_23_hours_and_windows_in_local_time() -> None:
    # 2024-03-31: Europe/Berlin jumps 02:00 -> 03:00. Monday peak still starts at 07:00 local.
    cfg = tariff(
        windows=[{"days": ["Sun"], "start": "01:00", "end": "04:00", "pricePerKwh": "0.5"}]
    )
    start = local(2024, 3, 31, 0).astimezone(UTC)
    end = local(2024, 4, 1, 0).astimezone(UTC)
    assert end - start == timedelta(hours=23)
    pts = expand(cfg, start, end)
    window = [p for p in pts if p.value == 0.5]
    assert len(window) == 1
    # 01:00 CET = 00:00Z; 04:00 CEST = 02:00Z: the window lasts 2 real hours on this day.
    assert window[0].start == datetime(2024, 3, 31, 0, tzinfo=UTC)
    assert window[0].end == datetime(2024, 3, 31, 2, tzinfo=UTC)
    assert sum((p.end - p.start for p in pts), timedelta()) == timedelta(hours=23)


def test_fall_back_day_has_25_hours_and_repeated_hour_priced_once_each() -> None:
    # 2024-10-27: 03:00 CEST -> 02:00 CET; a 02:00-03:00 window holds for 2 real hours.
    cfg = tariff(
        windows=[{"days": ["Sun"], "start": "02:00", "end": "03:00", "pricePerKwh": "0.9"}]
    )
    start = local(2024, 10, 27, 0).astimezone(UTC)
    end = local(2024, 10, 28, 0).astimezone(UTC)
    assert end - start == timedelta(hours=25)
    pts = expand(cfg, start, end)
    window = [p for p in pts if p.value == 0.9]
    assert sum((p.end - p.start for p in window), timedelta()) == timedelta(hours=2)
    assert window[0].start == datetime(2024, 10, 27, 0, tzinfo=UTC)


def test_source_reads_with_fx_and_refuses_unknown_conversion() -> None:
    now = datetime(2024, 7, 5, 10, tzinfo=UTC)
    series = TouSource(
        tariff(fxRateToRegionCurrency="1.1"), SourceContext(region_currency="USD")
    ).read(now)
    assert series.unit == "USD/kWh"
    assert series.value(now) == pytest.approx(0.35 * 1.1)
    assert series.age_seconds(now) == 0
    assert series.upcoming(now, timedelta(hours=48))[-1].end >= now + timedelta(hours=48)
    with pytest.raises(CurrencyMismatch, match="fxRateToRegionCurrency"):
        TouSource(tariff(), SourceContext(region_currency="USD")).read(now)


def test_unknown_timezone_is_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match="IANA"):
        tariff(timezone="Mars/Olympus")
