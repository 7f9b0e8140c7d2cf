"""Inputs and outputs of the planner: frozen dataclasses, units in every field name.

A *pool* is one variant of the deployment in one region (``PoolKey(region, gpu_product,
variant)``): a GPU product with its own GPUs per replica, capacity and power; a deployment with
one implicit variant has pools ``PoolKey(region, gpu_product)``. The planner decides an integer
replica count per pool. A Region's GPU quota is per product: the variants of one product in one
region share it (counted in GPUs). Everything here is plain data: no I/O, no
Kubernetes types, so the controller, the simulator and ``wattscale explain`` can all build and
read these objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from wattscale.forecast.recent import RecentDemand

__all__ = [
    "Action",
    "ActionKind",
    "CapacitySeen",
    "Decision",
    "Explanation",
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
]


class PoolKey(NamedTuple):
    """Identifies a pool: one variant (a GPU product, by default the only one) in one region."""

    region: str
    gpu_product: str
    variant: str = ""
    """The variant's name; empty for a deployment with a single implicit variant."""

    def __str__(self) -> str:
        return f"{self.region}/{self.variant or self.gpu_product}"

    @property
    def quota_key(self) -> PoolKey:
        """The Region quota this pool draws on: its GPU product in its region."""
        return PoolKey(self.region, self.gpu_product)


class Objective(StrEnum):
    """What the optimiser minimises.

    * ``cost``: money per hour (GPU-hours + electricity); carbon is ignored.
    * ``balanced``: money per hour + ``carbon_price_per_tonne`` x tonnes CO2 per hour.
    * ``carbon``: grams CO2 per hour; money only breaks ties (weight 1e-6).
    """

    COST = "cost"
    CARBON = "carbon"
    BALANCED = "balanced"


class ReasonCode(StrEnum):
    """Why a decision came out as it did. Goes into status.lastDecision and Events."""

    NO_CHANGE = "NoChange"
    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    SCALE_DOWN_STABILISING = "ScaleDownStabilising"
    SHIFT_STARTED = "ShiftStarted"
    SHIFT_WAITING_FOR_READY = "ShiftWaitingForReady"
    SHIFT_COMPLETED = "ShiftCompleted"
    STALE_SIGNALS_HOLD = "StaleSignalsHold"
    MISSING_METRICS_HOLD = "MissingMetricsHold"
    GRID_EVENT_CAPPED = "GridEventCapped"
    MIN_SAVINGS_NOT_MET = "MinSavingsNotMet"
    RATE_LIMITED = "RateLimited"
    AT_MAX_REPLICAS = "AtMaxReplicas"
    QUOTA_EXHAUSTED = "QuotaExhausted"
    INFEASIBLE = "Infeasible"
    SCALED_TO_ZERO = "ScaledToZero"
    WOKE_UP = "WokeUp"


class ActionKind(StrEnum):
    """What an action does to a pool's replica count."""

    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class PoolInput:
    """One variant of the deployment (a GPU product) in a region, as the planner sees it.

    Watts are per replica (all its GPUs plus their host share), before PUE; see
    :func:`wattscale.planner.power.replica_power` for defaults. Pools of one region with the
    same ``gpu_product`` (variants) share its quota: together they hold at most the largest
    ``quota_replicas * gpus_per_replica`` of them in GPUs.
    """

    gpu_product: str
    gpu_hour_cost_per_replica: float  # currency per replica-hour (amortised or rental)
    idle_watts: float  # per replica, model loaded, no load
    max_watts: float  # per replica, serving at capacity_tokens_per_second
    capacity_tokens_per_second: float  # per replica, within the latency SLO
    quota_replicas: int  # GPU quota // GPUs per replica
    current_replicas: int = 0  # desired replicas as last set (the Deployment's spec.replicas)
    ready_replicas: int = 0  # replicas that are Ready now
    gpus_per_replica: int = 1
    variant: str = ""  # the variant's name; empty for a single implicit variant

    def key(self, region: str) -> PoolKey:
        """This pool's key in ``region``."""
        return PoolKey(region, self.gpu_product, self.variant)


