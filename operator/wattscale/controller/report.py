"""Report one pass: the status, its conditions, Events and the exported metrics.

Everything here describes what the pass saw and did; nothing decides. The status carries the
plan per region with its cost, power and carbon rates, the counterfactual (the SLO-safe count
all in the home region, at its price now) and the savings against it, the decision's reason and
explanation, the make-before-break move in progress, and the conditions Ready, SLOMet,
SignalsFresh, Degraded (and TrafficRouted when a route is managed). Events: one per change of
decision, one Warning per new problem, not one per pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.controller.completeness import Completeness, metrics_condition
from wattscale.controller.memory import Memory
from wattscale.controller.planning import Demand
from wattscale.controller.status import (
    Event,
    RegionCost,
    condition,
    money,
    now_rfc3339,
    region_cost,
)
from wattscale.controller.traffic import CONDITION as TRAFFIC_ROUTED
from wattscale.controller.traffic import RouteReport
from wattscale.fleet.observe import UNREACHABLE, RegionObservation
from wattscale.metrics.gateway import GatewayReading
from wattscale.planner import (
    Decision,
    PlanOption,
    PlanRequest,
    PoolInput,
    PoolKey,
    ReasonCode,
    RegionInput,
)
from wattscale.telemetry.metrics import DeploymentRates, OperatorMetrics, RegionRates


@dataclass
class Outcome:
    """What one pass wants written back: the status, and Events to post."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    decision: Decision | None = None


@dataclass(frozen=True)
class PassFacts:
    """What one pass saw and decided: everything its report is made of."""

    spec: InferenceDeploymentSpec
    name: str
    namespace: str
    regions: list[RegionObservation]
    demand: Demand
    forecast: tuple[float, ...]
    capacity: float
    capacity_source: str
    metrics: Completeness
    """Whether every Ready pod reported (no scale-down on incomplete readings)."""
    request: PlanRequest
    decision: Decision
    desired: dict[str, int]
    draining: list[str]
    route_held: list[str]
    leaving: list[str]
    """Regions dropped from placement.regions, still draining (their rows stay until deleted)."""
    """Regions kept at their replicas because the HTTPRoute still sends them traffic."""
    old: dict[str, Any]
    generation: int | None
    now: datetime
    quota_note: str | None = None
    """Who holds the Region quota the plan could not get (None: the quota did not bind)."""
    shares_quota: bool = False
    """Whether Region quotas are shared through the fleet's ledger (the QuotaExhausted
    condition is reported then)."""
    gateway: GatewayReading | None = None
    """The requests waiting at the gateway (None: scale to zero is off)."""
    split: dict[str, list[int]] | None = None
    """Replicas per region and variant, in the spec's order (None: the totals only)."""

    @property
    def load(self) -> float:
        """Demand now, else the forecast's peak (what the cost rates are computed for)."""
        return self.demand.tokens_per_second or (max(self.forecast) if self.forecast else 0.0)


def report(
    facts: PassFacts,
    routed: RouteReport | None,
    events: list[Event],
    mem: Memory,
    metrics: OperatorMetrics,
    now_s: float,
) -> Outcome:
    """The status and Events for this pass; exports its rates and remembers what was said."""
    outcome = build_status(facts)
    if routed is not None:
        prev = facts.old.get("conditions") or []
        outcome.status["conditions"].append(
            condition(
                prev,
                TRAFFIC_ROUTED,
                routed.status,
                routed.reason,
                routed.message,
                facts.generation,
                facts.now,
            )
        )
    outcome.events = events + decision_events(mem, outcome, facts.regions)
    export(facts, outcome, mem, metrics, now_s)
    return outcome


