"""One control-loop pass for one InferenceDeployment: snapshot, demand, plan, act, report.

Level-based: every pass reads the whole world again. What must survive a restart lives in the
object's status (the desired replicas per region, the shift in progress); what only makes the
next pass better lives in memory (:mod:`.memory`) and is rebuilt conservatively after a
restart. The world is read through :mod:`wattscale.fleet`, carried out by :mod:`.act` and
described by :mod:`.report`.

The pass returns an :class:`Outcome` (status, Events); the kopf handler writes them. Nothing
here imports kopf, so the whole pass runs in unit tests against fake regions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from wattscale.api.errors import format_errors
from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.clusters.routes import RouteStore
from wattscale.controller import act, leaving
from wattscale.controller.completeness import Completeness, completeness
from wattscale.controller.memory import (
    WARM_STARTS_PER_INTERVAL,
    Memories,
    Memory,
    WarmBudget,
    capacity_estimate,
    fewest_ready,
    latency_span_seconds,
    learn_variant,
    learn_variants,
    queue_trend,
    ready_changed_in_window,
    ready_through_window,
    settling,
    variant_capacities,
    warm,
)
from wattscale.controller.planning import (
    DEFAULT_CAPACITY_TOKENS_PER_SECOND,
    Demand,
    breach_notes,
    build_request,
    measure_demand,
)
from wattscale.controller.report import Outcome, PassFacts, invalid, report
from wattscale.controller.settings import Settings
from wattscale.controller.status import Event
from wattscale.controller.traffic import TrafficRouter
from wattscale.fleet.ledger import QuotaLedger
from wattscale.fleet.observe import RegionObservation, VariantObservation, observe
from wattscale.fleet.regions import RegionDirectory
from wattscale.fleet.snapshot import FleetSnapshot
from wattscale.forecast.holt import horizon
from wattscale.forecast.holt import observe as forecast_observe
from wattscale.forecast.recent import seeded_recent
from wattscale.metrics import observation_from_readings
from wattscale.metrics.gateway import GatewayReading, read_waiting, wake_query
from wattscale.planner import (
    FORECAST_K_SIGMA,
    Decision,
    PlannerState,
    PlanRequest,
    PoolKey,
    Recommendation,
    horizon_steps,
    plan,
)
from wattscale.telemetry.metrics import OperatorMetrics

__all__ = ["Event", "Outcome", "Reconciler"]


@dataclass(frozen=True)
class _Sized:
    """Demand, its forecast over the horizon, and the capacity of one replica."""

    demand: Demand
    forecast: tuple[float, ...]
    capacity: float
    capacity_source: str
    metrics: Completeness
    variant_capacity: dict[str, float] | None = None
    """Capacity of each variant after the first, by name (None: no such variant)."""

    def capacities(self, spec: InferenceDeploymentSpec) -> float | dict[str, float]:
        """One replica's capacity: the figure, or one per variant name with variants."""
        if not spec.engine.variants:
            return self.capacity
        return {spec.engine.variants[0].name: self.capacity, **(self.variant_capacity or {})}


