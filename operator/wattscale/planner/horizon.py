"""How far ahead a decision looks: shared by the operator and the simulator so they plan alike.

The horizon is the next hour (long enough for a move to pay for its cold start against known
prices), or cold start plus a few intervals if that is longer. Demand over it is the
forecaster's upper quantile (mean + FORECAST_K_SIGMA x sigma); the planner then measures its
own error on the peak it sizes for and derives the headroom from it (see
:mod:`wattscale.planner.sizing`); capacity is sized only for its first part
(:func:`wattscale.planner.sizing.sizing_steps`).
"""

from __future__ import annotations

import math

HORIZON_STEP_SECONDS = 60.0
MIN_HORIZON_SECONDS = 3600.0
INTERVALS_AFTER_COLD_START = 4
FORECAST_K_SIGMA = 1.0


def horizon_steps(cold_start_seconds: float, interval_seconds: float) -> int:
    """Planner steps (of HORIZON_STEP_SECONDS) in the horizon."""
    seconds = max(
        MIN_HORIZON_SECONDS, cold_start_seconds + INTERVALS_AFTER_COLD_START * interval_seconds
    )
    return math.ceil(seconds / HORIZON_STEP_SECONDS)
