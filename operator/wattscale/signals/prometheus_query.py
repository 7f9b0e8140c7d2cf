"""Any Prometheus instant or range query as a price or carbon signal (HTTP API v1).

- instant: `GET /api/v1/query?query=...&time=<unix>` -> `{"status": "success", "data":
  {"resultType": "vector", "result": [{"metric": {...}, "value": [<unix>, "<value>"]}]}}`;
- range: `GET /api/v1/query_range?query=...&start=&end=&step=` -> `resultType` `matrix` with
  `"values": [[<unix>, "<value>"], ...]`.

The query must return exactly one series (aggregate it, e.g. `avg(...)`). Each sample holds for
`stepSeconds` from its timestamp. "NaN"/"+Inf" samples are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from wattscale.api.sources import PrometheusCarbonSource, PrometheusPriceSource
from wattscale.signals.base import (
    CARBON_UNIT,
    LBS_PER_MWH_TO_G_PER_KWH,
    BadPayload,
    EmptySeries,
    RequestRejected,
    Series,
    SourceContext,
    clean_points,
    price_factor,
    price_unit,
    resolve_secret,
    utc,
)
from wattscale.signals.http import HttpClient

NAME = "prometheus"
_CARBON_SCALE = {"gPerKwh": 1.0, "kgPerMwh": 1.0, "lbsPerMwh": LBS_PER_MWH_TO_G_PER_KWH}
_PRICE_SCALE = {"perMwh": 1 / 1000, "perKwh": 1.0}


def parse_query_result(payload: object, query: str) -> list[tuple[float, object]]:
    """(unix timestamp, raw value) samples of a one-series vector or matrix result."""
    if not isinstance(payload, Mapping):
        raise BadPayload(NAME, "expected a JSON object")
    if payload.get("status") != "success":
        raise RequestRejected(
            NAME,
            f"query failed: {payload.get('errorType', '?')}: {payload.get('error', '?')}",
            f"check the PromQL expression {query!r}",
        )
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise BadPayload(NAME, "answer lacks `data`")
    result = data.get("result")
    rtype = data.get("resultType")
    if rtype == "scalar" and isinstance(result, list) and len(result) == 2:
        return [(float(result[0]), result[1])]
    if not isinstance(result, list):
        raise BadPayload(NAME, "answer lacks `data.result`")
    if not result:
        raise EmptySeries(
            NAME, f"query {query!r} returned no series", "check the metric exists and has labels"
        )
    if len(result) > 1:
        raise BadPayload(
            NAME,
            f"query {query!r} returned {len(result)} series, expected one",
            "aggregate the query, e.g. avg(...) or max by () (...)",
        )
    series = result[0]
    if not isinstance(series, Mapping):
        raise BadPayload(NAME, "malformed series in result")
    samples = [series["value"]] if rtype == "vector" else series.get("values")
    if not isinstance(samples, list):
        raise BadPayload(NAME, f"unexpected resultType {rtype!r}")
    out: list[tuple[float, object]] = []
    for sample in samples:
        if not isinstance(sample, list) or len(sample) != 2:
            raise BadPayload(NAME, "malformed sample, expected [time, value]")
        try:
            out.append((float(sample[0]), sample[1]))
        except (TypeError, ValueError):
            raise BadPayload(NAME, f"sample time {sample[0]!r} is not a number") from None
    return out


class PrometheusSource:
    """A PromQL expression read as price (currency/kWh) or carbon (gCO2eq/kWh)."""

    def __init__(
        self, config: PrometheusPriceSource | PrometheusCarbonSource, ctx: SourceContext
    ) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx
        self.kind = "price" if isinstance(config, PrometheusPriceSource) else "carbon"
        self._base = config.baseUrl.rstrip("/")
        self.http = HttpClient(
            NAME,
            timeout_seconds=config.timeoutSeconds,
            max_retries=config.maxRetries,
            auth_hint="check bearerTokenSecretRef and the Prometheus proxy's auth settings",
        )

    def read(self, now: datetime) -> Series:
        """Evaluate the query at `now` (instant) or over the last `rangeSeconds` (range)."""
        now = utc(now)
        cfg = self.config
        headers: dict[str, str] = {}
        if cfg.bearerTokenSecretRef is not None:
            token = resolve_secret(self.ctx, cfg.bearerTokenSecretRef, NAME, "bearer token")
            headers["Authorization"] = f"Bearer {token}"
        params: dict[str, Any] = {"query": cfg.query}
        if cfg.rangeSeconds > 0:
            path = "/api/v1/query_range"
            params |= {
                "start": f"{now.timestamp() - cfg.rangeSeconds:.3f}",
                "end": f"{now.timestamp():.3f}",
                "step": f"{cfg.stepSeconds}s",
            }
        else:
            path = "/api/v1/query"
            params["time"] = f"{now.timestamp():.3f}"
        # Prometheus answers bad PromQL with 400 + a JSON error body.
        resp = self.http.request(
            "GET", f"{self._base}{path}", params=params, headers=headers, accept_status=(400, 422)
        )
        try:
            payload = resp.json()
        except ValueError:
            raise BadPayload(NAME, "malformed JSON in the answer") from None
        samples = parse_query_result(payload, cfg.query)
        step = timedelta(seconds=cfg.stepSeconds)
        if isinstance(cfg, PrometheusPriceSource):
            fx, currency = price_factor(
                NAME, cfg.currency, self.ctx.region_currency, cfg.fxRateToRegionCurrency
            )
            scale, unit = _PRICE_SCALE[cfg.priceUnit] * fx, price_unit(currency)
        else:
            scale, unit = _CARBON_SCALE[cfg.carbonUnit], CARBON_UNIT
        raw = []
        for ts, value in samples:
            start = datetime.fromtimestamp(ts, UTC)
            raw.append((start, start + step, value, None))
        points, warnings = clean_points(raw, NAME, scale=scale)
        if not points:
            raise EmptySeries(NAME, f"query {cfg.query!r} returned only NaN/Inf samples")
        return Series(
            source=NAME,
            kind="price" if isinstance(cfg, PrometheusPriceSource) else "carbon",
            unit=unit,
            points=points,
            fetched_at=now,
            max_age_seconds=cfg.maxAgeSeconds,
            warnings=warnings,
        )