@dataclass(frozen=True, slots=True)
class GridEvent:
    """A grid event (demand response, grid stress) limiting a region while it lasts.

    ``max_replicas`` caps the region's replicas over all its pools; 0 excludes the region.
    An event in force (``starts_in_seconds`` <= 0) is a hard cap: replicas above it go now. An
    announced one (starting within the cold start, so replacements must start now to be Ready
    in time) caps only the target: the move out of the region is make-before-break, and the
    region's replicas keep serving until the replacements are Ready or the event begins.
    """

    max_replicas: int
    ends_in_seconds: float
    name: str = ""
    starts_in_seconds: float = 0.0

    @property
    def in_force(self) -> bool:
        """Whether the event has begun (a hard cap) rather than being announced."""
        return self.starts_in_seconds <= 0


@dataclass(frozen=True, slots=True)
class RegionInput:
    """A region: its pools, energy signals, latency to user populations, grid events.

    Forecast tuples are aligned with the planning horizon: index k is the value for
    ``[k * horizon_step_seconds, (k+1) * horizon_step_seconds)`` from now; index 0 is now. A
    shorter tuple is extended with its last value; an empty one means "use the value now".
    ``None`` for the value now means the signal is missing.
    """

    name: str
    pools: tuple[PoolInput, ...]
    pue: float = 1.2
    price_per_kwh: float | None = 0.0  # currency/kWh; negative prices are valid
    price_forecast_per_kwh: tuple[float, ...] = ()
    carbon_g_per_kwh: float | None = 0.0  # gCO2/kWh
    carbon_forecast_g_per_kwh: tuple[float, ...] = ()
    price_fresh: bool = True
    carbon_fresh: bool = True
    grid_event: GridEvent | None = None
    rtt_ms: Mapping[str, float] = field(default_factory=dict)  # population -> round trip ms


@dataclass(frozen=True, slots=True)
class Population:
    """A user population and its share of the demand (shares are normalised)."""

    name: str
    demand_share: float


