"""Typed configuration of energy-price, carbon-intensity and grid-event sources.

These models are exactly what a `Region` holds under `spec.energy.price`, `spec.energy.carbon` and
`spec.energy.gridEvents`. Each of the three is a discriminated union on the `type` field.

Conventions (they keep the CRD structural and let the generator merge each union into one object
with a required `type` enum, optional per-kind fields and CEL rules):
- camelCase field names, units in the names (`...Seconds`, `...PerKwh`), `extra="forbid"`;
- a field that means the same thing in several variants has the same name and type everywhere
  (`baseUrl`, `currency`, `refreshSeconds`, ...); fields whose meaning differs have distinct names;
- secrets are referenced (`SecretKeyRef`), never inlined;
- money is a decimal string ("0.35"), as in the rest of the API; cross-field rules are `Rule`s,
  checked here and emitted as CEL by the CRD generator.

This module imports nothing else from wattscale (import-linter contract).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator

from wattscale.api.base import ApiModel, DecimalString, Rule

__all__ = [
    "CarbonSource",
    "CsvCarbonSource",
    "CsvPriceSource",
    "ElectricityMapsCarbonSource",
    "ElectricityMapsPriceSource",
    "EntsoePriceSource",
    "GbCarbonIntensitySource",
    "GridEventSource",
    "OpenAdr3GridEventSource",
    "PriceSource",
    "PrometheusCarbonSource",
    "PrometheusPriceSource",
    "SecretKeyRef",
    "StaticGridEvent",
    "StaticGridEventSource",
    "TouPriceSource",
    "TouWindow",
    "WattTimeCarbonSource",
    "Weekday",
]

_CURRENCY_PATTERN = r"^[A-Z]{3}$"
_HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"

Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
"""Weekday names used by time-of-use windows (ISO order, Monday first)."""

PriceUnit = Literal["perMwh", "perKwh"]
"""Energy unit of a raw price value: currency per MWh or per kWh."""

CarbonUnit = Literal["gPerKwh", "kgPerMwh", "lbsPerMwh"]
"""Unit of a raw carbon-intensity value (normalised to gCO2eq/kWh on the way in)."""


class _Model(ApiModel):
    model_config = ConfigDict(frozen=True)


class SecretKeyRef(_Model):
    """A reference to one key of a Kubernetes Secret; the value is never stored in the CR."""

    name: str = Field(min_length=1, description="Name of the Secret.")
    key: str = Field(min_length=1, description="Key inside the Secret's data.")
    namespace: str | None = Field(
        default=None,
        description="Namespace of the Secret; defaults to the operator's own namespace.",
    )


class _SourceCommon(_Model):
    """Fields every source has: caching, timeouts, retries and staleness."""

    refreshSeconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="Cache TTL: a successful read is reused for this long before fetching again.",
    )
    timeoutSeconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Timeout of one HTTP request (connect and read), in seconds.",
    )
    maxRetries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries with exponential backoff and jitter on timeouts and 5xx responses.",
    )
    maxAgeSeconds: int = Field(
        default=7200,
        ge=1,
        le=2_678_400,
        description=(
            "Staleness threshold: when no data point covers the current time and the newest data "
            "ended longer ago than this, the signal is reported stale and the planner falls back."
        ),
    )


class _PriceCommon(_SourceCommon):
    """Fields every price source has: the source's currency and an optional FX rate."""

    currency: str | None = Field(
        default=None,
        pattern=_CURRENCY_PATTERN,
        description=(
            "ISO 4217 currency the source reports in. Empty: taken from the payload when the "
            "provider states it, otherwise assumed to be the Region's currency."
        ),
    )
    fxRateToRegionCurrency: DecimalString | None = Field(
        default=None,
        description=(
            "Multiply source prices by this (> 0, a decimal string) to get the Region's "
            "currency. Required when the source currency differs from the Region's; without it "
            "such prices are refused."
        ),
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.fxRateToRegionCurrency) || double(self.fxRateToRegionCurrency) > 0.0",
            check=lambda m: m.fxRateToRegionCurrency is None or m.fxRateToRegionCurrency > 0,
            message="fxRateToRegionCurrency must be greater than 0",
            field="fxRateToRegionCurrency",
        ),
    )


# --------------------------------------------------------------------------------------- price


