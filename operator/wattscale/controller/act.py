"""Carry out one pass's decision, make-before-break: hold, drain, route, then scale.

The planner only adds replicas in a target region; the source keeps its replicas until the
target's are Ready (the planner weighs Ready replicas). Here the rest happens in order: a region
the plan lowers keeps its replicas for ``drainSeconds`` first, the traffic weights are published
(a region losing its share stops getting requests before it scales down), and only then is each
region's workload applied and scaled through ``/scale``. An unreachable region keeps what was
last set there: nothing is changed or deleted in it.
"""

from __future__ import annotations

from typing import Any

from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.clusters.client import ClusterConflictError, ClusterError, RegionCluster, drift
from wattscale.clusters.render import (
    ANNOTATION_HASH,
    render_deployment,
    render_service,
    workload_name,
)
from wattscale.controller.status import Event
from wattscale.controller.traffic import RouteReport, TrafficRouter
from wattscale.fleet.observe import RegionObservation
from wattscale.planner import Decision, PoolKey

Split = dict[str, list[int]]
"""Replicas per region and variant (index 0: the first variant, ``<name>-vllm``)."""


def pool_keys(spec: InferenceDeploymentSpec, region: str) -> list[PoolKey]:
    """The planner's pool of each variant in ``region``, in the spec's order (the implicit
    variant's key has no variant name, as before variants)."""
    return [PoolKey(region, v.gpu_product, v.name) for v in spec.engine.resolved_variants(None)]


def current_split(o: RegionObservation) -> list[int]:
    """What runs per variant; an unreachable region: what was last set there."""
    if o.available:
        return [o.primary_current, *(v.current(True) for v in o.variants)]
    return [o.last_desired or 0, *(v.last_desired or 0 for v in o.variants)]


def desired_replicas(
    spec: InferenceDeploymentSpec,
    regions: list[RegionObservation],
    decision: Decision,
    paused: bool,
) -> tuple[dict[str, int], Split]:
    """The plan per region (the total) and per variant; an unreachable region keeps what was
    last set there.

    No made-up 0 to "revert" when it answers again: the plan builds on what runs there.
    """
    split = {o.name: current_split(o) for o in regions}
    if not paused:
        for o in regions:
            if o.available:
                keys = pool_keys(spec, o.name)
                split[o.name] = [
                    int(decision.desired.get(k, c))
                    for k, c in zip(keys, split[o.name], strict=False)
                ]
    return {n: sum(s) for n, s in split.items()}, split


def hold_split(regions: list[RegionObservation], desired: dict[str, int], split: Split) -> Split:
    """Each region a hold kept at what runs (its total back at ``current``) keeps each
    variant at what runs too."""
    out = dict(split)
    for o in regions:
        if desired[o.name] == o.current and sum(split[o.name]) != o.current:
            out[o.name] = current_split(o)
    return out


def hold_draining(
    spec: InferenceDeploymentSpec,
    regions: list[RegionObservation],
    desired: dict[str, int],
    drain_since: dict[str, float],
    now_s: float,
    time_scale: float,
) -> tuple[dict[str, int], list[str]]:
    """Hold a region's replicas for drainSeconds after the plan first lowers them."""
    drain = spec.placement.drainSeconds / max(time_scale, 1e-6)
    out = dict(desired)
    draining: list[str] = []
    for o in regions:
        if not o.available:
            # Its drain (if any) starts again when it answers: nothing is lowered meanwhile.
            drain_since.pop(o.name, None)
            continue
        if desired[o.name] < o.current:
            since = drain_since.setdefault(o.name, now_s)
            if now_s - since < drain:
                out[o.name] = o.current
                draining.append(o.name)
        else:
            drain_since.pop(o.name, None)
    return out, draining


def hold_for_route(
    regions: list[RegionObservation], desired: dict[str, int], routed: RouteReport | None
) -> tuple[dict[str, int], list[str]]:
    """Keep the replicas a route still sends traffic to when its new weights were not written.

    A failed write (403, 5xx, a conflict) leaves the route's weights as they were: a region it
    still weighs (or every region, when the route could not even be read) keeps its current
    replicas until a write succeeds. Growing is never held back.
    """
    if routed is None or not routed.write_failed:
        return desired, []
    out = dict(desired)
    held: list[str] = []
    for o in regions:
        weight = None if routed.confirmed is None else routed.confirmed.get(o.name, 0)
        if o.available and out[o.name] < o.current and (weight is None or weight > 0):
            out[o.name] = o.current
            held.append(o.name)
    return out, held


