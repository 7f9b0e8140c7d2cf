"""The registry: source config type -> source class, and the builders the controller calls.

Usage (controller, once per Region generation; `read` from a worker thread every loop):

    price = build_price_source(region.spec.energy.price, secrets=resolver,
                               region_currency=region.spec.energy.currency)
    series = price.read(datetime.now(UTC))     # Series, or raises a SignalError subclass

Every built source is wrapped in `Cached` (TTL = the config's `refreshSeconds`, Retry-After
honoured, last good value served with `last_error` set when a refresh fails).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel

from wattscale.api.sources import (
    CarbonSource,
    CsvCarbonSource,
    CsvPriceSource,
    ElectricityMapsCarbonSource,
    ElectricityMapsPriceSource,
    EntsoePriceSource,
    GbCarbonIntensitySource,
    GridEventSource,
    OpenAdr3GridEventSource,
    PriceSource,
    PrometheusCarbonSource,
    PrometheusPriceSource,
    StaticGridEventSource,
    TouPriceSource,
    WattTimeCarbonSource,
)
from wattscale.signals.base import (
    Cached,
    GridEventReader,
    GridEvents,
    SecretResolver,
    Series,
    SignalSource,
    SourceContext,
    dict_secret_resolver,
)
from wattscale.signals.csv_series import CsvSource
from wattscale.signals.electricitymaps import ElectricityMapsCarbon, ElectricityMapsPrice
from wattscale.signals.entsoe import EntsoeSource
from wattscale.signals.gb_carbon import GbCarbonSource
from wattscale.signals.openadr import OpenAdrSource
from wattscale.signals.prometheus_query import PrometheusSource
from wattscale.signals.static_events import StaticEventsSource
from wattscale.signals.tou import TouSource
from wattscale.signals.watttime import WattTimeSource

Factory = Callable[[Any, SourceContext], Any]

REGISTRY: dict[type[BaseModel], Factory] = {
    EntsoePriceSource: EntsoeSource,
    ElectricityMapsPriceSource: ElectricityMapsPrice,
    TouPriceSource: TouSource,
    CsvPriceSource: CsvSource,
    PrometheusPriceSource: PrometheusSource,
    ElectricityMapsCarbonSource: ElectricityMapsCarbon,
    WattTimeCarbonSource: WattTimeSource,
    GbCarbonIntensitySource: GbCarbonSource,
    CsvCarbonSource: CsvSource,
    PrometheusCarbonSource: PrometheusSource,
    OpenAdr3GridEventSource: OpenAdrSource,
    StaticGridEventSource: StaticEventsSource,
}
"""Config model class -> source class (constructed as `cls(config, ctx)`)."""


def register(config_type: type[BaseModel], factory: Factory) -> None:
    """Add or replace the source class for a config type (plugins, tests)."""
    REGISTRY[config_type] = factory


def _context(secrets: SecretResolver | None, region_currency: str | None) -> SourceContext:
    return SourceContext(
        secrets=secrets or dict_secret_resolver({}), region_currency=region_currency
    )


def _make(config: BaseModel, ctx: SourceContext) -> Any:
    factory = REGISTRY.get(type(config))
    if factory is None:
        raise KeyError(f"no signal source registered for {type(config).__name__}")
    return factory(config, ctx)


def build_price_source(
    config: PriceSource,
    *,
    secrets: SecretResolver | None = None,
    region_currency: str | None = None,
    cache: bool = True,
) -> SignalSource:
    """A price source (currency/kWh in `region_currency`) for a Region's `spec.energy.price`."""
    source = cast(SignalSource, _make(config, _context(secrets, region_currency)))
    return Cached[Series](source, config.refreshSeconds) if cache else source


def build_carbon_source(
    config: CarbonSource, *, secrets: SecretResolver | None = None, cache: bool = True
) -> SignalSource:
    """A carbon source (gCO2eq/kWh) for a Region's `spec.energy.carbon`."""
    source = cast(SignalSource, _make(config, _context(secrets, None)))
    return Cached[Series](source, config.refreshSeconds) if cache else source


def build_grid_event_source(
    config: GridEventSource, *, secrets: SecretResolver | None = None, cache: bool = True
) -> GridEventReader:
    """A grid-event reader for a Region's `spec.energy.gridEvents`."""
    source = cast(GridEventReader, _make(config, _context(secrets, None)))
    return Cached[GridEvents](source, config.refreshSeconds) if cache else source