class EntsoePriceSource(_PriceCommon):
    """ENTSO-E Transparency Platform day-ahead prices (document type A44, XML)."""

    type: Literal["entsoe"] = Field(description="Source kind.")
    baseUrl: str = Field(
        default="https://web-api.tp.entsoe.eu/api",
        description="Base URL of the provider's API.",
    )
    biddingZone: str = Field(
        min_length=16,
        max_length=16,
        description="EIC code of the bidding zone (in_Domain/out_Domain), e.g. 10Y1001A1001A82H "
        "for DE-LU.",
    )
    securityTokenSecretRef: SecretKeyRef = Field(
        description="Secret key holding the ENTSO-E API security token (securityToken)."
    )
    refreshSeconds: int = Field(
        default=900,
        ge=1,
        le=86_400,
        description="Cache TTL in seconds (day-ahead prices change daily).",
    )
    maxAgeSeconds: int = Field(
        default=3600,
        ge=1,
        le=2_678_400,
        description="Staleness threshold in seconds (see the common field).",
    )


class ElectricityMapsPriceSource(_PriceCommon):
    """Electricity Maps day-ahead price (`/v3/price-day-ahead/...`)."""

    type: Literal["electricityMaps"] = Field(description="Source kind.")
    baseUrl: str = Field(
        default="https://api.electricitymaps.com",
        description="Base URL of the provider's API.",
    )
    zone: str = Field(min_length=1, description="Electricity Maps zone id, e.g. DE or FR.")
    authTokenSecretRef: SecretKeyRef = Field(
        description="Secret key holding the Electricity Maps API token (`auth-token` header)."
    )


class TouWindow(_Model):
    """One time-of-use window: a price on some weekdays between two local wall-clock times."""

    days: list[Weekday] = Field(
        min_length=1, description="Weekdays this window applies to (Mon..Sun)."
    )
    start: str = Field(
        pattern=_HHMM_PATTERN, description="Local start time HH:MM (inclusive), e.g. 07:00."
    )
    end: str = Field(
        pattern=_HHMM_PATTERN,
        description="Local end time HH:MM (exclusive); 24:00 means midnight. An end before the "
        "start wraps past midnight into the next day.",
    )
    pricePerKwh: DecimalString = Field(
        description='Energy price in the tariff\'s currency per kWh, e.g. "0.35".'
    )


class TouPriceSource(_PriceCommon):
    """A static time-of-use tariff: windows by weekday and local time in an IANA timezone."""

    type: Literal["tou"] = Field(description="Source kind.")
    timezone: str = Field(
        min_length=1, description="IANA timezone of the tariff's wall clock, e.g. Europe/Berlin."
    )
    defaultPricePerKwh: DecimalString = Field(
        description='Price per kWh outside every window (the base or off-peak rate), e.g. "0.2".'
    )
    windows: list[TouWindow] = Field(
        default_factory=list,
        description="Windows in priority order: the first window matching a time wins.",
    )
    horizonHours: int = Field(
        default=48, ge=1, le=336, description="How many hours ahead the forecast is expanded."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r} (e.g. Europe/Berlin)") from exc
        return value


class _CsvCommon(_SourceCommon):
    path: str | None = Field(
        default=None, description="Local file path of the CSV (set exactly one of path or url)."
    )
    url: str | None = Field(
        default=None, description="HTTP(S) URL of the CSV (set exactly one of path or url)."
    )
    timestampColumn: str = Field(
        default="timestamp_utc",
        description="Column with the interval start as ISO 8601 (UTC when no offset is given).",
    )
    regionKey: str | None = Field(
        default=None,
        description="Keep only rows whose `region` column equals this (files may mix regions).",
    )
    resolutionSeconds: int = Field(
        default=3600,
        ge=60,
        le=86_400,
        description="Length of the interval each row covers, in seconds.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.path) != has(self.url)",
            check=lambda m: (m.path is None) != (m.url is None),
            message="set exactly one of path or url",
        ),
    )


class CsvPriceSource(_CsvCommon, _PriceCommon):
    """A CSV price time series from a file or URL (the shape of shared/data/prices/*.csv)."""

    type: Literal["csv"] = Field(description="Source kind.")
    valueColumn: str = Field(default="price_per_mwh", description="Column with the price value.")
    priceUnit: PriceUnit = Field(
        default="perMwh", description="Energy unit of the price column: perMwh or perKwh."
    )
    currencyColumn: str | None = Field(
        default="currency",
        description="Column with the ISO currency of each row; empty or absent: use `currency`.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = _CsvCommon.cel_rules + _PriceCommon.cel_rules


class _PrometheusCommon(_SourceCommon):
    baseUrl: str = Field(
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090."
    )
    query: str = Field(min_length=1, description="PromQL expression returning one series.")
    rangeSeconds: int = Field(
        default=0,
        ge=0,
        le=604_800,
        description="0: instant query. Otherwise a range query over the last rangeSeconds.",
    )
    stepSeconds: int = Field(
        default=300, ge=1, le=86_400, description="Step of a range query, in seconds."
    )
    bearerTokenSecretRef: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token for the Prometheus API."
    )


