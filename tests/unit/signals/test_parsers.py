"""Pure parsing functions of each provider, in the providers' real payload shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import feeds
from wattscale.api.sources import OpenAdr3GridEventSource
from wattscale.signals import (
    electricitymaps,
    entsoe,
    gb_carbon,
    openadr,
    prometheus_query,
    watttime,
)
from wattscale.signals.base import BadPayload, EmptySeries, RequestRejected

pytestmark = pytest.mark.unit

T0 = datetime(2023, 7, 1, 22, tzinfo=UTC)  # 00:00 CEST on 2023-07-02
H = timedelta(hours=1)


# ---------------------------------------------------------------------------------- ENTSO-E


def test_a44_hourly_positions_and_negative_prices() -> None:
    rows = [(T0 + i * H, p) for i, p in enumerate([10.5, -500.0, 0.0, 87.12])]
    doc = entsoe.parse_a44(feeds.entsoe_a44(rows))
    assert doc.currency == "EUR"
    assert doc.energy_unit == "MWH"
    assert doc.resolution == H
    assert [(s, v) for s, _, v in doc.points] == [(t, str(v)) for t, v in rows]


def test_a44_curve_a03_repeats_the_last_value_for_omitted_positions() -> None:
    rows = [(T0 + i * H, p) for i, p in enumerate([50.0, 50.0, 50.0, 60.0, 60.0])]
    xml = feeds.entsoe_a44(rows, curve_type="A03")
    assert xml.count("<Point>") == 2  # positions 2, 3 and 5 are omitted
    doc = entsoe.parse_a44(xml)
    assert [float(str(v)) for _, _, v in doc.points] == [50.0, 50.0, 50.0, 60.0, 60.0]
    assert doc.points[-1][1] == T0 + 5 * H


def test_a44_quarter_hour_resolution() -> None:
    rows = [(T0 + i * timedelta(minutes=15), float(i)) for i in range(8)]
    doc = entsoe.parse_a44(feeds.entsoe_a44(rows, resolution_minutes=15))
    assert doc.resolution == timedelta(minutes=15)
    assert len(doc.points) == 8
    assert doc.points[1][0] == T0 + timedelta(minutes=15)


def test_a44_prefers_the_finest_resolution_when_both_are_published() -> None:
    hourly = feeds.entsoe_a44([(T0, 40.0)])
    quarter = feeds.entsoe_a44(
        [(T0 + i * timedelta(minutes=15), 40.0 + i) for i in range(4)], resolution_minutes=15
    )
    ts_q = quarter[quarter.index("<TimeSeries>") : quarter.rindex("</TimeSeries>") + 13]
    both = hourly.replace("</Publication_MarketDocument>", ts_q + "</Publication_MarketDocument>")
    doc = entsoe.parse_a44(both)
    assert doc.resolution == timedelta(minutes=15)
    assert len(doc.points) == 4


def test_a44_dst_fall_back_day_has_25_hours() -> None:
    start = datetime(2023, 10, 28, 22, tzinfo=UTC)  # 00:00 CEST on the 25-hour day
    rows = [(start + i * H, float(i)) for i in range(25)]
    xml = feeds.entsoe_a44(rows)
    assert xml.count("<TimeSeries>") == 1
    doc = entsoe.parse_a44(xml)
    assert len(doc.points) == 25
    assert doc.points[-1][1] == datetime(2023, 10, 29, 23, tzinfo=UTC)


def test_a44_acknowledgement_no_data_is_an_empty_series_with_reason() -> None:
    with pytest.raises(EmptySeries, match="No matching data found"):
        entsoe.parse_a44(feeds.entsoe_ack("No matching data found for Data item ENERGY_PRICES"))
    with pytest.raises(RequestRejected, match="code 21"):
        entsoe.parse_a44(feeds.entsoe_ack("Wrong domain", code="21"))


@pytest.mark.parametrize(
    "body",
    [
        b"<Publication_MarketDocument><TimeSeries>",  # truncated
        b"not xml at all",
        b"<html><body>Service Unavailable</body></html>",
        b'<Publication_MarketDocument xmlns="x"><type>A65</type></Publication_MarketDocument>',
    ],
)
def test_a44_malformed_xml_is_bad_payload(body: bytes) -> None:
    with pytest.raises(BadPayload):
        entsoe.parse_a44(body)


def test_a44_bad_resolution_and_position() -> None:
    xml = feeds.entsoe_a44([(T0, 1.0)]).replace("PT60M", "P1W")
    with pytest.raises(BadPayload, match="resolution"):
        entsoe.parse_a44(xml)
    xml = feeds.entsoe_a44([(T0, 1.0)]).replace("<position>1</position>", "<position>x</position>")
    with pytest.raises(BadPayload, match="position"):
        entsoe.parse_a44(xml)


# ---------------------------------------------------------------------- Electricity Maps


def test_em_latest_carbon_and_forecast() -> None:
    start, step, value = electricitymaps.parse_latest_carbon(
        feeds.em_carbon_latest("DE", T0, 312.0)
    )
    assert (start, step, value) == (T0, H, 312.0)
    fc = electricitymaps.parse_forecast(
        feeds.em_carbon_forecast("DE", [(T0 + H, 300.0), (T0 + 2 * H, 290.0)]),
        "carbonIntensity",
        H,
    )
    assert [(s, v) for s, _, v, _ in fc] == [(T0 + H, 300.0), (T0 + 2 * H, 290.0)]


def test_em_price_unit_parsing() -> None:
    assert electricitymaps.parse_price_unit("EUR/MWh") == ("EUR", 1 / 1000)
    assert electricitymaps.parse_price_unit("USD/kWh") == ("USD", 1.0)
    with pytest.raises(BadPayload):
        electricitymaps.parse_price_unit("EUR per MWh")
    with pytest.raises(BadPayload):
        electricitymaps.parse_latest_carbon(["not", "an", "object"])
    with pytest.raises(BadPayload):
        electricitymaps.parse_latest_carbon({"zone": "DE"})


# ---------------------------------------------------------------------------------- WattTime


def test_watttime_lbs_per_mwh_factor_and_period() -> None:
    payload = feeds.watttime_signal("CAISO_NORTH", [(T0, 453.592)])
    raw, factor = watttime.parse_signal(payload)
    assert len(raw) == 12
    assert raw[1][0] - raw[0][0] == timedelta(minutes=5)
    assert float(str(raw[0][2])) * factor == pytest.approx(453.592, rel=1e-3)


def test_watttime_rejects_unknown_units_and_shapes() -> None:
    payload = feeds.watttime_signal("CAISO_NORTH", [(T0, 100.0)])
    payload["meta"]["units"] = "percentile"
    with pytest.raises(BadPayload, match="units"):
        watttime.parse_signal(payload)
    with pytest.raises(BadPayload):
        watttime.parse_signal({"data": "nope", "meta": {}})


# ------------------------------------------------------------------------ GB Carbon Intensity


def test_gb_national_splits_actual_and_forecast_and_keeps_index() -> None:
    now = T0 + H
    actual, forecast = gb_carbon.parse_intensity(
        feeds.gb_national([(T0, 150.0), (T0 + H, 90.0)], now)
    )
    assert len(actual) == 2
    assert len(forecast) == 4
    assert actual[0][3] in {"low", "moderate"}
    assert forecast[-1][1] == T0 + 2 * H


def test_gb_regional_shape() -> None:
    actual, forecast = gb_carbon.parse_intensity(feeds.gb_regional(13, [(T0, 210.0)]))
    assert actual == []
    assert [v for _, _, v, _ in forecast] == [210, 210]
    with pytest.raises(BadPayload):
        gb_carbon.parse_intensity({"data": [{"from": "2023-01-01T00:00Z"}]})


# -------------------------------------------------------------------------------- Prometheus


def test_prometheus_vector_matrix_and_errors() -> None:
    assert prometheus_query.parse_query_result(feeds.prom_vector("0.21", 1.7e9), "q") == [
        (1.7e9, "0.21")
    ]
    samples = prometheus_query.parse_query_result(
        feeds.prom_matrix([(1.7e9, "1"), (1.7e9 + 60, "NaN")]), "q"
    )
    assert len(samples) == 2
    two = feeds.prom_vector("1", 1.7e9)
    two["data"]["result"].append(two["data"]["result"][0])
    with pytest.raises(BadPayload, match="aggregate"):
        prometheus_query.parse_query_result(two, "q")
    with pytest.raises(EmptySeries):
        prometheus_query.parse_query_result(
            {"status": "success", "data": {"resultType": "vector", "result": []}}, "q"
        )
    with pytest.raises(RequestRejected, match="bad_data"):
        prometheus_query.parse_query_result(
            {"status": "error", "errorType": "bad_data", "error": "parse error"}, "q"
        )


# ---------------------------------------------------------------------------------- OpenADR 3


def _cfg(**kw: object) -> OpenAdr3GridEventSource:
    return OpenAdr3GridEventSource.model_validate({"type": "openadr3", "baseUrl": "http://x", **kw})


def test_openadr_durations() -> None:
    assert openadr.parse_duration("PT1H30M") == timedelta(minutes=90)
    assert openadr.parse_duration("P1DT2H") == timedelta(days=1, hours=2)
    assert openadr.parse_duration("PT0S") == timedelta(0)
    with pytest.raises(BadPayload):
        openadr.parse_duration("1 hour")


def test_openadr_simple_levels_become_sequential_caps() -> None:
    ev = feeds.oadr_event(
        "e1",
        "p1",
        T0,
        "PT1H",
        [
            [{"type": "SIMPLE", "values": [1]}],
            [{"type": "SIMPLE", "values": [3]}],
            [{"type": "SIMPLE", "values": [0]}],
        ],
    )
    events, warnings = openadr.parse_events([ev], _cfg(), T0 - H)
    assert warnings == []
    assert [(e.start, e.end, e.cap_fraction, e.kind, e.level) for e in events] == [
        (T0, T0 + H, 0.75, "capped", 1),
        (T0 + H, T0 + 2 * H, 0.0, "excluded", 3),
    ]
    assert events[0].program == "p1"
    assert events[0].reason == "grid stress"


def test_openadr_import_capacity_limit_needs_site_capacity() -> None:
    ev = feeds.oadr_event(
        "e2",
        "p1",
        T0,
        "PT2H",
        [[{"type": "IMPORT_CAPACITY_LIMIT", "values": [0.6]}]],
        descriptors=[{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "MW"}],
    )
    events, warnings = openadr.parse_events([ev], _cfg(), T0)
    assert events == []
    assert "siteImportCapacityKw" in warnings[0]
    events, _ = openadr.parse_events([ev], _cfg(siteImportCapacityKw=1500), T0)
    assert events[0].cap_fraction == pytest.approx(0.4)
    assert events[0].end == T0 + 2 * H


def test_openadr_open_ended_and_past_events() -> None:
    open_ended = feeds.oadr_event(
        "e3", "p", T0, "PT0S", [[{"type": "ALERT_GRID_EMERGENCY", "values": ["x"]}]]
    )
    past = feeds.oadr_event("e4", "p", T0 - 5 * H, "PT1H", [[{"type": "SIMPLE", "values": [3]}]])
    events, _ = openadr.parse_events([open_ended, past], _cfg(), T0 + H)
    assert len(events) == 1
    assert events[0].end is None
    assert events[0].cap_fraction == 0.0
    with pytest.raises(BadPayload):
        openadr.parse_events({"not": "a list"}, _cfg(), T0)
