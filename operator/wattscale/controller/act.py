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


def desired_replicas(
    regions: list[RegionObservation], decision: Decision, product: str, paused: bool
) -> dict[str, int]:
    """The plan per region; an unreachable region keeps what was last set there.

    No made-up 0 to "revert" when it answers again: the plan builds on what runs there.
    """
    desired = {o.name: o.current if o.available else o.last_desired or 0 for o in regions}
    if not paused:
        for o in regions:
            if o.available:
                desired[o.name] = int(decision.desired.get(PoolKey(o.name, product), o.current))
    return desired


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
        last_set = previous.get(o.name, {}).get("desiredReplicas")
        try:
            events += _apply_region(runtime.cluster, spec, name, namespace, o, want, last_set)
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


def _apply_region(
    cluster: RegionCluster,
    spec: InferenceDeploymentSpec,
    name: str,
    namespace: str,
    o: RegionObservation,
    want: int,
    last_set: Any,
) -> list[Event]:
    """Bring one region's workload to the rendered spec and ``want`` replicas."""
    events: list[Event] = []
    workloads = o.runtime.spec.workloads if o.runtime and o.runtime.spec else None
    dep = render_deployment(
        name=name, namespace=namespace, region=o.name, spec=spec, workloads=workloads
    )
    pod_security = workloads.podSecurity if workloads else "restricted"
    live = cluster.read_deployment(workload_name(name), namespace)
    changed = drift(live, dep) if live is not None else []
    stale = (
        live is None
        or (live["metadata"].get("annotations") or {}).get(ANNOTATION_HASH)
        != dep["metadata"]["annotations"][ANNOTATION_HASH]
    )
    if stale or changed:  # a namespace that is missing is created by apply
        cluster.apply(dep, pod_security)
        svc = render_service(name=name, namespace=namespace, region=o.name, port=spec.engine.port)
        cluster.apply(svc, pod_security)
    if changed and not stale:
        events.append(
            Event(
                "Warning",
                "DriftReverted",
                f"{o.name}: {', '.join(changed)} changed by hand; reverted",
            )
        )
    if o.workload.exists and last_set is not None and o.workload.specReplicas != last_set:
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
    return events