class PrometheusPriceSource(_PrometheusCommon, _PriceCommon):
    """Any Prometheus instant or range query read as an electricity price."""

    type: Literal["prometheus"] = Field(description="Source kind.")
    priceUnit: PriceUnit = Field(
        default="perKwh", description="Energy unit of the query's value: perMwh or perKwh."
    )


PriceSource = Annotated[
    EntsoePriceSource
    | ElectricityMapsPriceSource
    | TouPriceSource
    | CsvPriceSource
    | PrometheusPriceSource,
    Field(discriminator="type"),
]
"""Where a Region's electricity price comes from (`spec.energy.price`)."""


# -------------------------------------------------------------------------------------- carbon


class ElectricityMapsCarbonSource(_SourceCommon):
    """Electricity Maps carbon intensity: latest value plus forecast."""

    type: Literal["electricityMaps"] = Field(description="Source kind.")
    baseUrl: str = Field(
        default="https://api.electricitymaps.com",
        description="Base URL of the provider's API.",
    )
    zone: str = Field(min_length=1, description="Electricity Maps zone id, e.g. DE or FR.")
    authTokenSecretRef: SecretKeyRef = Field(
        description="Secret key holding the Electricity Maps API token (`auth-token` header)."
    )
    emissionFactorType: Literal["direct", "lifecycle"] = Field(
        default="direct",
        description="direct (operational) or lifecycle emission factors.",
    )
    includeForecast: bool = Field(
        default=True,
        description="Also read the carbon-intensity forecast (needs a plan that includes it).",
    )


class WattTimeCarbonSource(_SourceCommon):
    """WattTime v3 marginal emissions (MOER), converted from lbs/MWh to gCO2eq/kWh."""

    type: Literal["wattTime"] = Field(description="Source kind.")
    baseUrl: str = Field(
        default="https://api.watttime.org", description="Base URL of the provider's API."
    )
    wattTimeRegion: str = Field(
        min_length=1, description="WattTime region abbreviation, e.g. CAISO_NORTH."
    )
    usernameSecretRef: SecretKeyRef = Field(description="Secret key holding the WattTime username.")
    passwordSecretRef: SecretKeyRef = Field(description="Secret key holding the WattTime password.")
    signalType: Literal["co2_moer", "co2_aoer"] = Field(
        default="co2_moer", description="WattTime signal_type."
    )
    includeForecast: bool = Field(
        default=True, description="Also read the forecast (`/v3/forecast`)."
    )
    refreshSeconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="Cache TTL in seconds (MOER has 5-minute resolution).",
    )
    maxAgeSeconds: int = Field(
        default=1800,
        ge=1,
        le=2_678_400,
        description="Staleness threshold in seconds (see the common field).",
    )


class GbCarbonIntensitySource(_SourceCommon):
    """The GB Carbon Intensity API (carbonintensity.org.uk; no key, half-hourly, forecast)."""

    type: Literal["gbCarbonIntensity"] = Field(description="Source kind.")
    baseUrl: str = Field(
        default="https://api.carbonintensity.org.uk",
        description="Base URL of the provider's API.",
    )
    gbRegionId: int | None = Field(
        default=None,
        ge=1,
        le=17,
        description="Regional id 1..17 (see the API's region list); empty: national figures.",
    )
    postcode: str | None = Field(
        default=None,
        description="Outward postcode, e.g. RG10, for regional figures (instead of gbRegionId).",
    )
    refreshSeconds: int = Field(
        default=900, ge=1, le=86_400, description="Cache TTL in seconds (data is half-hourly)."
    )
    maxAgeSeconds: int = Field(
        default=3600,
        ge=1,
        le=2_678_400,
        description="Staleness threshold in seconds (see the common field).",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!(has(self.gbRegionId) && has(self.postcode))",
            check=lambda m: m.gbRegionId is None or m.postcode is None,
            message="set at most one of gbRegionId or postcode",
        ),
    )


