"""Feeds that fail, lag, rate-limit and send odd data: every case yields a value or a typed error.

Each test talks to a real local HTTP server. None of them may raise anything but a SignalError.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes import data, feeds
from tests.fakes.feeds import FeedServer, Reply, json_reply
from wattscale.api.sources import (
    ElectricityMapsCarbonSource,
    EntsoePriceSource,
    GbCarbonIntensitySource,
    OpenAdr3GridEventSource,
    PrometheusPriceSource,
)
from wattscale.signals.base import (
    AuthError,
    BadPayload,
    EmptySeries,
    RateLimited,
    RequestRejected,
    SignalError,
    Unreachable,
    dict_secret_resolver,
)
from wattscale.signals.registry import (
    build_carbon_source,
    build_grid_event_source,
    build_price_source,
)

pytestmark = pytest.mark.integration

NOW = datetime(2024, 5, 14, 9, 20, tzinfo=UTC)
HOUR = NOW.replace(minute=0)
SECRETS = dict_secret_resolver({"em/token": "very-secret-token", "e/token": "entsoe-secret"})


def em(url: str, **kw: object) -> ElectricityMapsCarbonSource:
    return ElectricityMapsCarbonSource.model_validate(
        {
            "type": "electricityMaps",
            "baseUrl": url,
            "zone": "DE",
            "authTokenSecretRef": {"name": "em", "key": "token"},
            "includeForecast": False,
            "timeoutSeconds": 2,
            "maxRetries": 0,
            **kw,
        }
    )


def latest() -> Reply:
    return json_reply(feeds.em_carbon_latest("DE", HOUR, data.carbon("DE-LU", HOUR, 1)[0][1]))


def test_401_says_which_secret_to_fix_and_never_shows_the_token() -> None:
    reply = json_reply({"message": "Invalid auth-token"}, 401)
    with (
        FeedServer({"/v3/carbon-intensity/latest": reply}) as srv,
        pytest.raises(AuthError) as err,
    ):
        build_carbon_source(em(srv.url), secrets=SECRETS).read(NOW)
    text = str(err.value)
    assert "401" in text
    assert "Secret em/token" in text
    assert "very-secret-token" not in text


def test_entsoe_token_never_appears_in_errors() -> None:
    cfg = EntsoePriceSource.model_validate(
        {
            "type": "entsoe",
            "biddingZone": "10Y1001A1001A82H",
            "securityTokenSecretRef": {"name": "e", "key": "token"},
            "timeoutSeconds": 2,
            "maxRetries": 0,
        }
    )
    with FeedServer({"/api": Reply(503, "maintenance")}) as srv:
        cfg = cfg.model_copy(update={"baseUrl": f"{srv.url}/api"})
        with pytest.raises(Unreachable) as err:
            build_price_source(cfg, secrets=SECRETS, region_currency="EUR").read(NOW)
    assert "entsoe-secret" not in str(err.value)
    assert "securityToken" not in str(err.value)


def test_429_retry_after_is_honoured_by_the_cache() -> None:
    routes: dict[str, feeds.Route] = {
        "/v3/carbon-intensity/latest": [
            latest(),
            json_reply({"message": "rate limit"}, 429, **{"Retry-After": "120"}),
            latest(),
        ]
    }
    with FeedServer(routes) as srv:
        source = build_carbon_source(em(srv.url, refreshSeconds=10), secrets=SECRETS)
        first = source.read(NOW)
        limited = source.read(NOW + timedelta(seconds=11))
        assert isinstance(limited.last_error, RateLimited)
        assert limited.last_error.retry_after_seconds == 120
        assert limited.value(NOW + timedelta(seconds=11)) == first.value(NOW)
        source.read(NOW + timedelta(seconds=60))  # within Retry-After: no request
        assert len(srv.hits("/v3/carbon-intensity/latest")) == 2
        fresh = source.read(NOW + timedelta(seconds=140))
        assert fresh.last_error is None
        assert len(srv.hits("/v3/carbon-intensity/latest")) == 3


def test_429_without_a_cached_value_raises_rate_limited() -> None:
    reply = json_reply({}, 429, **{"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    with (
        FeedServer({"/v3/carbon-intensity/latest": reply}) as srv,
        pytest.raises(RateLimited) as err,
    ):
        build_carbon_source(em(srv.url), secrets=SECRETS).read(NOW)
    assert err.value.retry_after_seconds > 3600


def test_5xx_then_success_is_retried_with_backoff() -> None:
    routes: dict[str, feeds.Route] = {
        "/v3/carbon-intensity/latest": [Reply(502, "bad gateway"), Reply(503, ""), latest()]
    }
    with FeedServer(routes) as srv:
        series = build_carbon_source(em(srv.url, maxRetries=3), secrets=SECRETS).read(NOW)
        assert len(srv.hits("/v3/carbon-intensity/latest")) == 3
    assert series.value(NOW) > 0


def test_5xx_after_all_retries_is_unreachable() -> None:
    with FeedServer({"/v3/carbon-intensity/latest": Reply(500, "boom")}) as srv:
        with pytest.raises(Unreachable, match="500"):
            build_carbon_source(em(srv.url, maxRetries=1), secrets=SECRETS).read(NOW)
        assert len(srv.hits("/v3/carbon-intensity/latest")) == 2


def test_hanging_server_times_out() -> None:
    slow = Reply(200, b"{}", delay_seconds=3)
    with FeedServer({"/v3/carbon-intensity/latest": slow}) as srv:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="timed out"):
            build_carbon_source(em(srv.url, timeoutSeconds=0.3), secrets=SECRETS).read(NOW)
        assert time.monotonic() - started < 2


def test_connection_refused_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Unreachable, match="cannot connect"):
        build_carbon_source(em(f"http://127.0.0.1:{port}"), secrets=SECRETS).read(NOW)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, b'{"zone": "DE", "carbonIntensity": 3', {"Content-Type": "application/json"}),
        Reply(200, b"<html>captive portal</html>"),
        json_reply([1, 2, 3]),
        json_reply({"zone": "DE"}),
    ],
)
def test_malformed_json_is_bad_payload(reply: Reply) -> None:
    with FeedServer({"/v3/carbon-intensity/latest": reply}) as srv, pytest.raises(BadPayload):
        build_carbon_source(em(srv.url), secrets=SECRETS).read(NOW)


def test_nan_and_null_values_are_an_empty_series() -> None:
    for value in (None, "NaN"):
        reply = json_reply(feeds.em_carbon_latest("DE", HOUR, None) | {"carbonIntensity": value})
        with (
            FeedServer({"/v3/carbon-intensity/latest": reply}) as srv,
            pytest.raises(EmptySeries),
        ):
            build_carbon_source(em(srv.url), secrets=SECRETS).read(NOW)


def test_empty_gb_answer_and_malformed_entsoe_xml() -> None:
    with (
        FeedServer({"/intensity/2024-05-14T08:30Z/fw24h": json_reply({"data": []})}) as srv,
        pytest.raises(EmptySeries),
    ):
        build_carbon_source(
            GbCarbonIntensitySource.model_validate(
                {"type": "gbCarbonIntensity", "baseUrl": srv.url, "maxRetries": 0}
            )
        ).read(NOW)
    cfg = {
        "type": "entsoe",
        "biddingZone": "10Y1001A1001A82H",
        "securityTokenSecretRef": {"name": "e", "key": "token"},
        "maxRetries": 0,
    }
    with (
        FeedServer({"/api": Reply(200, "<Publication_MarketDocument><TimeSeries>")}) as srv,
        pytest.raises(BadPayload, match="malformed XML"),
    ):
        build_price_source(
            EntsoePriceSource.model_validate({**cfg, "baseUrl": f"{srv.url}/api"}),
            secrets=SECRETS,
            region_currency="EUR",
        ).read(NOW)
    with (
        FeedServer({"/api": Reply(400, feeds.entsoe_ack("Invalid in_Domain", code="21"))}) as srv,
        pytest.raises(RequestRejected, match="Invalid in_Domain"),
    ):
        build_price_source(
            EntsoePriceSource.model_validate({**cfg, "baseUrl": f"{srv.url}/api"}),
            secrets=SECRETS,
            region_currency="EUR",
        ).read(NOW)


def test_duplicated_hours_keep_last_and_warn() -> None:
    rows = data.carbon("DE-LU", HOUR, 3)
    doubled = [*rows, (rows[1][0], rows[1][1] + 50)]
    fc = feeds.em_carbon_forecast("DE", doubled)
    with FeedServer(
        {"/v3/carbon-intensity/latest": latest(), "/v3/carbon-intensity/forecast": json_reply(fc)}
    ) as srv:
        series = build_carbon_source(em(srv.url, includeForecast=True), secrets=SECRETS).read(NOW)
    assert len(series.forecast) == 3
    assert series.forecast[1].value == rows[1][1] + 50
    assert any("duplicated" in w for w in series.warnings)


def test_missing_secret_is_a_config_error_naming_the_secret() -> None:
    with FeedServer({"/v3/carbon-intensity/latest": latest()}) as srv:
        with pytest.raises(SignalError, match="Secret nope"):
            build_carbon_source(
                em(srv.url, authTokenSecretRef={"name": "nope", "key": "token"}), secrets=SECRETS
            ).read(NOW)
        assert srv.hits("/v3/carbon-intensity/latest") == []


def test_prometheus_bad_query_and_vtn_refusing_credentials() -> None:
    bad = json_reply({"status": "error", "errorType": "bad_data", "error": "parse error"}, 400)
    with (
        FeedServer({"/api/v1/query": bad}) as srv,
        pytest.raises(RequestRejected, match="bad_data"),
    ):
        build_price_source(
            PrometheusPriceSource.model_validate(
                {"type": "prometheus", "baseUrl": srv.url, "query": "sum(", "maxRetries": 0}
            ),
            region_currency="EUR",
        ).read(NOW)
    refused = json_reply({"error": "invalid_client"}, 400)
    secrets = dict_secret_resolver({"v/id": "ven", "v/secret": "wrong"})
    with (
        FeedServer({"POST /auth/token": refused}) as srv,
        pytest.raises(AuthError, match="invalid_client"),
    ):
        build_grid_event_source(
            OpenAdr3GridEventSource.model_validate(
                {
                    "type": "openadr3",
                    "baseUrl": srv.url,
                    "clientIdSecretRef": {"name": "v", "key": "id"},
                    "clientSecretSecretRef": {"name": "v", "key": "secret"},
                    "maxRetries": 0,
                }
            ),
            secrets=secrets,
        ).read(NOW)


def test_cli_reads_a_provider_with_a_secret_flag(tmp_path: Path) -> None:
    import argparse
    import io

    from rich.console import Console

    from wattscale.cli_signals import add_signals_parser

    cfg = tmp_path / "em.yaml"
    routes: dict[str, feeds.Route] = {
        "/v3/carbon-intensity/latest": lambda req: (
            latest()
            if req.headers.get("auth-token") == "tok"
            else json_reply({"message": "bad token"}, 401)
        )
    }
    with FeedServer(routes) as srv:
        cfg.write_text(
            f"type: electricityMaps\nbaseUrl: {srv.url}\nzone: DE\nincludeForecast: false\n"
            "authTokenSecretRef: {name: em, key: token}\nmaxRetries: 0\n"
        )
        results = []
        for secret in ("em/token=tok", "em/token=wrong"):
            parser = argparse.ArgumentParser()
            add_signals_parser(parser.add_subparsers(dest="command"))
            args = parser.parse_args(
                [
                    "signals",
                    "read",
                    "--config",
                    str(cfg),
                    "--secret",
                    secret,
                    "--at",
                    NOW.isoformat(),
                ]
            )
            buf = io.StringIO()
            results.append((args.func(args, console=Console(file=buf, width=300)), buf.getvalue()))
    (ok, ok_out), (bad, bad_out) = results
    assert ok == 0
    assert "gCO2eq/kWh" in ok_out
    assert bad == 1
    assert "401" in bad_out
    assert "Secret em/token" in bad_out
    assert "wrong" not in bad_out


def test_watttime_without_forecast_access_keeps_measured_values() -> None:
    from wattscale.api.sources import WattTimeCarbonSource

    rows = data.carbon("US-CAL-CISO", HOUR - timedelta(hours=1), 2)
    routes: dict[str, feeds.Route] = {
        "/login": json_reply({"token": "t"}),
        "/v3/historical": json_reply(feeds.watttime_signal("PJM_DC", rows)),
        "/v3/forecast": json_reply({"error": "Unauthorized region for forecast"}, 403),
    }
    secrets = dict_secret_resolver({"wt/u": "u", "wt/p": "p"})
    with FeedServer(routes) as srv:
        series = build_carbon_source(
            WattTimeCarbonSource.model_validate(
                {
                    "type": "wattTime",
                    "baseUrl": srv.url,
                    "wattTimeRegion": "PJM_DC",
                    "usernameSecretRef": {"name": "wt", "key": "u"},
                    "passwordSecretRef": {"name": "wt", "key": "p"},
                    "maxRetries": 0,
                }
            ),
            secrets=secrets,
        ).read(NOW)
    assert series.forecast == ()
    assert series.value(NOW) == pytest.approx(rows[1][1], abs=0.1)
    assert any("forecast unavailable" in w for w in series.warnings)
