"""One control-loop pass for one InferenceDeployment: observe, forecast, plan, act, report.

Level-based: every pass reads the whole world again. What must survive a restart lives in the
object's status (the desired replicas per region, the shift in progress); what only makes the
next pass better (the forecaster, the capacity learner, the stabilisation history) lives in
memory and is rebuilt conservatively after a restart (the stabilisation history is seeded with
the replicas that run now, so a restarted operator never scales down at once).

The pass returns an :class:`Outcome` (status, Events); the kopf handler writes them. Nothing
here imports kopf, so the whole pass runs in unit tests against fake regions.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from wattscale.api.errors import format_errors
from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.clusters.client import ClusterError, drift
from wattscale.clusters.render import (
    ANNOTATION_HASH,
    render_deployment,
    render_service,
    workload_name,
)
from wattscale.clusters.routes import RouteStore
from wattscale.controller.observe import RegionObservation, observe
from wattscale.controller.planning import (
    DEFAULT_CAPACITY_TOKENS_PER_SECOND,
    Demand,
    build_request,
    measure_demand,
)
from wattscale.controller.regions import RegionDirectory
from wattscale.controller.settings import Settings
from wattscale.controller.status import RegionCost, condition, money, now_rfc3339, region_cost
from wattscale.controller.traffic import CONDITION as TRAFFIC_ROUTED
from wattscale.controller.traffic import TrafficRouter
from wattscale.forecast.holt import ForecastConfig, Forecaster, horizon, warm_start
from wattscale.forecast.holt import observe as forecast_observe
from wattscale.metrics import (
    CapacityLearner,
    DeploymentTarget,
    LatencySlo,
    observation_from_readings,
)
from wattscale.planner import (
    FORECAST_K_SIGMA,
    HORIZON_STEP_SECONDS,
    Decision,
    PlannerState,
    PlanOption,
    PlanRequest,
    PoolKey,
    Recommendation,
    RegionInput,
    horizon_steps,
    plan,
)
from wattscale.telemetry.metrics import DeploymentRates, OperatorMetrics, RegionRates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """What one pass wants written back: the status, and Events to post."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    decision: Decision | None = None


@dataclass
class Memory:
    """Per-deployment state kept between passes (rebuilt after a restart)."""

    forecaster: Forecaster
    learner: CapacityLearner
    planner_state: PlannerState | None = None
    last_seconds: float | None = None
    drain_since: dict[str, float] = field(default_factory=dict)
    last_event: tuple[str, str] | None = None
    last_warnings: frozenset[str] = frozenset()
    warm: bool = False
    ready_log: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    """Per region: (time, Ready count) of the passes within the last rate window, and the last
    one before it (the count in force when the window began)."""
    answering: frozenset[str] | None = None
    """The regions whose cluster answered last pass."""
    answering_changed_at: float | None = None
    """When a region last stopped or started answering (its users moved: readings settle)."""
    served_before_loss: int = 0
    """Ready replicas over all regions just before a region that ran some stopped answering
    (0 when none is lost): held while demand cannot be measured."""


