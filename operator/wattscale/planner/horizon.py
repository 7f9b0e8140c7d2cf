"""How far ahead a decision looks: shared by the operator and the simulator so they plan alike.

The horizon is the next hour (long enough for a move to pay for its cold start against known
prices), or cold start plus a few intervals if that is longer. Demand over it is the
forecaster's upper quantile (mean + FORECAST_K_SIGMA x sigma): it prices the horizon, and sets
the capacity (over its first part only, :func:`wattscale.planner.sizing.sizing_steps`) when
the reading now is not whole; a whole reading is what the sizing starts from, and the planner
measures its own error on the peak it sizes for and derives the headroom from it (see
:mod:`wattscale.planner.sizing`).
"""

from __future__ import annotations

import math

from wattscale.forecast.holt import ForecastConfig

HORIZON_STEP_SECONDS = 60.0
MIN_HORIZON_SECONDS = 3600.0
INTERVALS_AFTER_COLD_START = 4
FORECAST_K_SIGMA = 1.0
DEMAND_FORECAST = ForecastConfig(step_seconds=HORIZON_STEP_SECONDS, season_bucket_steps=15)
"""The demand forecaster both plan with: damped Holt on 1-minute buckets, with a daily profile
of 15-minute buckets.

When the reading is not whole, capacity is sized on the next ~7 minutes of the forecast, and
at that range a level updated every minute
(alpha 0.3, a memory of ~3 minutes) follows the day's curve by itself; what a daily profile
adds is what recurs at a time of day faster than the level follows (a batch job every day at
09:00). A profile of 1,440 one-minute buckets, each moved by gamma once a day, learns the
minutes' noise around the level instead, and hands it back a day later as forecast noise; a
15-minute bucket averages it away (see ``ForecastConfig.season_bucket_steps``)."""


def horizon_steps(cold_start_seconds: float, interval_seconds: float) -> int:
    """Planner steps (of HORIZON_STEP_SECONDS) in the horizon."""
    seconds = max(
        MIN_HORIZON_SECONDS, cold_start_seconds + INTERVALS_AFTER_COLD_START * interval_seconds
    )
    return math.ceil(seconds / HORIZON_STEP_SECONDS)