class Reconciler:
    """Runs passes for every InferenceDeployment; thread-safe per object (kopf serialises)."""

    def __init__(
        self,
        directory: RegionDirectory,
        settings: Settings,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], float] = time.time,
        routes: RouteStore | None = None,
        fleet: FleetSnapshot | None = None,
        ledger: QuotaLedger | None = None,
    ) -> None:
        self.directory = directory
        self.ledger = ledger
        """Region quotas and grid-event caps shared with the other deployments (None: each
        deployment plans as if alone)."""
        self.fleet = fleet
        """Shared per-Region reads (None: every deployment reads for itself)."""
        self.settings = settings
        self.metrics = metrics or OperatorMetrics()
        self.clock = clock
        self.router = TrafficRouter(routes)
        """Traffic weights onto the HTTPRoute a spec names (routes None: no Gateway API)."""
        self._memories = Memories()
        self._warm_budget = WarmBudget(WARM_STARTS_PER_INTERVAL, settings.interval_seconds)
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="observe")
        """Observes regions concurrently, shared by every pass (no pool per pass)."""

    def forget(self, namespace: str, name: str) -> None:
        self._memories.forget(namespace, name)
        if self.ledger is not None:
            self.ledger.forget(f"{namespace}/{name}")
        self.router.forget(namespace, name)

    def release(
        self, namespace: str, name: str, priority: int, held: dict[PoolKey, int] | None
    ) -> None:
        """Another replica owns this deployment now: forget what this one learnt (should it
        own it again, it starts over as after a restart: a warm start, never a scale-down),
        and count what it holds (``held``, GPUs per pool per its status) against the shares."""
        self._memories.forget(namespace, name)
        self.router.forget(namespace, name)
        if self.ledger is not None and held is not None:
            self.ledger.observe(f"{namespace}/{name}", priority, held)

    def reconcile(
        self,
        *,
        name: str,
        namespace: str,
        spec: dict[str, Any],
        status: dict[str, Any] | None,
        generation: int | None,
    ) -> Outcome:
        started = time.perf_counter()
        try:
            return self._reconcile(name, namespace, spec, status or {}, generation)
        finally:
            self.metrics.reconcile_seconds.observe(time.perf_counter() - started)

    def _reconcile(
        self,
        name: str,
        namespace: str,
        raw_spec: dict[str, Any],
        old: dict[str, Any],
        generation: int | None,
    ) -> Outcome:
        now_s = self.clock()
        now = datetime.fromtimestamp(now_s, UTC)
        try:
            spec = InferenceDeploymentSpec.model_validate(raw_spec)
        except ValidationError as err:
            return invalid(old, generation, now, format_errors(err, prefix="spec"))
        unknown = [r for r in spec.placement.regions if self.directory.get(r) is None]
        if unknown:
            known = ", ".join(self.directory.names()) or "none"
            problem = (
                f"spec.placement.regions: no Region named {', '.join(unknown)} (known: {known})"
            )
            return invalid(old, generation, now, [problem], reason="UnknownRegion")

        mem = self._memories.get(namespace, name, spec)
        dropped = leaving.leaving_regions(spec.placement.regions, old)
        regions = self._snapshot(mem, spec, name, namespace, old, now, dropped)
        gateway = _gateway(spec, name, namespace, regions)
        sized = self._size(mem, spec, regions, now_s, gateway)
        request, decision, quota_note = self._plan(
            mem, name, namespace, spec, regions, sized, now, now_s, dropped, gateway
        )

        desired, split = act.desired_replicas(spec, regions, decision, paused=spec.mode == "Paused")
        desired, draining = act.hold_draining(
            spec, regions, desired, mem.drain_since, now_s, self.settings.time_scale
        )
        # Traffic first: a region losing its share stops getting requests before it scales down.
        routed = act.route(self.router, spec, name, namespace, regions, decision)
        desired, route_held = act.hold_for_route(regions, desired, routed)
        split = act.hold_split(regions, desired, split)
        events = [Event(*e) for e in routed.events] if routed else []
        if spec.mode == "Active":
            events += act.apply_regions(spec, name, namespace, regions, split, old)
            regions, removed = leaving.clean_up(regions, dropped, desired, name, namespace)
            events += removed

        facts = PassFacts(
            spec=spec,
            name=name,
            namespace=namespace,
            regions=regions,
            demand=sized.demand,
            forecast=sized.forecast,
            capacity=sized.capacity,
            capacity_source=sized.capacity_source,
            metrics=sized.metrics,
            request=request,
            decision=decision,
            desired=desired,
            split=split,
            draining=draining,
            route_held=route_held,
            leaving=[o.name for o in regions if o.name in dropped],
            old=old,
            generation=generation,
            now=now,
            quota_note=quota_note,
            shares_quota=self.ledger is not None,
            gateway=gateway,
        )
        outcome = report(facts, routed, events, mem, self.metrics, now_s)
        mem.last_seconds = now_s
        return outcome

    def _snapshot(
        self,
        mem: Memory,
        spec: InferenceDeploymentSpec,
        name: str,
        namespace: str,
        old: dict[str, Any],
        now: datetime,
        dropped: list[str],
    ) -> list[RegionObservation]:
        """Every allowed (or still draining) region as this deployment sees it, with what was
        last set there."""
        regions = observe(
            self.directory, spec, name, namespace, now, self.fleet, self._pool, extra=dropped
        )
        rows = {r.get("name"): r for r in old.get("regions") or [] if isinstance(r, dict)}
        for obs in regions:
            _last_set(spec, obs, rows.get(obs.name) or {})
        if not mem.warm and self._warm_budget.take(now.timestamp()):
            warm(mem, regions, name, namespace, now, spec, self.settings.interval_seconds)
        return regions

    def _size(
        self,
        mem: Memory,
        spec: InferenceDeploymentSpec,
        regions: list[RegionObservation],
        now_s: float,
        gateway: GatewayReading | None = None,
    ) -> _Sized:
        """Demand (held while regions settle), its forecast, and one replica's capacity."""
        window_s = float(self.settings.rate_window_seconds)
        demand = settling(mem, regions, measure_demand(spec, regions), now_s, window_s)
        whole = completeness(regions)

        # Forecast: learn from fresh, whole demand only; plan the upper quantile over the
        # horizon. With pods missing, or a region that served lost (its users wait on the
        # replacements, which serve what they can), the reading is a floor: never plan below
        # it, and never learn it as demand (a forecaster taught the outage's under-reads sized
        # the fleet below the load once the region was back, then grew it again). Asleep
        # (scaled to zero) with no request waiting at the gateway, demand is known to be zero.
        floor_only = not whole.complete or mem.reading_is_floor
        if demand.fresh and demand.tokens_per_second is not None and not floor_only:
            mem.forecaster = forecast_observe(mem.forecaster, now_s, demand.tokens_per_second)
        elif _asleep_and_idle(regions, gateway):
            mem.forecaster = forecast_observe(mem.forecaster, now_s, 0.0)
        steps = horizon_steps(spec.placement.coldStartSeconds, self.settings.interval_seconds)
        fc = horizon(mem.forecaster, steps, FORECAST_K_SIGMA) if demand.fresh else ()
        if floor_only and demand.tokens_per_second is not None:
            fc = tuple(max(v, demand.tokens_per_second) for v in fc)

        # Capacity: the hint is the prior, measurements correct it.
        for obs in regions:
            obs.ready_through_window = ready_through_window(mem, obs, now_s, window_s)
            obs.ready_through_latency = fewest_ready(
                mem, obs, now_s, latency_span_seconds(obs, window_s)
            )
            obs.queue_trend, obs.ready_through_queue = queue_trend(mem, obs, now_s, window_s)
            if learn_variants(mem, spec, obs, now_s, window_s):
                continue
            if obs.readings is not None:
                window = observation_from_readings(
                    obs.readings,
                    window_seconds=window_s,
                    replicas_changed=ready_changed_in_window(mem, obs, now_s, window_s),
                )
                if window is not None:
                    learn_variant(mem, spec, obs, window)
        if demand.slo_breached:
            demand = replace(demand, notes=(*demand.notes, *breach_notes(demand, regions)))
        others = variant_capacities(
            mem, spec, now_s, self.settings.interval_seconds, DEFAULT_CAPACITY_TOKENS_PER_SECOND
        )
        estimate = capacity_estimate(mem, now_s, self.settings.interval_seconds)
        if spec.primary_variant().capacity_hint is None and estimate.source == "prior":
            return _Sized(demand, fc, DEFAULT_CAPACITY_TOKENS_PER_SECOND, "default", whole, others)
        source = "learned" if estimate.source == "learned" else "hint"
        cap = estimate.tokens_per_second_per_replica
        return _Sized(demand, fc, cap, source, whole, others)

    def _plan(
        self,
        mem: Memory,
        name: str,
        namespace: str,
        spec: InferenceDeploymentSpec,
        regions: list[RegionObservation],
        sized: _Sized,
        now: datetime,
        now_s: float,
        dropped: list[str],
        gateway: GatewayReading | None = None,
    ) -> tuple[PlanRequest, Decision, str | None]:
        """The planner's request and decision, and who holds the quota when it bound the plan;
        Paused plans but remembers nothing."""
        request = build_request(
            spec,
            regions,
            sized.demand,
            sized.forecast,
            sized.capacities(spec),
            now,
            now_s,
            self.settings.interval_seconds,
            self.settings.time_scale,
            held_replicas=mem.served_before_loss,
            # New replicas' token rates are not in the window yet, or some Ready pods did not
            # report: demand under-reads, so the fleet's capacity may grow or move, not shrink.
            demand_settling=not sized.metrics.complete
            or any(o.ready > o.ready_in_readings for o in regions if o.available),
            gateway=gateway,
            demand_lag_seconds=float(self.settings.rate_window_seconds),
            reading_is_floor=mem.reading_is_floor,
        )
        request = leaving.exclude(request, dropped)
        if mem.planner_state is None:
            # After a (re)start, pretend the current replicas were recommended just now, so the
            # scale-down window starts now instead of allowing an immediate scale-down; recent
            # demand is what Prometheus measured before it (the peak a scale-down keeps, and no
            # recovery from a dip mistaken for a surge).
            current = tuple(
                (key, count)
                for o in regions
                for key, count in zip(
                    act.pool_keys(spec, o.name),
                    act.current_split(o) if o.available else [0] * (1 + len(o.variants)),
                    strict=False,
                )
            )
            mem.planner_state = PlannerState(
                history=(Recommendation(now_s, current),), recent=seeded_recent(mem.recent_seed)
            )
            mem.recent_seed = ()
        t0 = time.perf_counter()
        note = None
        if self.ledger is None:
            decision = plan(request, mem.planner_state)
        else:  # within this deployment's share of each Region's quota and grid-event cap
            planned = self.ledger.plan(
                f"{namespace}/{name}",
                spec.priority,
                request,
                mem.planner_state,
                acting=spec.mode == "Active",
            )
            request, decision, note = planned.request, planned.decision, planned.quota_note
        self.metrics.planner_seconds.observe(time.perf_counter() - t0)
        if spec.mode != "Paused":
            mem.planner_state = decision.state
        return request, decision, note