class Reconciler:
    """Runs passes for every InferenceDeployment; thread-safe per object (kopf serialises)."""

    def __init__(
        self,
        directory: RegionDirectory,
        settings: Settings,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], float] = time.time,
        routes: RouteStore | None = None,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.metrics = metrics or OperatorMetrics()
        self.clock = clock
        self.router = TrafficRouter(routes)
        """Traffic weights onto the HTTPRoute a spec names (routes None: no Gateway API)."""
        self._memory: dict[tuple[str, str], Memory] = {}

    def forget(self, namespace: str, name: str) -> None:
        self._memory.pop((namespace, name), None)
        self.router.forget(namespace, name)

    def _memory_for(self, namespace: str, name: str, spec: InferenceDeploymentSpec) -> Memory:
        key = (namespace, name)
        mem = self._memory.get(key)
        slo = LatencySlo(spec.slo.ttftP95Ms / 1000.0, spec.slo.tpotP95Ms / 1000.0)
        hint = spec.capacity.tokensPerSecondPerReplica
        if mem is None:
            config = ForecastConfig(step_seconds=HORIZON_STEP_SECONDS)
            mem = Memory(
                warm_start([], config), CapacityLearner(slo, float(hint) if hint else None)
            )
            self._memory[key] = mem
        else:  # the SLO or hint may have changed: the learner keeps its windows
            mem.learner.slo = slo
            mem.learner.hint_tokens_per_second = float(hint) if hint else None
        return mem

    # ---------------------------------------------------------------------------------------

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
        prev_conditions = old.get("conditions") or []
        try:
            spec = InferenceDeploymentSpec.model_validate(raw_spec)
        except ValidationError as err:
            return _invalid(old, generation, now, format_errors(err, prefix="spec"))
        unknown = [r for r in spec.placement.regions if self.directory.get(r) is None]
        if unknown:
            known = ", ".join(self.directory.names()) or "none"
            problem = (
                f"spec.placement.regions: no Region named {', '.join(unknown)} (known: {known})"
            )
            return _invalid(old, generation, now, [problem], reason="UnknownRegion")

        mem = self._memory_for(namespace, name, spec)
        regions = observe(self.directory, spec, name, namespace, now)
        last_set = {r.get("name"): r.get("desiredReplicas") for r in old.get("regions") or []}
        for obs in regions:
            value = last_set.get(obs.name)
            obs.last_desired = int(value) if isinstance(value, int) else None
        if not mem.warm:
            _warm_start(mem, regions, name, namespace, now)
        window_s = float(self.settings.rate_window_seconds)
        demand = _settling(mem, regions, measure_demand(spec, regions), now_s, window_s)
        product = spec.engine.gpuProduct

        # Forecast: learn from fresh demand only; plan the upper quantile over the horizon.
        if demand.fresh and demand.tokens_per_second is not None:
            mem.forecaster = forecast_observe(mem.forecaster, now_s, demand.tokens_per_second)
        steps = horizon_steps(spec.placement.coldStartSeconds, self.settings.interval_seconds)
        fc = horizon(mem.forecaster, steps, FORECAST_K_SIGMA) if demand.fresh else ()

        # Capacity: the hint is the prior, measurements correct it.
        for obs in regions:
            obs.ready_through_window = _ready_through_window(mem, obs, now_s, window_s)
            if obs.readings is not None:
                window = observation_from_readings(
                    obs.readings,
                    window_seconds=window_s,
                    replicas_changed=_ready_changed_in_window(mem, obs, now_s, window_s),
                )
                if window is not None:
                    mem.learner.observe(window)
        estimate = mem.learner.estimate(now_s)
        if spec.capacity.tokensPerSecondPerReplica is None and estimate.source == "prior":
            capacity, capacity_source = DEFAULT_CAPACITY_TOKENS_PER_SECOND, "default"
        else:
            capacity = estimate.tokens_per_second_per_replica
            capacity_source = "learned" if estimate.source == "learned" else "hint"

        request = build_request(
            spec,
            regions,
            demand,
            fc,
            capacity,
            now,
            now_s,
            self.settings.interval_seconds,
            self.settings.time_scale,
            held_replicas=mem.served_before_loss,
            # New replicas' token rates are not in the window yet: demand under-reads.
            demand_settling=any(o.ready > o.ready_in_readings for o in regions if o.available),
        )
        if mem.planner_state is None:
            # After a (re)start, pretend the current replicas were recommended just now, so the
            # scale-down window starts now instead of allowing an immediate scale-down.
            current = tuple((PoolKey(o.name, product), o.current) for o in regions)
            mem.planner_state = PlannerState(history=(Recommendation(now_s, current),))

        paused = spec.mode == "Paused"
        t0 = time.perf_counter()
        decision = plan(request, mem.planner_state)
        self.metrics.planner_seconds.observe(time.perf_counter() - t0)
        if not paused:
            mem.planner_state = decision.state

        # An unreachable region keeps what we last set there: nothing is changed there, and
        # when it answers again the plan builds on what runs there (no made-up 0 to "revert").
        desired = {o.name: o.current if o.available else o.last_desired or 0 for o in regions}
        if not paused:
            for o in regions:
                if o.available:
                    desired[o.name] = int(decision.desired.get(PoolKey(o.name, product), o.current))
        desired, draining = self._drain(spec, regions, desired, mem, now_s)

        # Traffic first: a region losing its share stops getting requests before it scales down.
        ratios: dict[str, float] = {}
        for key, ratio in decision.traffic_weights.items():
            ratios[key.region] = ratios.get(key.region, 0.0) + ratio
        routed = self.router.publish(
            name=name,
            namespace=namespace,
            ref=spec.placement.httpRoute,
            regions=[o.name for o in regions],
            ratios=ratios,
            mode=spec.mode,
        )
        events = [Event(*e) for e in routed.events] if routed else []
        if spec.mode == "Active":
            events += self._act(spec, name, namespace, regions, desired, old)

        outcome = self._report(
            spec,
            name,
            namespace,
            regions,
            demand,
            fc,
            capacity,
            capacity_source,
            request,
            decision,
            desired,
            draining,
            old,
            generation,
            now,
            prev_conditions,
        )
        if routed is not None:
            outcome.status["conditions"].append(
                condition(
                    prev_conditions,
                    TRAFFIC_ROUTED,
                    routed.status,
                    routed.reason,
                    routed.message,
                    generation,
                    now,
                )
            )
        outcome.events = events + self._decision_events(mem, outcome, regions)
        self._export(spec, name, namespace, regions, outcome, demand, capacity, mem, now_s)
        mem.last_seconds = now_s
        return outcome

    # ---------------------------------------------------------------------------------------

    def _drain(
        self,
        spec: InferenceDeploymentSpec,
        regions: list[RegionObservation],
        desired: dict[str, int],
        mem: Memory,
        now_s: float,
    ) -> tuple[dict[str, int], list[str]]:
        """Hold a region's replicas for drainSeconds after the plan first lowers them."""
        drain = spec.placement.drainSeconds / max(self.settings.time_scale, 1e-6)
        out = dict(desired)
        draining: list[str] = []
        for o in regions:
            if not o.available:
                # Its drain (if any) starts again when it answers: nothing is lowered meanwhile.
                mem.drain_since.pop(o.name, None)
                continue
            if desired[o.name] < o.current:
                since = mem.drain_since.setdefault(o.name, now_s)
                if now_s - since < drain:
                    out[o.name] = o.current
                    draining.append(o.name)
            else:
                mem.drain_since.pop(o.name, None)
        return out, draining

    def _act(
        self,
        spec: InferenceDeploymentSpec,
        name: str,
        namespace: str,
        regions: list[RegionObservation],
        desired: dict[str, int],
        old: dict[str, Any],
    ) -> list[Event]:
        """Apply the workload and set replicas through /scale, region by region."""
        events: list[Event] = []
        previous = {r.get("name"): r for r in old.get("regions") or []}
        for o in regions:
            runtime = o.runtime
            if not o.available or runtime is None or runtime.cluster is None:
                continue  # unreachable: nothing is changed (or deleted) there
            want = desired[o.name]
            if want == 0 and not o.workload.exists:
                continue
            cluster = runtime.cluster
            try:
                dep = render_deployment(name=name, namespace=namespace, region=o.name, spec=spec)
                live = cluster.read_deployment(workload_name(name), namespace)
                changed = drift(live, dep) if live is not None else []
                stale = (
                    live is None
                    or (live["metadata"].get("annotations") or {}).get(ANNOTATION_HASH)
                    != dep["metadata"]["annotations"][ANNOTATION_HASH]
                )
                if live is None:
                    cluster.ensure_namespace(namespace)
                if stale or changed:
                    cluster.apply(dep)
                    svc = render_service(
                        name=name, namespace=namespace, region=o.name, port=spec.engine.port
                    )
                    cluster.apply(svc)
                if changed and not stale:
                    events.append(
                        Event(
                            "Warning",
                            "DriftReverted",
                            f"{o.name}: {', '.join(changed)} changed by hand; reverted",
                        )
                    )
                last_set = previous.get(o.name, {}).get("desiredReplicas")
                if (
                    o.workload.exists
                    and last_set is not None
                    and o.workload.specReplicas != last_set
                ):
                    events.append(
                        Event(
                            "Warning",
                            "ManualScaleReverted",
                            f"{o.name}: replicas were set to {o.workload.specReplicas} by hand; "
                            f"set back to {want}",
                        )
                    )
                if live is None or o.workload.specReplicas != want:
                    cluster.scale(workload_name(name), namespace, want)
            except ClusterError as err:
                o.available = False
                o.errors.append(str(err))
                events.append(Event("Warning", "RegionActionFailed", str(err)))
        return events

    def _report(
        self,
        spec: InferenceDeploymentSpec,
        name: str,
        namespace: str,
        regions: list[RegionObservation],
        demand: Demand,
        fc: tuple[float, ...],
        capacity: float,
        capacity_source: str,
        request: PlanRequest,
        decision: Decision,
        desired: dict[str, int],
        draining: list[str],
        old: dict[str, Any],
        generation: int | None,
        now: datetime,
        prev_conditions: list[dict[str, Any]],
    ) -> Outcome:
        product = spec.engine.gpuProduct
        inputs = {r.name: r for r in request.regions}
        weights = {k.region: w for k, w in decision.traffic_weights.items()}
        load_total = demand.tokens_per_second or (max(fc) if fc else 0.0)
        region_status: list[dict[str, Any]] = []
        costs: dict[str, RegionCost] = {}
        for o in regions:
            ri = inputs.get(o.name)
            pool = ri.pools[0] if ri else None
            cost = RegionCost(0, 0.0, 0.0, 0.0, 0.0)
            if ri is not None and pool is not None:
                cost = region_cost(
                    replicas=max(desired[o.name], o.ready),
                    load_tokens_per_second=load_total * weights.get(o.name, 0.0),
                    capacity_tokens_per_second=capacity,
                    idle_watts=pool.idle_watts,
                    max_watts=pool.max_watts,
                    gpu_hour_cost_per_replica=pool.gpu_hour_cost_per_replica,
                    pue=ri.pue,
                    price_per_kwh=ri.price_per_kwh,
                    carbon_g_per_kwh=ri.carbon_g_per_kwh,
                )
            costs[o.name] = cost
            region_status.append(
                {
                    "name": o.name,
                    "desiredReplicas": desired[o.name],
                    "readyReplicas": o.ready,
                    "trafficWeightPercent": round(100 * weights.get(o.name, 0.0)),
                    "costPerHour": money(cost.cost_per_hour),
                    "powerWatts": round(cost.power_watts),
                    "carbonGramsPerHour": round(cost.carbon_grams_per_hour),
                    "available": o.available,
                }
            )
        total_cost = sum(c.cost_per_hour for c in costs.values())
        counterfactual = self._counterfactual(
            spec, request, load_total, decision.explanation.need_tokens_per_second, capacity
        )
        savings = None
        if counterfactual and counterfactual > 0:
            savings = 100.0 * (counterfactual - total_cost) / counterfactual
        currencies = {
            o.runtime.spec.energy.currency for o in regions if o.runtime and o.runtime.spec
        }
        # Totals are what serves: an unreachable region's replicas are not counted.
        total_desired = sum(desired[o.name] for o in regions if o.available)
        total_ready = sum(o.ready for o in regions)
        errors = [e for o in regions for e in o.errors]
        signals_fresh = all(r.price_fresh and r.carbon_fresh for r in request.regions)
        slo_met = _slo_met(spec, regions)
        reason = decision.reason.value
        message = decision.message
        if spec.mode == "Paused":
            reason, message = "Paused", "mode is Paused: replicas are frozen"
        elif draining:
            message += f"; draining {', '.join(draining)} for {spec.placement.drainSeconds}s"
        message += _unreachable_note(regions, desired)
        if spec.mode == "DryRun":
            message = "DryRun (nothing changed): " + message
        shift = _shift(old.get("shift"), decision, regions, product, draining, now)
        expl = decision.explanation
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": total_desired,
            "readyReplicas": total_ready,
            "regionsSummary": ",".join(f"{o.name}={desired[o.name]}" for o in regions),
            "regions": region_status,
            "currency": next(iter(currencies)) if len(currencies) == 1 else None,
            "costPerHour": money(total_cost),
            "powerWatts": round(sum(c.power_watts for c in costs.values())),
            "carbonGramsPerHour": round(sum(c.carbon_grams_per_hour for c in costs.values())),
            "counterfactualCostPerHour": money(counterfactual),
            "savingsPercent": money(savings, 1),
            "capacityTokensPerSecondPerReplica": round(capacity),
            "shift": shift,
            "lastDecision": {"time": now_rfc3339(now), "reason": reason, "message": message},
            "explanation": {
                "demandTokensPerSecond": _int(demand.tokens_per_second),
                "forecastTokensPerSecond": _int(max(fc) if fc else None),
                "needTokensPerSecond": _int(expl.need_tokens_per_second),
                "capacitySource": capacity_source,
                "bindingConstraint": expl.binding_constraint,
                "chosen": _summary(expl.chosen),
                "runnerUp": _summary(expl.runner_up),
                "current": _summary(expl.current),
                "regions": [_region_inputs(o, inputs.get(o.name)) for o in regions],
                "notes": list(demand.notes) + list(expl.notes),
            },
        }
        gen = generation
        conditions = [
            condition(
                prev_conditions,
                "Ready",
                total_desired > 0 and total_ready >= total_desired,
                "ReplicasReady" if total_ready >= total_desired else "ReplicasStarting",
                f"{total_ready}/{total_desired} replicas ready",
                gen,
                now,
            ),
            condition(
                prev_conditions,
                "SLOMet",
                slo_met[0],
                slo_met[1],
                slo_met[2],
                gen,
                now,
            ),
            condition(
                prev_conditions,
                "SignalsFresh",
                signals_fresh,
                "SignalsFresh" if signals_fresh else "SignalsStale",
                _signals_message(regions, request),
                gen,
                now,
            ),
            condition(
                prev_conditions,
                "Degraded",
                bool(errors),
                "RegionErrors" if errors else "AllRegionsHealthy",
                "; ".join(errors) if errors else "every region answered",
                gen,
                now,
            ),
        ]
        status["conditions"] = conditions
        return Outcome(status=_drop_none(status), decision=decision)

    def _counterfactual(
        self,
        spec: InferenceDeploymentSpec,
        request: PlanRequest,
        load: float,
        need: float,
        capacity: float,
    ) -> float | None:
        """The planner's SLO-safe count, all in the home region, at its price now."""
        home = spec.placement.homeRegion or spec.placement.regions[0]
        ri = next((r for r in request.regions if r.name == home), None)
        if ri is None or capacity <= 0:
            return None
        pool = ri.pools[0]
        count = max(spec.slo.minReplicas, math.ceil(need / capacity) if need > 0 else 0)
        count = min(count, spec.slo.maxReplicas)
        return region_cost(
            replicas=count,
            load_tokens_per_second=load,
            capacity_tokens_per_second=capacity,
            idle_watts=pool.idle_watts,
            max_watts=pool.max_watts,
            gpu_hour_cost_per_replica=pool.gpu_hour_cost_per_replica,
            pue=ri.pue,
            price_per_kwh=ri.price_per_kwh,
            carbon_g_per_kwh=ri.carbon_g_per_kwh,
        ).cost_per_hour

    def _decision_events(
        self, mem: Memory, outcome: Outcome, regions: list[RegionObservation]
    ) -> list[Event]:
        """One Event per change of decision, one Warning per new problem."""
        events: list[Event] = []
        last = outcome.status["lastDecision"]
        key = (last["reason"], outcome.status["regionsSummary"])
        if key != mem.last_event:
            mem.last_event = key
            events.append(Event("Normal", last["reason"], last["message"]))
        warnings = frozenset(e for o in regions for e in o.errors)
        for problem in sorted(warnings - mem.last_warnings):
            events.append(Event("Warning", "RegionProblem", problem))
        mem.last_warnings = warnings
        return events

    def _export(
        self,
        spec: InferenceDeploymentSpec,
        name: str,
        namespace: str,
        regions: list[RegionObservation],
        outcome: Outcome,
        demand: Demand,
        capacity: float,
        mem: Memory,
        now_s: float,
    ) -> None:
        status = outcome.status
        elapsed = 0.0 if mem.last_seconds is None else now_s - mem.last_seconds
        by_name = {r["name"]: r for r in status["regions"]}
        rates: list[RegionRates] = []
        for o in regions:
            r = by_name[o.name]
            measured = None
            if o.readings is not None and o.readings.gpu_power_watts.usable:
                measured = o.readings.gpu_power_watts.value
            cost = float(r.get("costPerHour") or 0)
            rates.append(
                RegionRates(
                    region=o.name,
                    desired_replicas=r["desiredReplicas"],
                    ready_replicas=r["readyReplicas"],
                    traffic_weight_ratio=r["trafficWeightPercent"] / 100.0,
                    power_watts_modelled=float(r.get("powerWatts") or 0),
                    power_watts_measured=measured,
                    energy_cost_per_hour=cost - _gpu_cost(o, r["desiredReplicas"], spec),
                    gpu_cost_per_hour=_gpu_cost(o, r["desiredReplicas"], spec),
                    carbon_grams_per_hour=float(r.get("carbonGramsPerHour") or 0),
                )
            )
        ttft = _p95(regions, "ttft_p95_seconds")
        tpot = _p95(regions, "tpot_p95_seconds")
        self.metrics.record(
            DeploymentRates(
                namespace=namespace,
                deployment=name,
                currency=status.get("currency") or "mixed",
                regions=tuple(rates),
                counterfactual_cost_per_hour=float(status.get("counterfactualCostPerHour") or 0),
                ttft_target_seconds=spec.slo.ttftP95Ms / 1000.0,
                tpot_target_seconds=spec.slo.tpotP95Ms / 1000.0,
                ttft_p95_seconds=ttft,
                tpot_p95_seconds=tpot,
                capacity_tokens_per_second=capacity,
                capacity_hint_tokens_per_second=(
                    float(spec.capacity.tokensPerSecondPerReplica)
                    if spec.capacity.tokensPerSecondPerReplica
                    else None
                ),
                demand_tokens_per_second=demand.tokens_per_second,
            ),
            elapsed_seconds=elapsed,
        )
        self.metrics.decisions.labels(namespace, name, status["lastDecision"]["reason"]).inc()