def build_status(facts: PassFacts) -> Outcome:
    """The status: per-region rates, totals, the decision and its explanation, conditions."""
    spec, regions, desired = facts.spec, facts.regions, facts.desired
    inputs = {r.name: r for r in facts.request.regions}
    costs = _region_costs(facts, inputs)
    total_cost = sum(c.cost_per_hour for c in costs.values())
    counterfactual = _counterfactual(
        spec,
        facts.request,
        facts.load,
        facts.decision.explanation.need_tokens_per_second,
        facts.capacity,
    )
    savings = None
    if counterfactual and counterfactual > 0:
        savings = 100.0 * (counterfactual - total_cost) / counterfactual
    currencies = {o.runtime.spec.energy.currency for o in regions if o.runtime and o.runtime.spec}
    # Totals are what serves: an unreachable region's replicas are not counted.
    total_desired = sum(desired[o.name] for o in regions if o.available)
    reason, message = _decision_text(facts)
    status: dict[str, Any] = {
        "observedGeneration": facts.generation,
        "replicas": total_desired,
        "readyReplicas": sum(o.ready for o in regions),
        "regionsSummary": ",".join(f"{o.name}={desired[o.name]}" for o in regions),
        "regions": [_region_row(facts, o, costs[o.name]) for o in regions],
        "currency": next(iter(currencies)) if len(currencies) == 1 else None,
        "costPerHour": money(total_cost),
        "powerWatts": round(sum(c.power_watts for c in costs.values())),
        "carbonGramsPerHour": round(sum(c.carbon_grams_per_hour for c in costs.values())),
        "counterfactualCostPerHour": money(counterfactual),
        "savingsPercent": money(savings, 1),
        "capacityTokensPerSecondPerReplica": round(facts.capacity),
        "shift": _shift(
            facts.old.get("shift"),
            facts.decision,
            regions,
            facts.draining,
            facts.now,
        ),
        "lastDecision": _last_decision(facts.old, facts.now, reason, message),
        "explanation": _explanation(facts, inputs),
    }
    status["conditions"] = _conditions(facts, total_desired)
    zero = _zero_condition(facts, total_desired)
    if zero is not None:
        status["conditions"].append(zero)
    if facts.shares_quota:
        status["conditions"].append(
            condition(
                facts.old.get("conditions") or [],
                "QuotaExhausted",
                facts.quota_note is not None,
                "QuotaHeldByOthers" if facts.quota_note else "QuotaAvailable",
                facts.quota_note or "the Regions' quotas hold what the plan needs",
                facts.generation,
                facts.now,
            )
        )
    return Outcome(status=_drop_none(status), decision=facts.decision)


def _region_costs(facts: PassFacts, inputs: dict[str, RegionInput]) -> dict[str, RegionCost]:
    """Each region's rates for max(desired, Ready) replicas serving its share of the load."""
    costs: dict[str, RegionCost] = {}
    for o in facts.regions:
        ri = inputs.get(o.name)
        cost = RegionCost(0, 0.0, 0.0, 0.0, 0.0)
        if ri is not None and len(ri.pools) == 1:
            cost = _pool_cost(ri, ri.pools[0], max(facts.desired[o.name], o.ready), facts, 1.0)
        elif ri is not None:  # variants: each pool its replicas and its share of the load
            cost = _variant_costs(facts, o, ri)
        costs[o.name] = cost
    return costs


def _pool_cost(
    ri: RegionInput, pool: PoolInput, replicas: int, facts: PassFacts, share: float
) -> RegionCost:
    """One pool's rates for ``replicas`` serving ``share`` of the region's load."""
    weight = _weights(facts.decision).get(ri.name, 0.0)
    capacity = pool.capacity_tokens_per_second if pool.variant else facts.capacity
    return _rates(ri, pool, replicas, facts.load * weight * share, capacity)


def _rates(
    ri: RegionInput, pool: PoolInput, replicas: int, load: float, capacity: float
) -> RegionCost:
    """``replicas`` of ``pool`` in region ``ri`` serving ``load`` tokens/s: cost, power, carbon."""
    return region_cost(
        replicas=replicas,
        load_tokens_per_second=load,
        capacity_tokens_per_second=capacity,
        idle_watts=pool.idle_watts,
        max_watts=pool.max_watts,
        gpu_hour_cost_per_replica=pool.gpu_hour_cost_per_replica,
        pue=ri.pue,
        price_per_kwh=ri.price_per_kwh,
        carbon_g_per_kwh=ri.carbon_g_per_kwh,
    )


def _variant_costs(facts: PassFacts, o: RegionObservation, ri: RegionInput) -> RegionCost:
    """A region's rates summed over its variants (each at max(desired, Ready) replicas),
    the region's load split in proportion to their capacity."""
    names = [v.name for v in facts.spec.engine.resolved_variants(None)]
    ready = [o.primary_ready, *(v.ready(o.available) for v in o.variants)]
    split = (facts.split or {}).get(o.name) or [0] * len(names)
    counts = {n: max(w, r) for n, w, r in zip(names, split, ready, strict=False)}
    pools = [(p, counts.get(p.variant, 0)) for p in ri.pools]
    capacity = sum(n * p.capacity_tokens_per_second for p, n in pools) or 1.0
    parts = [
        _pool_cost(ri, p, n, facts, n * p.capacity_tokens_per_second / capacity) for p, n in pools
    ]
    return RegionCost(
        replicas=sum(c.replicas for c in parts),
        power_watts=sum(c.power_watts for c in parts),
        energy_cost_per_hour=sum(c.energy_cost_per_hour for c in parts),
        gpu_cost_per_hour=sum(c.gpu_cost_per_hour for c in parts),
        carbon_grams_per_hour=sum(c.carbon_grams_per_hour for c in parts),
    )