def route(
    router: TrafficRouter,
    spec: InferenceDeploymentSpec,
    name: str,
    namespace: str,
    regions: list[RegionObservation],
    decision: Decision,
) -> RouteReport | None:
    """Publish the decision's traffic ratios per region (None: the spec names no route)."""
    ratios: dict[str, float] = {}
    for key, ratio in decision.traffic_weights.items():
        ratios[key.region] = ratios.get(key.region, 0.0) + ratio
    return router.publish(
        name=name,
        namespace=namespace,
        ref=spec.placement.httpRoute,
        regions=[o.name for o in regions],
        ratios=ratios,
        mode=spec.mode,
    )


def apply_regions(
    spec: InferenceDeploymentSpec,
    name: str,
    namespace: str,
    regions: list[RegionObservation],
    split: Split,
    old: dict[str, Any],
) -> list[Event]:
    """Apply each variant's workload and set its replicas through /scale, region by region."""
    events: list[Event] = []
    previous = {r.get("name"): r for r in old.get("regions") or []}
    for o in regions:
        runtime = o.runtime
        if not o.available or runtime is None or runtime.cluster is None:
            continue  # unreachable: nothing is changed (or deleted) there
        row = previous.get(o.name, {})
        try:
            for index, want in enumerate(split[o.name]):
                workload = o.workload if index == 0 else o.variants[index - 1].workload
                if want == 0 and not workload.exists:
                    continue
                last_set = _last_set(spec, row, index)
                events += _apply_region(
                    runtime.cluster, spec, name, namespace, o, want, last_set, index
                )
        except Exception as err:
            # Any failure here is this region's (ClusterError, or a surprise from its client):
            # reported, and the other regions are still acted on.
            text = (
                str(err)
                if isinstance(err, ClusterError)
                else (f"region {o.name}: action failed ({type(err).__name__})")
            )
            o.available = False
            o.errors.append(text)
            if isinstance(err, ClusterConflictError):
                o.conflict = text
            events.append(Event("Warning", "RegionActionFailed", text))
    return events


def _last_set(spec: InferenceDeploymentSpec, row: dict[str, Any], index: int) -> Any:
    """What the operator last set for variant ``index`` here, per the status row."""
    if not spec.engine.variants:
        return row.get("desiredReplicas")
    return (row.get("variants") or {}).get(spec.engine.variants[index].name)


def _apply_region(
    cluster: RegionCluster,
    spec: InferenceDeploymentSpec,
    name: str,
    namespace: str,
    o: RegionObservation,
    want: int,
    last_set: Any,
    index: int = 0,
) -> list[Event]:
    """Bring one variant's workload in one region to the rendered spec and ``want``
    replicas."""
    events: list[Event] = []
    workloads = o.runtime.spec.workloads if o.runtime and o.runtime.spec else None
    dep = render_deployment(
        name=name, namespace=namespace, region=o.name, spec=spec, workloads=workloads, variant=index
    )
    variant = o.variants[index - 1].name if index else ""
    state = o.variants[index - 1].workload if index else o.workload
    pod_security = workloads.podSecurity if workloads else "restricted"
    live = cluster.read_deployment(workload_name(name, variant), namespace)
    changed = drift(live, dep) if live is not None else []
    stale = (
        live is None
        or (live["metadata"].get("annotations") or {}).get(ANNOTATION_HASH)
        != dep["metadata"]["annotations"][ANNOTATION_HASH]
    )
    if stale or changed:  # a namespace that is missing is created by apply
        cluster.apply(dep, pod_security)
        svc = render_service(
            name=name, namespace=namespace, region=o.name, port=spec.engine.port, variant=variant
        )
        cluster.apply(svc, pod_security)
    if changed and not stale:
        events.append(
            Event(
                "Warning",
                "DriftReverted",
                f"{o.name}: {', '.join(changed)} changed by hand; reverted",
            )
        )
    where = f"{o.name}/{variant}" if variant else o.name
    if state.exists and last_set is not None and state.specReplicas != last_set:
        events.append(
            Event(
                "Warning",
                "ManualScaleReverted",
                f"{where}: replicas were set to {state.specReplicas} by hand; set back to {want}",
            )
        )
    if live is None or state.specReplicas != want:
        cluster.scale(workload_name(name, variant), namespace, want)
    return events