# ------------------------------------------------------------------------------------- helpers

WARM_START_DEMAND = timedelta(days=2)
WARM_START_CAPACITY = timedelta(hours=6)


def _warm_start(
    mem: Memory, regions: list[RegionObservation], name: str, namespace: str, now: datetime
) -> None:
    """After a (re)start: replay demand and capacity history from each region's Prometheus.

    Demand is summed over regions per timestamp, so the forecaster remembers the day's shape
    and a restart does not forget it. A region whose history cannot be read adds nothing.
    """
    target = DeploymentTarget(namespace=namespace, deployment=name)
    demand: dict[float, float] = {}
    for obs in regions:
        reader = obs.runtime.metrics if obs.runtime else None
        if reader is None or not obs.available:
            continue
        try:
            history = reader.read_demand_history(target, now - WARM_START_DEMAND, now, 60.0)
            for point in history.points:
                t = round(point.t_seconds)
                demand[t] = demand.get(t, 0.0) + point.tokens_per_second
            mem.learner.observe_many(
                reader.read_capacity_history(target, now - WARM_START_CAPACITY, now, 60.0)
            )
        except Exception:  # history only makes the next pass better; never fail for it
            log.exception("region %s: warm start from Prometheus history failed", obs.name)
    if demand:
        mem.forecaster = warm_start(sorted(demand.items()), mem.forecaster.config)
    mem.warm = True


