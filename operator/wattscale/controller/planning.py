"""Turn an InferenceDeployment's spec and what was observed into a planner request (pure).

This is the only place that knows both the API's field names and the planner's: units are
converted here (milliseconds to seconds, decimal strings to floats, percents to ratios), and the
rules for unknown inputs live here too: a region whose cluster does not answer offers no new
capacity and none of its replicas count (quota 0; the controller changes nothing there), a
missing demand reading is passed on as missing (the planner then holds or scales up, never
down; what served before a region was lost counts towards what is held, so its replicas are
replaced elsewhere instead of forgotten), and a latency SLO that is
being broken lifts demand above what the replicas serve now (measured throughput under-reads
demand when requests queue); "the replicas" being those Ready throughout the readings' window,
so that readings that still describe fewer replicas do not compound the lift pass after pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.fleet.observe import QueueTrend, RegionObservation
from wattscale.metrics.gateway import GatewayReading
from wattscale.metrics.readings import Reading
from wattscale.planner import (
    HORIZON_STEP_SECONDS,
    GridEvent,
    LatencyBudget,
    Objective,
    PlanRequest,
    PoolInput,
    Population,
    RegionInput,
    horizon_steps,
)
from wattscale.planner.costing import SIZING_INTERVALS
from wattscale.signals import Series

DEFAULT_CAPACITY_TOKENS_PER_SECOND = 2000.0
"""Used only when neither a hint nor a learned value exists: deliberately low (scales up)."""
SLO_BREACH_DEMAND_FACTOR = 1.15
"""When p95 latency is over target, demand is taken as at least 115 % of what is served."""


@dataclass(frozen=True)
class Demand:
    """Output-token demand summed over regions, and whether it can be trusted."""

    tokens_per_second: float | None
    slo_breached: bool
    fresh: bool
    notes: tuple[str, ...] = ()
    breached_regions: tuple[str, ...] = ()
    """The regions whose p95 TTFT or TPOT is over the SLO (``slo_breached``: any)."""


def measure_demand(spec: InferenceDeploymentSpec, regions: Sequence[RegionObservation]) -> Demand:
    """Sum measured output tokens/s; any region with Ready pods but no usable reading => stale."""
    total = 0.0
    fresh = True
    breached: list[str] = []
    notes: list[str] = []
    for obs in regions:
        if not obs.available or obs.ready == 0:
            continue
        readings = obs.readings
        if readings is None or not readings.demand_reading_usable:
            fresh = False
            notes.append(f"no usable demand reading from {obs.name}")
            continue
        total += readings.generation_tokens_per_second.value_or(0.0)
        slo = spec.slo
        if _over_slo(readings.ttft_p95_seconds, slo.ttftP95Ms) or _over_slo(
            readings.tpot_p95_seconds, slo.tpotP95Ms
        ):
            breached.append(obs.name)
    running = sum(o.ready for o in regions if o.available)
    if running == 0:
        # Nothing runs, so nothing can be measured: demand is unknown, not zero.
        return Demand(None, False, False, ("no replica is running, demand is unknown",))
    if not fresh:
        return Demand(None, bool(breached), False, tuple(notes), tuple(breached))
    return Demand(total, bool(breached), True, tuple(notes), tuple(breached))


def _over_slo(reading: Reading, slo_ms: float) -> bool:
    return reading.usable and reading.value is not None and reading.value * 1000 > slo_ms


_QUEUEING = (QueueTrend.HOLDING, QueueTrend.UNREAD)
"""The queue trends under which a latency breach means users ask more than a region serves."""


def breach_floor(
    spec: InferenceDeploymentSpec,
    regions: Sequence[RegionObservation],
    demand: Demand,
    capacity_tokens_per_second: Capacities,
) -> float:
    """What users ask at least, when some region's latency is over the SLO.

    A region within its SLO serves what it is sent: its demand is what it served. So does one
    over it where nothing waits now (its replicas are slow, not short: the capacity learner
    hears that), and one whose queue falls: its users ask what it served less what the
    queue shrank by, and its latency is a backlog draining, not theirs. A region over it whose
    queue held or grew (or is not read) queues: its users ask at least what its replicas could
    serve, by ``SLO_BREACH_DEMAND_FACTOR``. Counted are only the replicas Ready throughout the
    span the latency readings describe (the rate window plus the p95 TTFT: a slow first token
    was asked for that long ago) and the one the queue's trend describes (from a little before
    the reading one window ago): replicas that came up since did not build the queue, and
    counting them would lift the plan again on every pass while an old backlog drains (after a
    failover onto the replicas left, say, or a restart that has no history yet: none counted)."""
    floor = 0.0
    for obs in regions:
        if not obs.available or obs.ready == 0 or obs.readings is None:
            continue
        served = obs.readings.generation_tokens_per_second.value_or(0.0)
        if obs.name in demand.breached_regions and obs.queue_trend in _QUEUEING:
            could = obs.ready_queueing * _mean_capacity(spec, obs, capacity_tokens_per_second)
            served = max(served, could) * SLO_BREACH_DEMAND_FACTOR
        floor += served
    return max(floor, demand.tokens_per_second or 0.0)


def breach_notes(demand: Demand, regions: Sequence[RegionObservation]) -> tuple[str, ...]:
    """What a breach in each region says about its demand, in words (for the explanation)."""
    notes = []
    for obs in regions:
        if obs.name not in demand.breached_regions or obs.readings is None:
            continue
        waiting = obs.readings.waiting_requests.value_or(0.0)
        if obs.queue_trend in _QUEUEING:
            said = (
                f"{obs.queue_trend.value} ({waiting:.0f} waiting): users ask at least what "
                f"{obs.ready_queueing} of its {obs.ready} Ready replicas serve, x"
                f"{SLO_BREACH_DEMAND_FACTOR:g}"
            )
        else:
            said = f"{obs.queue_trend.value} ({waiting:.0f} waiting): demand is what it served"
        notes.append(f"{obs.name} is over the SLO; its queue is {said}")
    return tuple(notes)


def _grid_event(
    obs: RegionObservation, quota: int, now: datetime, notice_seconds: float
) -> GridEvent | None:
    """The grid event the planner must respect in this region, if any.

    An event in force is a hard cap. Without one, an event announced to start within
    ``notice_seconds`` (the cold start plus a couple of intervals: what replacements elsewhere
    need to be Ready) caps the target only, so the planner moves out make-before-break."""
    reading = obs.signals.grid_events if obs.signals else None
    events = reading.events if reading else None
    if events is None:
        return None
    relevant = events.active(now)
    if not relevant:
        horizon = now + timedelta(seconds=max(notice_seconds, 0.0))
        relevant = [e for e in events.events if now < e.start <= horizon]
    if not relevant:
        return None
    cap = min(e.cap_fraction for e in relevant)
    ends = [e.end for e in relevant if e.end is not None]
    ends_in = min((e - now).total_seconds() for e in ends) if ends else 3600.0
    starts_in = max(0.0, min((e.start - now).total_seconds() for e in relevant))
    name = ", ".join(sorted({e.event_id or e.kind for e in relevant}))
    return GridEvent(
        max_replicas=math.floor(cap * quota),
        ends_in_seconds=ends_in,
        name=name,
        starts_in_seconds=starts_in,
    )


def _pools(
    spec: InferenceDeploymentSpec, obs: RegionObservation, capacity: Capacities
) -> tuple[PoolInput, ...]:
    """One pool per variant the region offers a GPU for (the first variant: ``obs.offer``).

    An unreachable region offers no new capacity (quota 0) and none of its replicas count."""
    pools = []
    for index, v in enumerate(spec.engine.resolved_variants(None)):
        seen = obs.variants[index - 1] if 0 < index <= len(obs.variants) else None
        offer = obs.offer if index == 0 else (seen.offer if seen is not None else None)
        if offer is None:
            continue
        gpus = v.gpus_per_replica
        current = (
            obs.primary_current if index == 0 else (seen.current(obs.available) if seen else 0)
        )
        ready = obs.primary_ready if index == 0 else (seen.ready(obs.available) if seen else 0)
        pools.append(
            PoolInput(
                gpu_product=offer.product,
                gpu_hour_cost_per_replica=float(offer.hourlyCost) * gpus,
                idle_watts=float(gpus * (offer.idleWatts + offer.hostWattsPerGpu)),
                max_watts=float(gpus * (offer.maxWatts + offer.hostWattsPerGpu)),
                capacity_tokens_per_second=_capacity_of(capacity, v.name),
                quota_replicas=offer.available // gpus if obs.available else 0,
                current_replicas=current,
                ready_replicas=ready,
                gpus_per_replica=gpus,
                variant=v.name,
            )
        )
    return tuple(pools)


Capacities = float | Mapping[str, float]
"""One replica's capacity: one figure, or one per variant name."""


