"""Energy, carbon and grid-event sources: one module per provider behind one small protocol.

Public API (see docs/signals.md):
- `SignalSource` / `GridEventReader`: `read(now) -> Series | GridEvents` (sync, call off-loop);
- `Series`, `Point`, `GridEvent`, `GridEvents`: normalised values (currency/kWh, gCO2eq/kWh, UTC);
- `SignalError` and subclasses: typed failures that say what to fix;
- `wattscale.signals.registry`: `build_price_source`, `build_carbon_source`,
  `build_grid_event_source`, `register`, `REGISTRY`.
"""

from wattscale.signals.base import (
    CARBON_UNIT,
    AuthError,
    BadPayload,
    Cached,
    ConfigError,
    CurrencyMismatch,
    EmptySeries,
    GridEvent,
    GridEventReader,
    GridEvents,
    Point,
    RateLimited,
    RequestRejected,
    SecretResolver,
    Series,
    SignalError,
    SignalSource,
    SourceContext,
    StaleData,
    Unreachable,
    dict_secret_resolver,
)

__all__ = [
    "CARBON_UNIT",
    "AuthError",
    "BadPayload",
    "Cached",
    "ConfigError",
    "CurrencyMismatch",
    "EmptySeries",
    "GridEvent",
    "GridEventReader",
    "GridEvents",
    "Point",
    "RateLimited",
    "RequestRejected",
    "SecretResolver",
    "Series",
    "SignalError",
    "SignalSource",
    "SourceContext",
    "StaleData",
    "Unreachable",
    "dict_secret_resolver",
]