def _settling(
    mem: Memory, regions: list[RegionObservation], demand: Demand, now_s: float, window_s: float
) -> Demand:
    """Track which regions answer; for one rate window after that changes, demand is not fresh.

    When a cluster stops (or starts again) answering, its users move to (or back from) the
    others, and the readings' rate window still describes the old split: the demand they sum
    under-reads, and planning on it would scale down the replicas replacing the lost ones. So
    the plan holds (never down) until the window has passed. When a region that ran replicas is
    lost, what was Ready everywhere just before is remembered, to be held meanwhile.
    """
    answering = frozenset(o.name for o in regions if o.available)
    if mem.answering is not None and answering != mem.answering:
        mem.answering_changed_at = now_s
        if mem.answering - answering:
            before = sum(log[-1][1] for name, log in mem.ready_log.items() if name in mem.answering)
            mem.served_before_loss = max(mem.served_before_loss, before)
    mem.answering = answering
    if not any(not o.available and (o.last_desired or 0) > 0 for o in regions):
        mem.served_before_loss = 0
    since = mem.answering_changed_at
    if since is None or now_s - since >= window_s or not demand.fresh:
        return demand
    note = (
        f"the regions answering changed {now_s - since:.0f} s ago: demand readings still "
        f"describe the users' old split for one {window_s:.0f}-s window; holding"
    )
    return Demand(demand.tokens_per_second, demand.slo_breached, False, (*demand.notes, note))


