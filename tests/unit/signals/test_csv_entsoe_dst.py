"""CSV edge cases on local files, and ENTSO-E's spring-forward day (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import feeds
from wattscale.api.sources import CsvCarbonSource, CsvPriceSource, EntsoePriceSource
from wattscale.signals.base import BadPayload, CurrencyMismatch, EmptySeries, SourceContext
from wattscale.signals.csv_series import CsvSource
from wattscale.signals.entsoe import EntsoeSource, parse_a44

pytestmark = pytest.mark.unit

NOW = datetime(2024, 1, 1, 1, 30, tzinfo=UTC)
HEADER = "timestamp_utc,region,price_per_mwh,currency,price_usd_mwh\n"


def price_source(path: Path, currency: str = "EUR", **kw: object) -> CsvSource:
    cfg = CsvPriceSource.model_validate({"type": "csv", "path": str(path), **kw})
    return CsvSource(cfg, SourceContext(region_currency=currency))


def test_nan_inf_empty_and_negative_rows(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text(
        HEADER
        + "2024-01-01T00:00:00Z,X,-12.5,EUR,0\n"
        + "2024-01-01T01:00:00Z,X,nan,EUR,0\n"
        + "2024-01-01T02:00:00Z,X,inf,EUR,0\n"
        + "2024-01-01T03:00:00Z,X,,EUR,0\n"
        + "2024-01-01T04:00:00Z,X,40,EUR,0\n"
    )
    s = price_source(f).read(NOW)
    assert [p.value for p in s.points] == [-0.0125, 0.04]
    assert any("dropped 3" in w for w in s.warnings)
    assert s.current(NOW) is None  # the NaN hour is not filled in
    assert s.value(NOW) == -0.0125  # the last value, 30 min old, within maxAgeSeconds


def test_missing_column_empty_file_and_foreign_region(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("time,price\n2024-01-01T00:00:00Z,3\n")
    with pytest.raises(BadPayload, match="timestamp_utc"):
        price_source(f).read(NOW)
    f.write_text(HEADER)
    with pytest.raises(EmptySeries):
        price_source(f).read(NOW)
    f.write_text(HEADER + "2024-01-01T00:00:00Z,FR,3,EUR,3\n")
    with pytest.raises(EmptySeries, match="DE-LU"):
        price_source(f, regionKey="DE-LU").read(NOW)


def test_currency_column_mismatch_and_mixed(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text(HEADER + "2024-01-01T01:00:00Z,X,3,JPY,0\n")
    with pytest.raises(CurrencyMismatch, match="JPY"):
        price_source(f, currency="USD").read(NOW)
    s = price_source(f, currency="USD", fxRateToRegionCurrency="0.00665").read(NOW)
    assert s.value(NOW) == pytest.approx(3 / 1000 * 0.00665)
    f.write_text(HEADER + "2024-01-01T00:00:00Z,X,3,JPY,0\n2024-01-01T01:00:00Z,X,3,EUR,0\n")
    with pytest.raises(BadPayload, match="mix"):
        price_source(f).read(NOW)


def test_carbon_units_and_naive_timestamps(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text("ts,moer\n2024-01-01 01:00:00,1000\n")
    cfg = CsvCarbonSource.model_validate(
        {
            "type": "csv",
            "path": str(f),
            "timestampColumn": "ts",
            "valueColumn": "moer",
            "carbonUnit": "lbsPerMwh",
        }
    )
    s = CsvSource(cfg, SourceContext()).read(NOW)
    assert s.value(NOW) == pytest.approx(453.592)


def test_entsoe_spring_forward_day_has_23_hours() -> None:
    start = datetime(2024, 3, 30, 23, tzinfo=UTC)  # 00:00 CET on 2024-03-31
    rows = [(start + i * timedelta(hours=1), float(i)) for i in range(23)]
    doc = parse_a44(feeds.entsoe_a44(rows))
    cfg = EntsoePriceSource.model_validate(
        {
            "type": "entsoe",
            "biddingZone": "10Y1001A1001A82H",
            "securityTokenSecretRef": {"name": "e", "key": "t"},
        }
    )
    series = EntsoeSource(cfg, SourceContext(region_currency="EUR")).to_series(doc, start)
    assert len(series.points) == 23
    assert series.points[-1].end == datetime(2024, 3, 31, 22, tzinfo=UTC)
    assert series.warnings == ()