def _region_row(facts: PassFacts, o: RegionObservation, cost: RegionCost) -> dict[str, Any]:
    """One entry of ``status.regions``."""
    weight = _weights(facts.decision).get(o.name, 0.0)
    return {
        "name": o.name,
        "desiredReplicas": facts.desired[o.name],
        "variants": _variants_row(facts, o),
        "readyReplicas": o.ready,
        "trafficWeightPercent": round(100 * weight),
        "costPerHour": money(cost.cost_per_hour),
        "powerWatts": round(cost.power_watts),
        "carbonGramsPerHour": round(cost.carbon_grams_per_hour),
        "available": o.available,
    }


def _variants_row(facts: PassFacts, o: RegionObservation) -> dict[str, int] | None:
    """Replicas set per variant in one region (None without ``spec.engine.variants``)."""
    variants = facts.spec.engine.variants
    if not variants or facts.split is None or o.name not in facts.split:
        return None
    return {v.name: n for v, n in zip(variants, facts.split[o.name], strict=False)}


def _last_decision(old: dict[str, Any], now: datetime, reason: str, message: str) -> dict[str, Any]:
    """``lastDecision``; its time is when this decision (reason and message) was first taken,
    so a pass that decides the same again leaves the status as it was (and unwritten)."""
    before = old.get("lastDecision") or {}
    same = before.get("reason") == reason and before.get("message") == message
    stamp = before["time"] if same and before.get("time") else now_rfc3339(now)
    return {"time": stamp, "reason": reason, "message": message}


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that brings status ``old`` up to ``new``: the keys that changed, and
    ``shift`` removed once no move is in progress (other keys a pass leaves out are kept, as
    they always were). Empty when nothing changed: then nothing is written."""
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    if "shift" not in new and old.get("shift"):
        patch["shift"] = None
    return patch


def _weights(decision: Decision) -> dict[str, float]:
    return {k.region: w for k, w in decision.traffic_weights.items()}


def _decision_text(facts: PassFacts) -> tuple[str, str]:
    """``lastDecision``'s reason and message, with the mode, drains and unreachable regions."""
    spec = facts.spec
    reason = facts.decision.reason.value
    message = facts.decision.message
    if spec.mode == "Paused":
        reason, message = "Paused", "mode is Paused: replicas are frozen"
    elif facts.draining:
        message += f"; draining {', '.join(facts.draining)} for {spec.placement.drainSeconds}s"
    if not facts.metrics.complete:
        message += "; metrics incomplete (see MetricsComplete): no scale-down"
    if facts.leaving:
        message += (
            f"; {', '.join(facts.leaving)} removed from placement.regions: draining "
            "make-before-break, then deleted"
        )
    if facts.route_held:
        message += (
            f"; {', '.join(facts.route_held)} kept: the HTTPRoute still sends traffic there "
            "and its new weights were not written"
        )
    message += _unreachable_note(facts.regions, facts.desired)
    if spec.mode == "DryRun":
        message = "DryRun (nothing changed): " + message
    return reason, message


def _explanation(facts: PassFacts, inputs: dict[str, RegionInput]) -> dict[str, Any]:
    """``status.explanation``: what the decision was made from, and its alternatives."""
    expl = facts.decision.explanation
    fc = facts.forecast
    return {
        "demandTokensPerSecond": _int(facts.demand.tokens_per_second),
        "forecastTokensPerSecond": _int(max(fc) if fc else None),
        "needTokensPerSecond": _int(expl.need_tokens_per_second),
        "capacitySource": facts.capacity_source,
        "bindingConstraint": expl.binding_constraint,
        "chosen": _summary(expl.chosen),
        "runnerUp": _summary(expl.runner_up),
        "current": _summary(expl.current),
        "regions": [_region_inputs(o, inputs.get(o.name)) for o in facts.regions],
        "notes": list(facts.demand.notes)
        + list(expl.notes)
        + ([f"QuotaExhausted: {facts.quota_note}"] if facts.quota_note else [])
        + (list(facts.gateway.problems) if facts.gateway else []),
    }