def _last_set(spec: InferenceDeploymentSpec, obs: RegionObservation, row: dict[str, Any]) -> None:
    """What the operator last set in a region, per its status row: the first variant's count
    (``desiredReplicas``, or its entry in ``variants``) and each other variant's."""
    value = row.get("desiredReplicas")
    names = [v.name for v in spec.engine.variants or []]
    per = row.get("variants") if isinstance(row.get("variants"), dict) else None
    if names and per is not None:
        value = per.get(names[0])
    obs.last_desired = int(value) if isinstance(value, int) else None
    seen = {v.name: v for v in obs.variants}
    obs.variants = [
        seen.get(n) or VariantObservation(n, i) for i, n in enumerate(names[1:], start=1)
    ]
    for v in obs.variants:
        last = (per or {}).get(v.name)
        v.last_desired = int(last) if isinstance(last, int) else None


def _gateway(
    spec: InferenceDeploymentSpec, name: str, namespace: str, regions: list[RegionObservation]
) -> GatewayReading | None:
    """With scale to zero: the requests waiting at the gateway (None: scale to zero is off)."""
    settings = spec.scale_to_zero()
    if settings is None:
        return None
    query = wake_query(settings.wakeQuery, name=name, namespace=namespace, model=spec.model)
    allowed = set(spec.placement.regions)
    readers = [
        (o.name, o.runtime.metrics)
        for o in regions
        if o.name in allowed and o.runtime is not None and o.runtime.metrics is not None
    ]
    return read_waiting(readers, query)


def _asleep_and_idle(regions: list[RegionObservation], gateway: GatewayReading | None) -> bool:
    """Scaled to zero (nothing set or Ready anywhere) and the gateway read no waiting request."""
    if gateway is None or gateway.waiting_requests != 0.0:
        return False
    return all(o.available and o.current == 0 and o.ready == 0 for o in regions)
