"""Electricity Maps: carbon intensity (latest + forecast) and day-ahead price (API v3).

Requests carry the token in the `auth-token` header.
- `GET /v3/carbon-intensity/latest?zone=DE&emissionFactorType=direct` ->
  `{"zone", "carbonIntensity", "datetime", "updatedAt", "emissionFactorType", "isEstimated",
  "estimationMethod", "temporalGranularity"}` (gCO2eq/kWh).
- `GET /v3/carbon-intensity/forecast?zone=DE` -> `{"zone", "forecast": [{"carbonIntensity",
  "datetime"}], "updatedAt"}`.
- `GET /v3/price-day-ahead/latest?zone=DE` -> `{"zone", "datetime", "value", "unit": "EUR/MWh",
  "source", "temporalGranularity", ...}`.
- `GET /v3/price-day-ahead/forecast?zone=DE` (plans that include it) -> `{"zone", "unit",
  "forecast" | "data": [{"datetime", "value"}]}`; a 4xx here only drops the forecast.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from wattscale.api.sources import ElectricityMapsCarbonSource, ElectricityMapsPriceSource
from wattscale.signals.base import (
    CARBON_UNIT,
    BadPayload,
    EmptySeries,
    RequestRejected,
    Series,
    SourceContext,
    clean_points,
    parse_time,
    price_factor,
    price_unit,
    resolve_secret,
    utc,
)
from wattscale.signals.http import HttpClient

NAME = "electricityMaps"
_GRANULARITY = {
    "5_minutes": timedelta(minutes=5),
    "15_minutes": timedelta(minutes=15),
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
}
_PRICE_UNITS_PER_KWH = {"MWH": 1 / 1000, "KWH": 1.0}


def _granularity(obj: Mapping[str, Any]) -> timedelta:
    return _GRANULARITY.get(str(obj.get("temporalGranularity") or "hourly"), timedelta(hours=1))


def _as_object(payload: object, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise BadPayload(NAME, f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


def parse_latest_carbon(payload: object) -> tuple[datetime, timedelta, object]:
    """(datetime, granularity, carbonIntensity) of a carbon-intensity/latest answer."""
    obj = _as_object(payload, "carbon-intensity/latest")
    if "datetime" not in obj or "carbonIntensity" not in obj:
        raise BadPayload(NAME, "carbon-intensity/latest lacks datetime or carbonIntensity")
    return parse_time(str(obj["datetime"]), NAME), _granularity(obj), obj["carbonIntensity"]


def parse_forecast(
    payload: object, value_key: str, step: timedelta
) -> list[tuple[datetime, datetime, object, str | None]]:
    """Points of a `forecast` (or `data`) list of {datetime, <value_key>} entries."""
    obj = _as_object(payload, "forecast")
    items = obj.get("forecast", obj.get("data"))
    if not isinstance(items, list):
        raise BadPayload(NAME, "forecast answer has no `forecast` list")
    out: list[tuple[datetime, datetime, object, str | None]] = []
    for item in items:
        if not isinstance(item, Mapping) or "datetime" not in item:
            raise BadPayload(NAME, "forecast entry without datetime")
        start = parse_time(str(item["datetime"]), NAME)
        out.append((start, start + step, item.get(value_key), None))
    return out


def parse_price_unit(unit: object) -> tuple[str, float]:
    """('EUR', 1/1000) from 'EUR/MWh'."""
    if not isinstance(unit, str) or "/" not in unit:
        raise BadPayload(NAME, f"price unit {unit!r} is not of the form CUR/MWh")
    currency, energy = unit.split("/", 1)
    factor = _PRICE_UNITS_PER_KWH.get(energy.strip().upper())
    if factor is None or len(currency.strip()) != 3:
        raise BadPayload(NAME, f"unsupported price unit {unit!r}")
    return currency.strip().upper(), factor


def parse_latest_price(payload: object) -> tuple[datetime, timedelta, object, str, float]:
    """(datetime, granularity, value, currency, per-kWh factor) of a price-day-ahead/latest."""
    obj = _as_object(payload, "price-day-ahead/latest")
    if "datetime" not in obj or "value" not in obj:
        raise BadPayload(NAME, "price-day-ahead/latest lacks datetime or value")
    currency, factor = parse_price_unit(obj.get("unit"))
    return parse_time(str(obj["datetime"]), NAME), _granularity(obj), obj["value"], currency, factor


def _json(resp: Any) -> object:
    try:
        return resp.json()
    except ValueError:
        raise BadPayload(NAME, "malformed JSON in the answer") from None


class _Base:
    def __init__(
        self, config: ElectricityMapsCarbonSource | ElectricityMapsPriceSource, ctx: SourceContext
    ) -> None:
        self.name = NAME
        self.ctx = ctx
        self._base = config.baseUrl.rstrip("/")
        self._token_ref = config.authTokenSecretRef
        self.http = HttpClient(
            NAME,
            timeout_seconds=config.timeoutSeconds,
            max_retries=config.maxRetries,
            auth_hint=(
                f"the auth-token was rejected: check Secret {config.authTokenSecretRef.name}/"
                f"{config.authTokenSecretRef.key} holds a valid Electricity Maps API token and "
                f"that the plan covers zone {config.zone}"
            ),
        )

    def _get(self, path: str, params: Mapping[str, str]) -> object:
        token = resolve_secret(self.ctx, self._token_ref, NAME, "API token")
        resp = self.http.request(
            "GET", f"{self._base}{path}", params=params, headers={"auth-token": token}
        )
        return _json(resp)


class ElectricityMapsCarbon(_Base):
    """Carbon intensity for one zone: latest value plus the forecast."""

    kind = "carbon"

    def __init__(self, config: ElectricityMapsCarbonSource, ctx: SourceContext) -> None:
        super().__init__(config, ctx)
        self.config = config

    def read(self, now: datetime) -> Series:
        """Latest value and (if enabled) the forecast."""
        now = utc(now)
        params = {"zone": self.config.zone, "emissionFactorType": self.config.emissionFactorType}
        start, step, value = parse_latest_carbon(self._get("/v3/carbon-intensity/latest", params))
        points, warnings = clean_points([(start, start + step, value, None)], NAME)
        forecast: tuple[Any, ...] = ()
        fc_warnings: tuple[str, ...] = ()
        if self.config.includeForecast:
            try:
                raw = parse_forecast(
                    self._get("/v3/carbon-intensity/forecast", params), "carbonIntensity", step
                )
                forecast, fc_warnings = clean_points(raw, NAME)
            except (RequestRejected, BadPayload) as err:
                fc_warnings = (f"forecast unavailable: {err.message}",)
        if not points and not forecast:
            raise EmptySeries(NAME, f"no carbon intensity for zone {self.config.zone}")
        return Series(
            source=NAME,
            kind="carbon",
            unit=CARBON_UNIT,
            points=points,
            forecast=forecast,
            fetched_at=now,
            max_age_seconds=self.config.maxAgeSeconds,
            warnings=warnings + fc_warnings,
        )


class ElectricityMapsPrice(_Base):
    """Day-ahead price for one zone: latest value plus the forecast when the plan has it."""

    kind = "price"

    def __init__(self, config: ElectricityMapsPriceSource, ctx: SourceContext) -> None:
        super().__init__(config, ctx)
        self.config = config

    def read(self, now: datetime) -> Series:
        """Latest day-ahead price and, when available, the upcoming ones."""
        now = utc(now)
        params = {"zone": self.config.zone}
        start, step, value, currency, per_kwh = parse_latest_price(
            self._get("/v3/price-day-ahead/latest", params)
        )
        if self.config.currency and self.config.currency != currency:
            raise BadPayload(
                NAME,
                f"prices arrive in {currency}, the source says {self.config.currency}",
                "remove `currency` from the source or set it to the provider's currency",
            )
        fx, region_currency = price_factor(
            NAME, currency, self.ctx.region_currency, self.config.fxRateToRegionCurrency
        )
        scale = per_kwh * fx
        points, warnings = clean_points([(start, start + step, value, None)], NAME, scale=scale)
        forecast: tuple[Any, ...] = ()
        fc_warnings: tuple[str, ...] = ()
        try:
            payload = self._get("/v3/price-day-ahead/forecast", params)
            fc_unit = _as_object(payload, "forecast").get("unit")
            fc_scale = scale
            if fc_unit is not None and parse_price_unit(fc_unit) != (currency, per_kwh):
                raise BadPayload(NAME, f"forecast unit {fc_unit!r} differs from latest")
            forecast, fc_warnings = clean_points(
                parse_forecast(payload, "value", step), NAME, scale=fc_scale
            )
        except (RequestRejected, BadPayload) as err:
            fc_warnings = (f"forecast unavailable: {err.message}",)
        if not points and not forecast:
            raise EmptySeries(NAME, f"no day-ahead price for zone {self.config.zone}")
        return Series(
            source=NAME,
            kind="price",
            unit=price_unit(region_currency),
            points=points,
            forecast=forecast,
            fetched_at=now,
            max_age_seconds=self.config.maxAgeSeconds,
            warnings=warnings + fc_warnings,
        )