def _conditions(facts: PassFacts, total_desired: int) -> list[dict[str, Any]]:
    """Ready, SLOMet, SignalsFresh and Degraded."""
    prev = facts.old.get("conditions") or []
    gen, now, regions = facts.generation, facts.now, facts.regions
    total_ready = sum(o.ready for o in regions)
    errors = [e for o in regions for e in o.errors]
    signals_fresh = all(r.price_fresh and r.carbon_fresh for r in facts.request.regions)
    slo_met = _slo_met(facts.spec, regions)
    asleep = total_desired == 0 and facts.decision.reason is ReasonCode.SCALED_TO_ZERO
    return [
        condition(
            prev,
            "Ready",
            total_desired > 0 and total_ready >= total_desired,
            "ScaledToZero"
            if asleep
            else ("ReplicasReady" if total_ready >= total_desired else "ReplicasStarting"),
            "scaled to zero: a request waiting at the gateway wakes it (see ScaledToZero)"
            if asleep
            else f"{total_ready}/{total_desired} replicas ready",
            gen,
            now,
        ),
        condition(prev, "SLOMet", slo_met[0], slo_met[1], slo_met[2], gen, now),
        condition(
            prev,
            "SignalsFresh",
            signals_fresh,
            "SignalsFresh" if signals_fresh else "SignalsStale",
            _signals_message(regions, facts.request),
            gen,
            now,
        ),
        _conflict(regions, prev, gen, now),
        metrics_condition(prev, facts.metrics, gen, now),
        condition(
            prev,
            "Degraded",
            bool(errors),
            "RegionErrors" if errors else "AllRegionsHealthy",
            "; ".join(errors) if errors else "every region answered",
            gen,
            now,
        ),
    ]


def _zero_condition(facts: PassFacts, total_desired: int) -> dict[str, Any] | None:
    """``ScaledToZero`` (with slo.minReplicas 0): True while asleep; False with reason WokeUp
    from a wake-up until the next sleep, saying when and why it woke (else Awake)."""
    settings = facts.spec.scale_to_zero()
    if settings is None:
        return None
    prev = facts.old.get("conditions") or []
    decision = facts.decision
    notes = "; ".join(decision.explanation.notes[-1:])
    before = next((c for c in prev if c.get("type") == "ScaledToZero"), None)
    stamp = now_rfc3339(facts.now)
    cold = facts.spec.placement.coldStartSeconds
    if decision.reason is ReasonCode.SCALED_TO_ZERO:
        status, reason = True, "ScaledToZero"
        message = (
            f"no demand and no request waiting at the gateway for {settings.idleSeconds} s "
            "(scaleToZero.idleSeconds): scaled to zero. A request waiting at the gateway wakes "
            f"one replica in the cheapest region; requests wait its cold start (~{cold} s)"
        )
        if total_desired > 0:
            message = f"draining, then {message}"
    elif decision.reason is ReasonCode.WOKE_UP:
        status, reason, message = False, "WokeUp", f"woke at {stamp}: {notes}"
    else:
        if before and before.get("reason") == "WokeUp":
            return condition(
                prev,
                "ScaledToZero",
                False,
                "WokeUp",
                before["message"],
                facts.generation,
                facts.now,
            )
        status, reason = False, "Awake"
        message = (
            f"serving: goes to zero after {settings.idleSeconds} s without demand and without a "
            "request waiting at the gateway"
        )
    return condition(prev, "ScaledToZero", status, reason, message, facts.generation, facts.now)


def _conflict(
    regions: list[RegionObservation], prev: list[dict[str, Any]], gen: int | None, now: datetime
) -> dict[str, Any]:
    """``Conflict``: objects another owner made hold our workload's name (left untouched)."""
    found = [o.conflict for o in regions if o.conflict]
    return condition(
        prev,
        "Conflict",
        bool(found),
        "ForeignObject" if found else "NoConflict",
        "; ".join(found) if found else "no object of another owner holds our names",
        gen,
        now,
    )