def _ready_through_window(
    mem: Memory, obs: RegionObservation, now_s: float, window_s: float
) -> int:
    """Log this pass's Ready count; return the fewest Ready over the last ``window_s``."""
    log = mem.ready_log.setdefault(obs.name, [])
    log.append((now_s, obs.ready))
    start = now_s - window_s
    while len(log) > 1 and log[1][0] <= start:
        log.pop(0)  # the count in force at the window's start is kept
    return min(count for _, count in log)


def _ready_changed_in_window(
    mem: Memory, obs: RegionObservation, now_s: float, window_s: float
) -> bool:
    """Whether the Ready count changed within the window, or is not known for all of it."""
    log = mem.ready_log.get(obs.name) or [(now_s, obs.ready)]
    return log[0][0] > now_s - window_s or any(n != obs.ready for _, n in log)


def _unreachable_note(regions: list[RegionObservation], desired: dict[str, int]) -> str:
    """Say which regions did not answer, and that their replicas are neither counted nor touched."""
    notes = []
    for o in regions:
        if o.available or o.runtime is None or o.runtime.cluster is None:
            continue  # a region that does not exist or cannot be built is reported elsewhere
        left = desired[o.name]
        notes.append(
            f"{o.name} unreachable: its {left} replicas are not counted, nothing is changed there"
            if left
            else f"{o.name} unreachable: nothing is planned there"
        )
    return "".join(f"; {n}" for n in notes)