class CsvCarbonSource(_CsvCommon):
    """A CSV carbon-intensity time series (the shape of shared/data/carbon/*.csv)."""

    type: Literal["csv"] = Field(description="Source kind.")
    valueColumn: str = Field(
        default="gco2_per_kwh", description="Column with the carbon intensity."
    )
    carbonUnit: CarbonUnit = Field(
        default="gPerKwh", description="Unit of the value column: gPerKwh, kgPerMwh or lbsPerMwh."
    )


class PrometheusCarbonSource(_PrometheusCommon):
    """Any Prometheus instant or range query read as a carbon intensity."""

    type: Literal["prometheus"] = Field(description="Source kind.")
    carbonUnit: CarbonUnit = Field(
        default="gPerKwh", description="Unit of the query's value: gPerKwh, kgPerMwh, lbsPerMwh."
    )


CarbonSource = Annotated[
    ElectricityMapsCarbonSource
    | WattTimeCarbonSource
    | GbCarbonIntensitySource
    | CsvCarbonSource
    | PrometheusCarbonSource,
    Field(discriminator="type"),
]
"""Where a Region's grid carbon intensity comes from (`spec.energy.carbon`)."""


# --------------------------------------------------------------------------------- grid events


class OpenAdr3GridEventSource(_SourceCommon):
    """An OpenADR 3 VTN polled as a VEN: programs and events become capped/excluded windows."""

    type: Literal["openadr3"] = Field(description="Source kind.")
    baseUrl: str = Field(
        description="Base URL of the VTN's OpenADR 3 API (the prefix of /programs and /events)."
    )
    tokenUrl: str | None = Field(
        default=None,
        description=(
            "OAuth2 token endpoint (client-credentials grant); empty: {baseUrl}/auth/token."
        ),
    )
    clientIdSecretRef: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the OAuth2 client id (empty: no auth)."
    )
    clientSecretSecretRef: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the OAuth2 client secret."
    )
    programNames: list[str] = Field(
        default_factory=list,
        description="Only events of these programs (programName); empty: every program.",
    )
    simpleLevelCapFractions: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=lambda: [1.0, 0.75, 0.5, 0.0],
        min_length=1,
        description=(
            "Capacity fraction allowed at each SIMPLE level (index = level 0, 1, 2, 3...); "
            "0 excludes the region. Levels above the list use its last entry."
        ),
    )
    siteImportCapacityKw: float | None = Field(
        default=None,
        gt=0,
        description=(
            "The region's nominal import capacity in kW; IMPORT_CAPACITY_LIMIT payloads are "
            "divided by it to get a fraction. Empty: such payloads are ignored with a warning."
        ),
    )
    refreshSeconds: int = Field(
        default=60, ge=1, le=86_400, description="Polling interval (cache TTL) in seconds."
    )
    maxAgeSeconds: int = Field(
        default=900,
        ge=1,
        le=2_678_400,
        description="Staleness threshold: events older than this since the last good poll are "
        "reported stale.",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.clientIdSecretRef) == has(self.clientSecretSecretRef)",
            check=lambda m: (m.clientIdSecretRef is None) == (m.clientSecretSecretRef is None),
            message="set both clientIdSecretRef and clientSecretSecretRef, or neither",
        ),
    )


class StaticGridEvent(_Model):
    """One declared grid event (maintenance, a known demand-response window)."""

    start: datetime = Field(description="Start, RFC 3339 with offset.")
    end: datetime = Field(description="End (exclusive), RFC 3339 with offset.")
    capFraction: float = Field(
        ge=0.0, le=1.0, description="Capacity fraction allowed during the event; 0 excludes."
    )
    reason: str = Field(default="", description="Free text shown in events and status.")

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.end > self.start",
            check=lambda m: (
                m.start.tzinfo is not None and m.end.tzinfo is not None and m.end > m.start
            ),
            message="end must be after start, both with a UTC offset (e.g. 2026-01-01T10:00:00Z)",
            field="end",
        ),
    )


class StaticGridEventSource(_SourceCommon):
    """Grid events listed in the Region itself."""

    type: Literal["static"] = Field(description="Source kind.")
    events: list[StaticGridEvent] = Field(
        default_factory=list, description="The events, in any order."
    )


GridEventSource = Annotated[
    OpenAdr3GridEventSource | StaticGridEventSource,
    Field(discriminator="type"),
]
"""Where a Region's grid events come from (`spec.energy.gridEvents`)."""
