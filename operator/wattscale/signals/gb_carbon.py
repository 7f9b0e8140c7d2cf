"""The GB Carbon Intensity API (api.carbonintensity.org.uk; NESO; no key, half-hourly).

- National: `GET /intensity/{from}/fw24h` -> `{"data": [{"from": "2020-05-24T20:30Z",
  "to": "2020-05-24T21:00Z", "intensity": {"forecast": 146, "actual": 150, "index": "low"}}]}`.
  `actual` is null for future periods.
- Regional: `GET /regional/intensity/{from}/fw24h/regionid/{id}` (or `/postcode/{outward}`) ->
  `{"data": {"regionid", "dnoregion", "shortname", "data": [{"from", "to", "intensity":
  {"forecast", "index"}, "generationmix": [...]}]}}` (forecasts only).

`{from}` is ISO 8601 `YYYY-MM-DDThh:mmZ`. Values are gCO2/kWh; the index (very low .. very high)
is kept as each point's label. Periods with an `actual` are firm points, the rest forecast.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from wattscale.api.sources import GbCarbonIntensitySource
from wattscale.signals.base import (
    CARBON_UNIT,
    BadPayload,
    EmptySeries,
    Series,
    SourceContext,
    clean_points,
    parse_time,
    utc,
)
from wattscale.signals.http import HttpClient

NAME = "gbCarbonIntensity"

Raw = tuple[datetime, datetime, object, str | None]


def _periods(payload: object) -> list[Mapping[str, Any]]:
    if not isinstance(payload, Mapping):
        raise BadPayload(NAME, "expected a JSON object with `data`")
    data = payload.get("data")
    if isinstance(data, Mapping):  # regional by id/postcode: {"data": {..., "data": [...]}}
        data = data.get("data")
    elif isinstance(data, list) and data and isinstance(data[0], Mapping) and "regionid" in data[0]:
        data = data[0].get("data")  # some regional forms wrap the region in a list
    if not isinstance(data, list):
        raise BadPayload(NAME, "answer lacks the `data` list of half-hour periods")
    return [p for p in data if isinstance(p, Mapping)]


def parse_intensity(payload: object) -> tuple[list[Raw], list[Raw]]:
    """(actual points, forecast points) of a national or regional intensity answer."""
    actual: list[Raw] = []
    forecast: list[Raw] = []
    for period in _periods(payload):
        intensity = period.get("intensity")
        if "from" not in period or "to" not in period or not isinstance(intensity, Mapping):
            raise BadPayload(NAME, "period without from/to/intensity")
        start = parse_time(str(period["from"]), NAME)
        end = parse_time(str(period["to"]), NAME)
        index = intensity.get("index")
        label = str(index) if index is not None else None
        if intensity.get("actual") is not None:
            actual.append((start, end, intensity.get("actual"), label))
        forecast.append((start, end, intensity.get("forecast"), label))
    return actual, forecast


class GbCarbonSource:
    """National or regional GB carbon intensity with a 24 h forecast."""

    kind = "carbon"

    def __init__(self, config: GbCarbonIntensitySource, ctx: SourceContext) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx
        self._base = config.baseUrl.rstrip("/")
        self.http = HttpClient(
            NAME, timeout_seconds=config.timeoutSeconds, max_retries=config.maxRetries
        )

    def path(self, now: datetime) -> str:
        """The request path for periods from the current half hour on."""
        now = utc(now)
        start = now.replace(minute=0 if now.minute < 30 else 30, second=0, microsecond=0)
        start -= timedelta(minutes=30)
        stamp = start.strftime("%Y-%m-%dT%H:%MZ")
        if self.config.gbRegionId is not None:
            return f"/regional/intensity/{stamp}/fw24h/regionid/{self.config.gbRegionId}"
        if self.config.postcode:
            return f"/regional/intensity/{stamp}/fw24h/postcode/{self.config.postcode}"
        return f"/intensity/{stamp}/fw24h"

    def read(self, now: datetime) -> Series:
        """Half-hourly intensity from the previous half hour to 24 h ahead."""
        now = utc(now)
        resp = self.http.request(
            "GET", f"{self._base}{self.path(now)}", headers={"Accept": "application/json"}
        )
        try:
            payload = resp.json()
        except ValueError:
            raise BadPayload(NAME, "malformed JSON in the answer") from None
        actual_raw, forecast_raw = parse_intensity(payload)
        points, warnings = clean_points(actual_raw, NAME)
        forecast, fc_warnings = clean_points(forecast_raw, NAME)
        if not points and not forecast:
            raise EmptySeries(NAME, "no half-hour periods in the answer", "check region/postcode")
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
