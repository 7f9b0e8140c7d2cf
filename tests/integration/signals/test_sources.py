"""Every source against a local server answering in its provider's real format, with real data."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import data, feeds
from tests.fakes.feeds import FeedServer, Reply, Seen, json_reply
from wattscale.api.sources import (
    CsvCarbonSource,
    CsvPriceSource,
    ElectricityMapsCarbonSource,
    ElectricityMapsPriceSource,
    EntsoePriceSource,
    GbCarbonIntensitySource,
    OpenAdr3GridEventSource,
    PrometheusCarbonSource,
    PrometheusPriceSource,
    StaticGridEventSource,
    TouPriceSource,
    WattTimeCarbonSource,
)
from wattscale.signals.base import dict_secret_resolver
from wattscale.signals.registry import (
    build_carbon_source,
    build_grid_event_source,
    build_price_source,
)

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
SECRETS = dict_secret_resolver(
    {
        "feeds/entsoe": "entsoe-token",
        "feeds/em": "em-token",
        "feeds/wt-user": "alice",
        "feeds/wt-pass": "s3cret",
        "feeds/vtn-id": "ven-1",
        "feeds/vtn-secret": "ven-secret",
    }
)
FAST = {"timeoutSeconds": 2, "maxRetries": 0}


def ref(key: str) -> dict[str, str]:
    return {"name": "feeds", "key": key}


def entsoe_route(region: str = "DE-LU") -> feeds.Route:
    """Answer A44 requests from the real price file for the requested period."""

    def answer(req: Seen) -> Reply:
        if req.arg("securityToken") != "entsoe-token":
            return Reply(401, "<html><body>Unauthorized</body></html>")
        start = datetime.strptime(req.arg("periodStart") or "", "%Y%m%d%H%M").replace(tzinfo=UTC)
        end = datetime.strptime(req.arg("periodEnd") or "", "%Y%m%d%H%M").replace(tzinfo=UTC)
        rows = data.prices(region, start, int((end - start) / H))
        if not rows:
            return Reply(200, feeds.entsoe_ack("No matching data found for Data item"))
        return Reply(
            200, feeds.entsoe_a44([(t, p) for t, p, _ in rows], zone=req.arg("in_Domain") or "")
        )

    return answer


def entsoe_cfg(url: str, **kw: object) -> EntsoePriceSource:
    return EntsoePriceSource.model_validate(
        {
            "type": "entsoe",
            "baseUrl": f"{url}/api",
            "biddingZone": "10Y1001A1001A82H",
            "securityTokenSecretRef": ref("entsoe"),
            **FAST,
            **kw,
        }
    )


def test_entsoe_day_ahead_with_real_negative_prices() -> None:
    now = datetime(2023, 7, 2, 12, 30, tzinfo=UTC)  # DE-LU at -500 EUR/MWh at 12:00Z
    with FeedServer({"GET /api": entsoe_route()}) as srv:
        source = build_price_source(entsoe_cfg(srv.url), secrets=SECRETS, region_currency="EUR")
        series = source.read(now)
        req = srv.hits("/api")[0]
    assert req.arg("documentType") == "A44"
    assert req.arg("in_Domain") == req.arg("out_Domain") == "10Y1001A1001A82H"
    assert req.arg("periodStart") == "202307010000"
    assert series.unit == "EUR/kWh"
    assert series.value(now) == pytest.approx(-0.5)
    assert series.age_seconds(now) == 0
    assert len(series.upcoming(now, timedelta(hours=24))) == 25  # 12:00 .. 12:00 next day


def test_entsoe_dst_fall_back_day_and_missing_hour_in_real_data() -> None:
    # 2023-10-29 is 25 h long in CET; the shared DE-LU file lacks 2023-10-29T01 (one 02:00).
    now = datetime(2023, 10, 29, 12, tzinfo=UTC)
    with FeedServer({"GET /api": entsoe_route()}) as srv:
        series = build_price_source(
            entsoe_cfg(srv.url), secrets=SECRETS, region_currency="EUR"
        ).read(now)
    starts = {p.start for p in series.points}
    assert datetime(2023, 10, 29, 0, tzinfo=UTC) in starts
    assert datetime(2023, 10, 29, 1, tzinfo=UTC) not in starts
    assert any("1 h missing" in w for w in series.warnings)


def test_entsoe_in_another_currency_converted_or_refused() -> None:
    now = datetime(2024, 3, 5, 9, tzinfo=UTC)
    expected = data.prices("DE-LU", now.replace(minute=0), 1)[0][1] / 1000 * 1.08
    with FeedServer({"GET /api": entsoe_route()}) as srv:
        series = build_price_source(
            entsoe_cfg(srv.url, fxRateToRegionCurrency="1.08"),
            secrets=SECRETS,
            region_currency="USD",
        ).read(now)
        assert series.unit == "USD/kWh"
        assert series.value(now) == pytest.approx(expected)
        from wattscale.signals.base import CurrencyMismatch

        with pytest.raises(CurrencyMismatch, match="fxRateToRegionCurrency"):
            build_price_source(entsoe_cfg(srv.url), secrets=SECRETS, region_currency="USD").read(
                now
            )


def test_electricity_maps_carbon_and_price() -> None:
    now = datetime(2024, 5, 14, 9, 20, tzinfo=UTC)
    hour = now.replace(minute=0)
    carbon_rows = data.carbon("DE-LU", hour, 25)
    price_rows = data.prices("DE-LU", hour, 24)

    def authed(reply: Reply) -> feeds.Route:
        def answer(req: Seen) -> Reply:
            if req.headers.get("auth-token") != "em-token":
                return json_reply({"message": "Invalid auth-token"}, 401)
            return reply

        return answer

    routes: dict[str, feeds.Route] = {
        "/v3/carbon-intensity/latest": authed(
            json_reply(feeds.em_carbon_latest("DE", hour, carbon_rows[0][1]))
        ),
        "/v3/carbon-intensity/forecast": authed(
            json_reply(feeds.em_carbon_forecast("DE", carbon_rows[1:]))
        ),
        "/v3/price-day-ahead/latest": authed(
            json_reply(feeds.em_price_latest("DE", hour, price_rows[0][1]))
        ),
        "/v3/price-day-ahead/forecast": authed(
            json_reply(feeds.em_price_forecast("DE", [(t, p) for t, p, _ in price_rows[1:]]))
        ),
    }
    with FeedServer(routes) as srv:
        common = {"type": "electricityMaps", "baseUrl": srv.url, "zone": "DE", **FAST}
        carbon = build_carbon_source(
            ElectricityMapsCarbonSource.model_validate({**common, "authTokenSecretRef": ref("em")}),
            secrets=SECRETS,
        ).read(now)
        price = build_price_source(
            ElectricityMapsPriceSource.model_validate({**common, "authTokenSecretRef": ref("em")}),
            secrets=SECRETS,
            region_currency="EUR",
        ).read(now)
        assert srv.hits("/v3/carbon-intensity/latest")[0].arg("emissionFactorType") == "direct"
    assert carbon.unit == "gCO2eq/kWh"
    assert carbon.value(now) == pytest.approx(carbon_rows[0][1])
    assert len(carbon.forecast) == 24
    assert price.value(now) == pytest.approx(price_rows[0][1] / 1000)
    assert price.upcoming(now, timedelta(hours=3))[1].value == pytest.approx(
        price_rows[1][1] / 1000
    )


def test_watttime_login_data_and_token_refresh() -> None:
    now = datetime(2024, 8, 1, 18, 7, tzinfo=UTC)
    hour = now.replace(minute=0)
    rows = data.carbon("US-CAL-CISO", hour - H, 26)
    tokens = iter(["tok-1", "tok-2", "tok-3"])
    valid: set[str] = set()

    def login(req: Seen) -> Reply:
        import base64

        if (
            req.headers.get("Authorization")
            != "Basic " + base64.b64encode(b"alice:s3cret").decode()
        ):
            return json_reply({"error": "invalid credentials"}, 403)
        token = next(tokens)
        valid.clear()
        valid.add(token)
        return json_reply({"token": token})

    def guarded(payload: dict[str, object]) -> feeds.Route:
        def answer(req: Seen) -> Reply:
            if req.headers.get("Authorization", "").removeprefix("Bearer ") not in valid:
                return json_reply({"error": "token expired"}, 401)
            return json_reply(payload)

        return answer

    routes: dict[str, feeds.Route] = {
        "/login": login,
        "/v3/historical": guarded(feeds.watttime_signal("CAISO_NORTH", rows[:2])),
        "/v3/forecast": guarded(feeds.watttime_signal("CAISO_NORTH", rows[1:], forecast=True)),
    }
    with FeedServer(routes) as srv:
        cfg = WattTimeCarbonSource.model_validate(
            {
                "type": "wattTime",
                "baseUrl": srv.url,
                "wattTimeRegion": "CAISO_NORTH",
                "usernameSecretRef": ref("wt-user"),
                "passwordSecretRef": ref("wt-pass"),
                **FAST,
            }
        )
        source = build_carbon_source(cfg, secrets=SECRETS, cache=False)
        series = source.read(now)
        assert srv.hits("/v3/historical")[0].arg("signal_type") == "co2_moer"
        assert srv.hits("/v3/forecast")[0].arg("horizon_hours") == "24"
        valid.clear()  # the server revokes the token: the next read logs in again once
        again = source.read(now + timedelta(minutes=1))
        assert len(srv.hits("/login")) == 2
    assert series.unit == "gCO2eq/kWh"
    assert series.value(now) == pytest.approx(rows[1][1], abs=0.1)  # lbs/MWh round trip
    assert series.points[1].start - series.points[0].start == timedelta(minutes=5)
    assert again.value(now) == series.value(now)


def test_gb_carbon_intensity_national_and_regional() -> None:
    now = datetime(2024, 1, 15, 12, 10, tzinfo=UTC)
    rows = data.carbon("GB", now.replace(minute=0) - H, 26)
    with FeedServer(
        {
            "/intensity/2024-01-15T11:30Z/fw24h": json_reply(feeds.gb_national(rows, now)),
            "/regional/intensity/2024-01-15T11:30Z/fw24h/regionid/13": json_reply(
                feeds.gb_regional(13, rows)
            ),
        }
    ) as srv:
        national = build_carbon_source(
            GbCarbonIntensitySource.model_validate(
                {"type": "gbCarbonIntensity", "baseUrl": srv.url}
            ),
        ).read(now)
        regional = build_carbon_source(
            GbCarbonIntensitySource.model_validate(
                {"type": "gbCarbonIntensity", "baseUrl": srv.url, "gbRegionId": 13}
            ),
        ).read(now)
    assert national.points  # half-hours with an `actual`
    assert national.value(now) == round(rows[1][1] * 1.03)  # current half-hour: forecast only
    current = national.current(now)
    assert current is not None
    assert current.label in {"very low", "low", "moderate", "high", "very high"}
    assert len(regional.forecast) == 52
    assert regional.value(now) == round(rows[1][1])


def test_csv_file_and_url_with_real_data() -> None:
    now = datetime(2022, 4, 4, 6, 30, tzinfo=UTC)  # FR spike of 2987.78 EUR/MWh at 06:00Z
    path = data.prices_csv("FR")
    price = build_price_source(
        CsvPriceSource.model_validate({"type": "csv", "path": str(path)}), region_currency="EUR"
    ).read(now)
    assert price.value(now) == pytest.approx(2.98778)
    text = data.carbon_csv("GB").read_text()
    with FeedServer({"/gb.csv": Reply(200, text.encode(), {"Content-Type": "text/csv"})}) as srv:
        carbon = build_carbon_source(
            CsvCarbonSource.model_validate({"type": "csv", "url": f"{srv.url}/gb.csv"})
        ).read(now)
    assert carbon.value(now) == pytest.approx(data.carbon("GB", now.replace(minute=0), 1)[0][1])
    assert carbon.unit == "gCO2eq/kWh"


def test_csv_real_missing_day_is_reported_and_later_stale(tmp_path: Path) -> None:
    # DE-LU lacks 2024-01-30T23..2024-01-31T22 in the shared file.
    now = datetime(2024, 1, 31, 10, tzinfo=UTC)
    cfg = CsvPriceSource.model_validate(
        {"type": "csv", "path": str(data.prices_csv("DE-LU")), "maxAgeSeconds": 3600}
    )
    series = build_price_source(cfg, region_currency="EUR").read(now)
    assert any("24 h missing" in w for w in series.warnings)
    assert series.current(now) is None
    assert series.is_stale(now)
    # A cut file that ends before `now` is stale, not an error.
    cut = tmp_path / "cut.csv"
    with data.prices_csv("ES").open() as src, cut.open("w") as dst:
        rows = list(csv.reader(src))[:100]
        csv.writer(dst, lineterminator="\n").writerows(rows)
    s2 = build_price_source(
        CsvPriceSource.model_validate({"type": "csv", "path": str(cut)}), region_currency="EUR"
    ).read(datetime(2021, 1, 10, tzinfo=UTC))
    assert s2.is_stale(datetime(2021, 1, 10, tzinfo=UTC))


def test_prometheus_instant_and_range_queries() -> None:
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    rows = data.carbon("US-TEX-ERCO", now - 3 * H, 4)

    def answer(req: Seen) -> Reply:
        if req.path == "/api/v1/query":
            assert req.arg("query") == "avg(grid_price_eur_per_mwh)"
            return json_reply(feeds.prom_vector("85.5", float(req.arg("time") or 0)))
        step = 3600
        return (
            json_reply(
                feeds.prom_matrix(
                    [(t.timestamp(), str(g)) for t, g in rows] + [(now.timestamp(), "NaN")]
                )
            )
            if req.arg("step") == f"{step}s"
            else json_reply({"status": "error"}, 400)
        )

    with FeedServer({"/api/v1/query": answer, "/api/v1/query_range": answer}) as srv:
        price = build_price_source(
            PrometheusPriceSource.model_validate(
                {
                    "type": "prometheus",
                    "baseUrl": srv.url,
                    "query": "avg(grid_price_eur_per_mwh)",
                    "priceUnit": "perMwh",
                    "currency": "EUR",
                }
            ),
            region_currency="EUR",
        ).read(now)
        carbon = build_carbon_source(
            PrometheusCarbonSource.model_validate(
                {
                    "type": "prometheus",
                    "baseUrl": srv.url,
                    "query": "grid_carbon",
                    "rangeSeconds": 4 * 3600,
                    "stepSeconds": 3600,
                }
            )
        ).read(now)
    assert price.value(now) == pytest.approx(0.0855)
    assert len(carbon.points) == 4
    assert any("NaN" in w for w in carbon.warnings)
    assert carbon.value(now - timedelta(minutes=30)) == pytest.approx(rows[2][1])


def test_openadr3_events_with_client_credentials_and_paging() -> None:
    now = datetime(2024, 8, 20, 17, 0, tzinfo=UTC)
    issued: list[str] = []

    def token(req: Seen) -> Reply:
        form = dict(kv.split("=", 1) for kv in req.body.decode().split("&"))
        if form.get("grant_type") != "client_credentials" or form.get("client_secret") != (
            "ven-secret"
        ):
            return json_reply({"error": "invalid_client"}, 400)
        issued.append(f"tok-{len(issued)}")
        return json_reply({"access_token": issued[-1], "token_type": "Bearer", "expires_in": 3600})

    ours = [
        feeds.oadr_event(
            f"ev-{i}",
            "prog-7",
            now + timedelta(hours=i),
            "PT1H",
            [[{"type": "SIMPLE", "values": [1]}]],
        )
        for i in range(52)
    ]
    ours.append(
        feeds.oadr_event(
            "ev-emergency", "prog-7", now - H, "PT3H", [[{"type": "SIMPLE", "values": [3]}]]
        )
    )

    def events(req: Seen) -> Reply:
        if req.headers.get("Authorization") != f"Bearer {issued[-1]}":
            return json_reply({"title": "Forbidden", "status": 403}, 403)
        assert req.arg("programID") == "prog-7"
        skip, limit = int(req.arg("skip") or 0), int(req.arg("limit") or 50)
        return json_reply(ours[skip : skip + limit])

    routes: dict[str, feeds.Route] = {
        "POST /auth/token": token,
        "/programs": json_reply(
            [feeds.oadr_program("prog-1", "other"), feeds.oadr_program("prog-7", "GridStress")]
        ),
        "/events": events,
    }
    with FeedServer(routes) as srv:
        cfg = OpenAdr3GridEventSource.model_validate(
            {
                "type": "openadr3",
                "baseUrl": srv.url,
                "clientIdSecretRef": ref("vtn-id"),
                "clientSecretSecretRef": ref("vtn-secret"),
                "programNames": ["GridStress"],
                **FAST,
            }
        )
        result = build_grid_event_source(cfg, secrets=SECRETS).read(now)
        assert len(srv.hits("/events")) == 2  # 53 events: two pages of 50
    assert len(result.events) == 53
    assert result.cap_fraction(now) == 0.0  # the emergency excludes the region now
    assert result.active(now)[0].kind == "excluded" or result.active(now)[1].kind == "excluded"
    assert result.cap_fraction(now + timedelta(hours=3)) == 0.75


def test_static_events_and_tou_need_no_server() -> None:
    now = datetime(2024, 3, 31, 0, 30, tzinfo=UTC)
    events = build_grid_event_source(
        StaticGridEventSource.model_validate(
            {
                "type": "static",
                "events": [
                    {
                        "start": "2024-03-31T00:00:00Z",
                        "end": "2024-03-31T02:00:00Z",
                        "capFraction": 0.0,
                        "reason": "substation maintenance",
                    },
                    {
                        "start": "2024-03-30T00:00:00Z",
                        "end": "2024-03-30T02:00:00Z",
                        "capFraction": 0.0,
                    },
                ],
            }
        )
    ).read(now)
    assert [e.reason for e in events.events] == ["substation maintenance"]
    assert events.cap_fraction(now) == 0.0
    tou = build_price_source(
        TouPriceSource.model_validate(
            {
                "type": "tou",
                "timezone": "Europe/Berlin",
                "currency": "EUR",
                "defaultPricePerKwh": "0.3",
            }
        ),
        region_currency="EUR",
    ).read(now)
    assert tou.value(now) == 0.3
