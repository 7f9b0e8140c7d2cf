"""Pure decision code: power and cost models, the exact optimiser and the guard-rails.

No I/O. The public API is small:

* inputs: :class:`PlanRequest` (with :class:`RegionInput`, :class:`PoolInput`,
  :class:`GridEvent`, :class:`LatencyBudget`, :class:`Population`) and :class:`PlannerState`;
* the call: :func:`plan` ``(request, state) -> Decision``;
* outputs: :class:`Decision` (``desired``, ``target``, ordered ``actions``, ``traffic_weights``,
  ``reason``/``reasons`` as :class:`ReasonCode`, ``explanation``: :class:`Explanation` with
  :class:`PlanOption` for the chosen plan, the runner-up and the current plan, and ``state``);
* power defaults: :func:`replica_power`, :data:`DEFAULT_GPU_POWER`.

See docs/planner.md for the model, the formulation and the guard-rails.
"""

from .horizon import DEMAND_FORECAST, FORECAST_K_SIGMA, HORIZON_STEP_SECONDS, horizon_steps
from .model import (
    Action,
    ActionKind,
    Decision,
    Explanation,
    GridEvent,
    LatencyBudget,
    Objective,
    PlannerState,
    PlanOption,
    PlanRequest,
    PoolInput,
    PoolKey,
    Population,
    ReasonCode,
    Recommendation,
    RegionInput,
)
from .planner import plan
from .power import DEFAULT_GPU_POWER, GpuPower, ReplicaPower, replica_power

__all__ = [
    "DEFAULT_GPU_POWER",
    "DEMAND_FORECAST",
    "FORECAST_K_SIGMA",
    "HORIZON_STEP_SECONDS",
    "Action",
    "ActionKind",
    "Decision",
    "Explanation",
    "GpuPower",
    "GridEvent",
    "LatencyBudget",
    "Objective",
    "PlanOption",
    "PlanRequest",
    "PlannerState",
    "PoolInput",
    "PoolKey",
    "Population",
    "ReasonCode",
    "Recommendation",
    "RegionInput",
    "ReplicaPower",
    "horizon_steps",
    "plan",
    "replica_power",
]