@dataclass(frozen=True, slots=True)
class LatencyBudget:
    """TTFT budget: a region may serve a population only if RTT + service TTFT <= SLO TTFT.

    A region without an RTT entry for a population is assumed close enough (RTT 0).
    """

    ttft_slo_ms: float
    service_ttft_ms: float
    populations: tuple[Population, ...]
    tpot_slo_ms: float | None = None  # informational: capacity is already "within the SLO"


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One past recommendation (the optimiser's target) kept for scale-down stabilisation."""

    time_seconds: float
    replicas: tuple[tuple[PoolKey, int], ...]


CapacitySeen = tuple[tuple[float, tuple[tuple[PoolKey, float], ...]], ...]
"""(time, ((pool, tokens/s per replica), ...)) of each pass within a window."""


@dataclass(frozen=True, slots=True)
class PlannerState:
    """State the planner needs between calls; returned in every Decision, passed back in."""

    history: tuple[Recommendation, ...] = ()
    shift_pending: bool = False  # a make-before-break move is waiting to remove replicas
    recent: RecentDemand = field(default_factory=RecentDemand)
    """Demand measured over the last minutes and the planner's scored peak forecasts
    (:mod:`wattscale.planner.sizing`)."""
    busy_seconds: float | None = None
    """When demand (or a request waiting at the gateway) was last seen, or the deployment
    woke: the idle window of scale to zero counts from here (:mod:`wattscale.planner.zero`)."""
    capacity_seen: CapacitySeen = ()
    """Each pass's capacity per replica of every pool (tokens/s) within the protection window:
    a scale-down must fit at the lowest of them too (:func:`wattscale.planner.planner.plan`)."""


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """Everything one decision needs. ``now_seconds`` is any monotonic clock (epoch is fine).

    ``demand_tokens_per_second`` is the demand forecast over the horizon (index 0 = now, as
    measured); empty means the metrics are missing. Capacity must cover the headroom x the
    largest of the forecast's peak over the first ``cold_start_seconds + 2 x interval_seconds``
    (what can still arrive before replicas started now are Ready), the recent ramp extrapolated
    over that window, and the demand measured within it (see :mod:`wattscale.planner.sizing`);
    prices are averaged over the whole horizon.
    """

    now_seconds: float
    regions: tuple[RegionInput, ...]
    demand_tokens_per_second: tuple[float, ...]
    horizon_step_seconds: float = 60.0
    headroom: float | None = 1.2
    """A fixed factor over the expected peak; None: derived from the planner's measured
    forecast error and its target utilisation (what the operator and the replay use unless the
    spec sets ``slo.headroomPercent``)."""
    min_replicas: int = 1
    max_replicas: int = 100
    min_regions: int = 1
    objective: Objective = Objective.COST
    carbon_price_per_tonne: float = 0.0
    min_savings_percent: float = 5.0
    cold_start_seconds: float = 300.0
    interval_seconds: float = 30.0
    scale_down_stabilisation_seconds: float = 300.0
    max_scale_up_per_step: int | None = None  # replicas added per decision (None: unlimited)
    max_scale_down_per_step: int | None = None  # replicas removed per decision
    max_shift_per_step: int | None = None  # replicas added for a move (not for capacity)
    latency: LatencyBudget | None = None
    metrics_fresh: bool = True
    demand_settling: bool = False
    """Replicas became Ready within the metrics window, so the measured demand may under-read
    (their rates are not in it yet): plan up on it, or move replicas, but never shrink the
    fleet's capacity on it."""
    demand_censored: bool = False
    """The reading is a lower bound on demand: the SLO is breached where demand was measured
    (the fleet served what it could; users queue), or a region that served was lost (its users
    are not all served elsewhere yet). Not a level the forecast could have seen: sizing starts
    from the demand series handed in (lifted to the floor), not from the reading, and the error
    memory does not score what it predicts."""
    demand_lag_seconds: float = 0.0
    """How long the measured demand lags the traffic (the metrics' ``rate()`` window): traffic
    that starts as a step shows as a ramp over it, so the forecast's error memory stays cold
    for this long beyond the sizing window after traffic first appears."""
    explain: bool = True  # compute the runner-up; the simulator may skip it
    runner_up_exact: bool = False  # prove the runner-up optimal (one more exact solve)
    scale_to_zero_idle_seconds: float | None = None
    """With ``min_replicas`` 0: go to zero after no demand and no waiting request for this
    long, and wake on a waiting request (None: no scale to zero; see
    :mod:`wattscale.planner.zero`)."""
    waiting_requests: float | None = None
    """Requests waiting for (or failed by) this deployment at the gateway; None: unknown."""
    measured_tokens_per_second: float | None = None
    """Demand as measured now, when ``demand_tokens_per_second`` starts with a forecast rather
    than the measurement (a forecast's upper band stays above zero long after the last
    request); None: take ``demand_tokens_per_second[0]``. The sizing starts from it when the
    reading is whole (neither settling nor censored); scale to zero reads it too."""


class Action(NamedTuple):
    """Set ``pool`` from ``from_replicas`` to ``to_replicas``. Adds come before removes."""

    kind: ActionKind
    pool: PoolKey
    from_replicas: int
    to_replicas: int


@dataclass(frozen=True, slots=True)
class PlanOption:
    """A replica vector and what it costs over the horizon (averages per hour)."""

    replicas: Mapping[PoolKey, int]
    cost_per_hour: float  # currency/h: GPU-hours + electricity (carbon price not included)
    objective_per_hour: float  # what the optimiser minimised, in its own unit per hour
    energy_watts: float  # average facility power (PUE included)
    carbon_g_per_hour: float
    capacity_tokens_per_second: float

    @property
    def total_replicas(self) -> int:
        """Replicas summed over pools."""
        return sum(self.replicas.values())


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why: the chosen plan, the runner-up, the plan as it is now, the binding constraint."""

    reason: ReasonCode
    chosen: PlanOption | None
    runner_up: PlanOption | None
    current: PlanOption | None
    binding_constraint: str
    need_tokens_per_second: float
    solver: str  # "dp" (exact dynamic programme), "milp" (HiGHS), "none"
    optimal: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now.

    ``desired`` is what to set on each pool now (after every guard-rail); ``target`` is where
    the optimiser wants to go. ``actions`` are ordered make-before-break: adds first.
    """

    desired: Mapping[PoolKey, int]
    target: Mapping[PoolKey, int]
    actions: tuple[Action, ...]
    traffic_weights: Mapping[PoolKey, float]
    reason: ReasonCode
    reasons: tuple[ReasonCode, ...]
    message: str
    explanation: Explanation
    state: PlannerState
