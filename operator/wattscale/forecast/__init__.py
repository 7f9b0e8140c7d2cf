"""Pure demand forecasting (damped Holt-Winters, daily season, warm start) for the planner.

API: :class:`ForecastConfig`, :class:`Forecaster`, :func:`warm_start` (from a history of
``(t_seconds, value)`` points), :func:`observe` (returns a new state), :func:`forecast` (mean or
upper quantile ``+ k_sigma * sigma``), :func:`horizon` (index 0 = now, for
``PlanRequest.demand_tokens_per_second``), :func:`tune` and :func:`backtest_mape`. No I/O.
"""

from .holt import (
    ForecastConfig,
    Forecaster,
    backtest_mape,
    forecast,
    horizon,
    observe,
    tune,
    warm_start,
)

__all__ = [
    "ForecastConfig",
    "Forecaster",
    "backtest_mape",
    "forecast",
    "horizon",
    "observe",
    "tune",
    "warm_start",
]
