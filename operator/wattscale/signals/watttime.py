"""WattTime API v3: marginal operating emissions rate (MOER) and its forecast.

- `GET /login` with HTTP basic auth -> `{"token": "<JWT>"}`, valid 30 minutes. The token is
  reused until shortly before expiry and renewed once when a data call answers 401.
- `GET /v3/historical?region=CAISO_NORTH&signal_type=co2_moer&start=ISO&end=ISO` and
  `GET /v3/forecast?region=...&signal_type=co2_moer&horizon_hours=24`, both with
  `Authorization: Bearer <token>`, answer `{"data": [{"point_time", "value"}], "meta":
  {"region", "signal_type", "units": "lbs_co2_per_mwh", "data_point_period_seconds": 300,
  "model": {"date"}, "generated_at", "warnings": [...]}}`.

Values in lbs/MWh are converted to gCO2eq/kWh (x 0.453592).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from wattscale.api.sources import WattTimeCarbonSource
from wattscale.signals.base import (
    CARBON_UNIT,
    LBS_PER_MWH_TO_G_PER_KWH,
    AuthError,
    BadPayload,
    EmptySeries,
    RequestRejected,
    Series,
    SourceContext,
    clean_points,
    parse_time,
    resolve_secret,
    utc,
)
from wattscale.signals.http import BearerToken, HttpClient

NAME = "wattTime"
TOKEN_LIFETIME = timedelta(minutes=30)
TOKEN_MARGIN = timedelta(minutes=2)
_UNITS_TO_G_PER_KWH = {
    "lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH,
    "lbs_per_mwh": LBS_PER_MWH_TO_G_PER_KWH,
    "g_co2_per_kwh": 1.0,
    "kg_co2_per_mwh": 1.0,
}


def parse_signal(payload: object) -> tuple[list[tuple[datetime, datetime, object, None]], float]:
    """Raw (start, end, value) points of a v3 historical/forecast answer and the unit factor."""
    if not isinstance(payload, Mapping):
        raise BadPayload(NAME, "expected a JSON object with data and meta")
    meta = payload.get("meta")
    data = payload.get("data")
    if not isinstance(meta, Mapping) or not isinstance(data, list):
        raise BadPayload(NAME, "answer lacks `data` list or `meta` object")
    units = str(meta.get("units", "lbs_co2_per_mwh")).lower()
    factor = _UNITS_TO_G_PER_KWH.get(units)
    if factor is None:
        raise BadPayload(
            NAME,
            f"unsupported units {units!r}",
            "use signalType co2_moer or co2_aoer (emission rates in lbs/MWh)",
        )
    try:
        period = timedelta(seconds=float(meta.get("data_point_period_seconds", 300)))
    except (TypeError, ValueError):
        raise BadPayload(NAME, "meta.data_point_period_seconds is not a number") from None
    if period <= timedelta(0):
        raise BadPayload(NAME, "meta.data_point_period_seconds must be positive")
    out: list[tuple[datetime, datetime, object, None]] = []
    for item in data:
        if not isinstance(item, Mapping) or "point_time" not in item:
            raise BadPayload(NAME, "data entry without point_time")
        start = parse_time(str(item["point_time"]), NAME)
        out.append((start, start + period, item.get("value"), None))
    return out, factor


def _iso(t: datetime) -> str:
    return utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


class WattTimeSource:
    """MOER for one WattTime region, with login and token refresh."""

    kind = "carbon"

    def __init__(self, config: WattTimeCarbonSource, ctx: SourceContext) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx
        self._base = config.baseUrl.rstrip("/")
        self._token = BearerToken(self._login)
        self.http = HttpClient(
            NAME,
            timeout_seconds=config.timeoutSeconds,
            max_retries=config.maxRetries,
            auth_hint=(
                "WattTime rejected the login or token: check Secrets "
                f"{config.usernameSecretRef.name}/{config.usernameSecretRef.key} and "
                f"{config.passwordSecretRef.name}/{config.passwordSecretRef.key}, and that the "
                f"account may read region {config.wattTimeRegion}"
            ),
        )

    def _login(self, now: datetime) -> tuple[str | None, datetime]:
        user = resolve_secret(self.ctx, self.config.usernameSecretRef, NAME, "username")
        password = resolve_secret(self.ctx, self.config.passwordSecretRef, NAME, "password")
        resp = self.http.request("GET", f"{self._base}/login", auth=(user, password))
        try:
            token = resp.json().get("token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError(NAME, "login answered without a token", "check the WattTime account")
        return token, now + TOKEN_LIFETIME - TOKEN_MARGIN

    def _get(self, path: str, params: Mapping[str, Any], now: datetime) -> object:
        resp = self._token.get(self.http, f"{self._base}{path}", params, now)
        try:
            return resp.json()
        except ValueError:
            raise BadPayload(NAME, f"malformed JSON from {path}") from None

    def read(self, now: datetime) -> Series:
        """The last hour of MOER and, if enabled, the forecast."""
        now = utc(now)
        common = {"region": self.config.wattTimeRegion, "signal_type": self.config.signalType}
        hist = self._get(
            "/v3/historical",
            {**common, "start": _iso(now - timedelta(hours=1)), "end": _iso(now)},
            now,
        )
        raw, factor = parse_signal(hist)
        points, warnings = clean_points(raw, NAME, scale=factor)
        forecast: tuple[Any, ...] = ()
        if self.config.includeForecast:
            try:
                fc_raw, fc_factor = parse_signal(
                    self._get("/v3/forecast", {**common, "horizon_hours": 24}, now)
                )
                forecast, fc_warnings = clean_points(fc_raw, NAME, scale=fc_factor)
            except (AuthError, RequestRejected, BadPayload) as err:
                # Plans without forecast access answer 403; keep the measured values.
                fc_warnings = (f"forecast unavailable: {err.message}",)
            warnings += fc_warnings
        if not points and not forecast:
            raise EmptySeries(
                NAME,
                f"no {self.config.signalType} data for region {self.config.wattTimeRegion}",
                "check wattTimeRegion (see /v3/my-access) and the account's plan",
            )
        return Series(
            source=NAME,
            kind="carbon",
            unit=CARBON_UNIT,
            points=points,
            forecast=forecast,
            fetched_at=now,
            max_age_seconds=self.config.maxAgeSeconds,
            warnings=warnings,
        )