def _counterfactual(
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
    return _rates(ri, pool, count, load, capacity).cost_per_hour


def decision_events(mem: Memory, outcome: Outcome, regions: list[RegionObservation]) -> list[Event]:
    """One Event per change of decision, one Warning per new problem."""
    events: list[Event] = []
    last = outcome.status["lastDecision"]
    key = (last["reason"], outcome.status["regionsSummary"])
    if key != mem.last_event:
        mem.last_event = key
        events.append(Event("Normal", last["reason"], last["message"]))
    keys = {problem: warning_key(problem) for o in regions for problem in o.errors}
    posted = set(mem.last_warnings)
    for problem in sorted(keys):
        if keys[problem] not in posted:
            posted.add(keys[problem])
            events.append(Event("Warning", "RegionProblem", problem))
    mem.last_warnings = frozenset(keys.values())
    return events


def warning_key(problem: str) -> str:
    """What makes a problem new: its text, except that a member cluster that does not answer
    is one problem for as long as it lasts, however each pass found it and whatever the
    error said (a refused connection, then the health loop's verdict)."""
    head, sep, _ = problem.partition(UNREACHABLE)
    return head + sep if sep else problem


def export(
    facts: PassFacts, outcome: Outcome, mem: Memory, metrics: OperatorMetrics, now_s: float
) -> None:
    """The deployment's rates as the operator's own Prometheus metrics."""
    spec, regions, status = facts.spec, facts.regions, outcome.status
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
                variants=tuple((r.get("variants") or {}).items()),
                desired_replicas=r["desiredReplicas"],
                ready_replicas=r["readyReplicas"],
                traffic_weight_ratio=r["trafficWeightPercent"] / 100.0,
                power_watts_modelled=float(r.get("powerWatts") or 0),
                power_watts_measured=measured,
                energy_cost_per_hour=cost - _gpu_cost(o, r, spec),
                gpu_cost_per_hour=_gpu_cost(o, r, spec),
                carbon_grams_per_hour=float(r.get("carbonGramsPerHour") or 0),
            )
        )
    hint = spec.primary_variant().capacity_hint
    metrics.record(
        DeploymentRates(
            namespace=facts.namespace,
            deployment=facts.name,
            currency=status.get("currency") or "mixed",
            regions=tuple(rates),
            counterfactual_cost_per_hour=float(status.get("counterfactualCostPerHour") or 0),
            ttft_target_seconds=spec.slo.ttftP95Ms / 1000.0,
            tpot_target_seconds=spec.slo.tpotP95Ms / 1000.0,
            ttft_p95_seconds=_p95(regions, "ttft_p95_seconds"),
            tpot_p95_seconds=_p95(regions, "tpot_p95_seconds"),
            capacity_tokens_per_second=facts.capacity,
            capacity_hint_tokens_per_second=float(hint) if hint else None,
            demand_tokens_per_second=facts.demand.tokens_per_second,
            gateway_waiting_requests=facts.gateway.waiting_requests if facts.gateway else None,
        ),
        elapsed_seconds=elapsed,
    )
    metrics.decisions.labels(facts.namespace, facts.name, status["lastDecision"]["reason"]).inc()


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


def _gpu_cost(o: RegionObservation, row: dict[str, Any], spec: InferenceDeploymentSpec) -> float:
    """GPU cost rate of what a status row sets: each variant's replicas x its offer's price."""
    per = row.get("variants") or {}
    total = 0.0
    for index, v in enumerate(spec.engine.resolved_variants(None)):
        offer = o.offer if index == 0 else o.variants[index - 1].offer
        replicas = per.get(v.name, 0) if per else (row["desiredReplicas"] if index == 0 else 0)
        if offer is not None:
            total += replicas * float(offer.hourlyCost) * v.gpus_per_replica
    return total


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
        "replicas": _per_region(option.replicas),
        "costPerHour": money(option.cost_per_hour),
        "powerWatts": round(option.energy_watts),
        "carbonGramsPerHour": round(option.carbon_g_per_hour),
    }


def _per_region(replicas: Mapping[PoolKey, int]) -> dict[str, int]:
    """Replicas per region, summed over its pools (variants)."""
    out: dict[str, int] = {}
    for key, n in replicas.items():
        out[key.region] = out.get(key.region, 0) + n
    return out


def _shift(
    old: dict[str, Any] | None,
    decision: Decision,
    regions: list[RegionObservation],
    draining: list[str],
    now: datetime,
) -> dict[str, Any] | None:
    """The make-before-break move in progress between regions, derived from the plan
    (level-based; a region's target sums its variants)."""
    target = _per_region(decision.target)
    up = [o.name for o in regions if target.get(o.name, 0) > o.current]
    down = [o.name for o in regions if target.get(o.name, 0) < o.current]
    if not (up and down):
        return None
    waiting = any(o.ready < target.get(o.name, 0) for o in regions if o.name in up)
    if waiting:
        phase = "ScalingUpTarget"
    elif draining:
        phase = "Draining"
    else:
        phase = "ScalingDownSource"
    moved = sum(o.current - target.get(o.name, 0) for o in regions if o.name in down)
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


def invalid(
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