def _gpu_cost(o: RegionObservation, replicas: int, spec: InferenceDeploymentSpec) -> float:
    if o.offer is None:
        return 0.0
    return replicas * float(o.offer.hourlyCost) * spec.engine.gpusPerReplica


def _p95(regions: list[RegionObservation], attr: str) -> float | None:
    """The worst usable p95 over regions (the SLO must hold everywhere)."""
    values = []
    for o in regions:
        if o.readings is None:
            continue
        reading = getattr(o.readings, attr)
        if reading.usable and reading.value is not None and math.isfinite(reading.value):
            values.append(float(reading.value))
    return max(values) if values else None


def _slo_met(
    spec: InferenceDeploymentSpec, regions: list[RegionObservation]
) -> tuple[bool | None, str, str]:
    ttft = _p95(regions, "ttft_p95_seconds")
    tpot = _p95(regions, "tpot_p95_seconds")
    if ttft is None and tpot is None:
        return None, "NoLatencyReadings", "no usable TTFT/TPOT readings yet"
    parts = []
    ok = True
    if ttft is not None:
        ok &= ttft * 1000 <= spec.slo.ttftP95Ms
        parts.append(f"p95 TTFT {ttft * 1000:.0f} ms (target {spec.slo.ttftP95Ms} ms)")
    if tpot is not None:
        ok &= tpot * 1000 <= spec.slo.tpotP95Ms
        parts.append(f"p95 TPOT {tpot * 1000:.0f} ms (target {spec.slo.tpotP95Ms} ms)")
    return ok, "WithinSLO" if ok else "SLOBreached", "; ".join(parts)