def _capacity_of(capacity: Capacities, variant: str) -> float:
    return capacity if isinstance(capacity, float | int) else float(capacity[variant])


def _mean_capacity(spec: InferenceDeploymentSpec, o: RegionObservation, cap: Capacities) -> float:
    """Capacity of one of the region's Ready replicas, on average over its variants."""
    if not isinstance(cap, Mapping):
        return float(cap)
    names = [v.name for v in spec.engine.resolved_variants(None)]
    ready = [o.primary_ready, *(v.ready(o.available) for v in o.variants)]
    total = sum(ready)
    if total == 0:
        return float(cap[names[0]])
    return sum(n * cap[v] for n, v in zip(ready, names, strict=False)) / total


def region_input(
    spec: InferenceDeploymentSpec,
    obs: RegionObservation,
    capacity_tokens_per_second: Capacities,
    now: datetime,
    steps: int,
    notice_seconds: float = 0.0,
) -> RegionInput | None:
    """The planner's view of one region, or None when it cannot host this deployment at all.

    ``notice_seconds``: how far ahead an announced grid event already shapes the plan."""
    runtime = obs.runtime
    if runtime is None or runtime.spec is None:
        return None
    region = runtime.spec
    pools = _pools(spec, obs, capacity_tokens_per_second)
    if not pools:
        return None
    quota = pools[0].quota_replicas
    snap = obs.signals
    step = HORIZON_STEP_SECONDS
    price = carbon = None
    price_fc: tuple[float, ...] = ()
    carbon_fc: tuple[float, ...] = ()
    price_fresh = carbon_fresh = False
    if snap is not None and snap.price is not None:
        price = _finite(snap.price_per_kwh(now))  # None when missing or stale
        # A failing feed is not fresh even while cached day-ahead points still cover now:
        # prices may have been re-published, so the planner holds (never scales down).
        price_fresh = price is not None and snap.price.is_fresh(now) and snap.price.error is None
        price_fc = _forecast(snap.price.series, now, steps, step)
    if snap is not None and snap.carbon is not None:
        carbon = _finite(snap.carbon_g_per_kwh(now))
        carbon_fresh = (
            carbon is not None and snap.carbon.is_fresh(now) and snap.carbon.error is None
        )
        carbon_fc = _forecast(snap.carbon.series, now, steps, step)
    if region.energy.carbon is None:
        carbon, carbon_fresh = 0.0, True  # no carbon feed configured: carbon is not a factor
    return RegionInput(
        name=obs.name,
        pools=pools,
        pue=float(region.energy.pue),
        price_per_kwh=price,
        price_forecast_per_kwh=price_fc,
        carbon_g_per_kwh=carbon,
        carbon_forecast_g_per_kwh=carbon_fc,
        price_fresh=price_fresh,
        carbon_fresh=carbon_fresh,
        grid_event=_grid_event(obs, quota, now, notice_seconds),
        rtt_ms={lat.population: float(lat.rttMs) for lat in region.latency},
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _forecast(
    series: Series | None, now: datetime, steps: int, step_seconds: float
) -> tuple[float, ...]:
    """Values of a feed at each horizon step (known points only; the planner extends the last)."""
    if series is None:
        return ()
    out: list[float] = []
    for k in range(steps):
        t = now + timedelta(seconds=k * step_seconds)
        point = series.point_at(t)
        if point is None or not math.isfinite(point.value):
            break
        out.append(point.value)
    return tuple(out)


def build_request(
    spec: InferenceDeploymentSpec,
    regions: Sequence[RegionObservation],
    demand: Demand,
    forecast_tokens_per_second: Sequence[float],
    capacity_tokens_per_second: Capacities,
    now: datetime,
    now_seconds: float,
    interval_seconds: float,
    time_scale: float = 1.0,
    held_replicas: int = 0,
    demand_settling: bool = False,
    gateway: GatewayReading | None = None,
    demand_lag_seconds: float = 0.0,
    reading_is_floor: bool = False,
) -> PlanRequest:
    """The full planner request for one decision.

    ``demand_settling``, ``demand_lag_seconds`` (the metrics' rate window): see
    :class:`PlanRequest`. ``reading_is_floor``: the demand read is a lower bound on what users
    ask (a region that served was lost and its users are not all served elsewhere yet), so
    the request says it is censored, as a breach does.
    ``held_replicas``: while demand cannot be measured, plan at least this many (what served
    before a region stopped answering, so that its replicas are replaced in the regions that
    answer; the planner's hold alone would keep only what those run).
    ``gateway``: the requests waiting at the gateway (scale to zero; None: not read).
    """
    steps = horizon_steps(spec.placement.coldStartSeconds, interval_seconds)
    # Replacements for a region an announced grid event will cap must start this early.
    notice = spec.placement.coldStartSeconds + SIZING_INTERVALS * interval_seconds
    inputs = [
        region_input(spec, o, capacity_tokens_per_second, now, steps, notice) for o in regions
    ]
    demand_series: tuple[float, ...] = ()
    if demand.fresh and demand.tokens_per_second is not None:
        series = list(forecast_tokens_per_second) or [demand.tokens_per_second]
        if demand.slo_breached:
            floor = breach_floor(spec, regions, demand, capacity_tokens_per_second)
            series = [max(v, floor) for v in series]
        demand_series = tuple(max(0.0, v) for v in series)
    placement = spec.placement
    latency = None
    if placement.users:
        latency = LatencyBudget(
            ttft_slo_ms=float(spec.slo.ttftP95Ms),
            service_ttft_ms=float(spec.slo.ttftP95Ms) * 0.5,
            populations=tuple(Population(u.name, u.sharePercent / 100.0) for u in placement.users),
            tpot_slo_ms=float(spec.slo.tpotP95Ms),
        )
    carbon_price = float(placement.carbonPricePerTonne or 0)
    scale = max(time_scale, 1e-6)
    return PlanRequest(
        now_seconds=now_seconds,
        regions=tuple(r for r in inputs if r is not None),
        demand_tokens_per_second=demand_series,
        horizon_step_seconds=HORIZON_STEP_SECONDS,
        headroom=(
            None if spec.slo.headroomPercent is None else 1.0 + spec.slo.headroomPercent / 100.0
        ),
        min_replicas=(
            spec.slo.minReplicas
            if demand.fresh
            else min(max(spec.slo.minReplicas, held_replicas), spec.slo.maxReplicas)
        ),
        max_replicas=spec.slo.maxReplicas,
        min_regions=spec.slo.minRegions,
        objective=Objective(placement.objective),
        carbon_price_per_tonne=carbon_price if placement.objective == "balanced" else 0.0,
        min_savings_percent=float(placement.minSavingsPercent),
        cold_start_seconds=float(placement.coldStartSeconds),
        interval_seconds=interval_seconds,
        scale_down_stabilisation_seconds=placement.scaleDownStabilizationSeconds / scale,
        max_shift_per_step=placement.maxShiftPerStep,
        latency=latency,
        metrics_fresh=demand.fresh,
        demand_settling=demand_settling,
        demand_censored=demand.slo_breached or reading_is_floor,
        demand_lag_seconds=demand_lag_seconds,
        scale_to_zero_idle_seconds=_idle_seconds(spec, scale),
        waiting_requests=None if gateway is None else gateway.waiting_requests,
        measured_tokens_per_second=demand.tokens_per_second if demand.fresh else None,
    )


def _idle_seconds(spec: InferenceDeploymentSpec, time_scale: float) -> float | None:
    """The scale-to-zero idle window in the operator's clock (None: scale to zero is off)."""
    settings = spec.scale_to_zero()
    return None if settings is None else settings.idleSeconds / time_scale