def _signals_message(regions: list[RegionObservation], request: PlanRequest) -> str:
    stale = [r.name for r in request.regions if not (r.price_fresh and r.carbon_fresh)]
    errors = [
        f"{o.name} {p}" for o in regions if o.signals for p in o.signals.problems(o.signals.at)
    ]
    if not stale and not errors:
        return "all price and carbon feeds are fresh"
    parts = []
    if stale:
        parts.append(f"stale or missing in {', '.join(stale)}: holding (never scaling down)")
    return "; ".join(parts + errors)


def _region_inputs(o: RegionObservation, ri: RegionInput | None) -> dict[str, Any]:
    """What one region contributed to the decision, for status.explanation."""
    if ri is None:
        return {"name": o.name, "signalsFresh": False, "available": o.available}
    return {
        "name": o.name,
        "pricePerKwh": money(ri.price_per_kwh, 5),
        "carbonGramsPerKwh": _int(ri.carbon_g_per_kwh),
        "signalsFresh": ri.price_fresh and ri.carbon_fresh,
        "gridEventCapReplicas": ri.grid_event.max_replicas if ri.grid_event else None,
        "available": o.available,
    }


def _summary(option: PlanOption | None) -> dict[str, Any] | None:
    if option is None:
        return None
    return {
        "replicas": {k.region: v for k, v in option.replicas.items()},
        "costPerHour": money(option.cost_per_hour),
        "powerWatts": round(option.energy_watts),
        "carbonGramsPerHour": round(option.carbon_g_per_hour),
    }


def _shift(
    old: dict[str, Any] | None,
    decision: Decision,
    regions: list[RegionObservation],
    product: str,
    draining: list[str],
    now: datetime,
) -> dict[str, Any] | None:
    """The make-before-break move in progress, derived from the plan (level-based)."""
    up = [o.name for o in regions if decision.target.get(PoolKey(o.name, product), 0) > o.current]
    down = [o.name for o in regions if decision.target.get(PoolKey(o.name, product), 0) < o.current]
    if not (up and down):
        return None
    waiting = any(
        o.ready < decision.target.get(PoolKey(o.name, product), 0) for o in regions if o.name in up
    )
    if waiting:
        phase = "ScalingUpTarget"
    elif draining:
        phase = "Draining"
    else:
        phase = "ScalingDownSource"
    moved = sum(
        o.current - decision.target.get(PoolKey(o.name, product), 0)
        for o in regions
        if o.name in down
    )
    stamp = now_rfc3339(now)
    same = old and old.get("fromRegion") == down[0] and old.get("toRegion") == up[0]
    return {
        "phase": phase,
        "fromRegion": down[0],
        "toRegion": up[0],
        "replicas": max(1, moved),
        "startedAt": old["startedAt"] if same and old else stamp,
        "phaseStartedAt": old["phaseStartedAt"]
        if same and old and old.get("phase") == phase
        else stamp,
    }


def _int(value: float | None) -> int | None:
    return None if value is None or not math.isfinite(value) else round(value)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _invalid(
    old: dict[str, Any],
    generation: int | None,
    now: datetime,
    problems: list[str],
    reason: str = "InvalidSpec",
) -> Outcome:
    """A spec the operator cannot act on: say why, touch nothing."""
    message = "; ".join(problems)
    prev = old.get("conditions") or []
    status = {
        "observedGeneration": generation,
        "lastDecision": {"time": now_rfc3339(now), "reason": reason, "message": message},
        "conditions": [
            condition(prev, "Ready", False, reason, message, generation, now),
            condition(prev, "Degraded", True, reason, message, generation, now),
        ],
    }
    before = (old.get("lastDecision") or {}).get("message")
    events = [] if before == message else [Event("Warning", reason, message)]
    return Outcome(status=_drop_none(status), events=events)
