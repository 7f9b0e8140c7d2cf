"""Regions dropped from ``spec.placement.regions``: drained make-before-break, then deleted.

A region the spec no longer lists but whose row is still in ``status.regions`` (the operator set
replicas there) is *leaving*. It stays in the pass as a region the planner may not place anything
in, the way an announced grid event that excludes a region does: its target is 0, yet its
replicas keep serving (and keep their traffic weight) until replacements elsewhere are Ready and
cover the need; then it loses its traffic, drains for ``drainSeconds`` and is scaled to 0. Once
nothing runs there, its Deployment and Service (only those this InferenceDeployment owns) are
deleted and its row leaves the status. The status row is the memory: a restart resumes the
drain. An unreachable leaving region is held as it is and cleaned when it answers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from wattscale.clusters.client import ClusterError
from wattscale.clusters.render import owner_of, workload_name
from wattscale.controller.status import Event
from wattscale.fleet.observe import RegionObservation
from wattscale.planner import GridEvent, PlanRequest

EXCLUSION = "removed from placement.regions"


def leaving_regions(listed: Sequence[str], old: Mapping[str, Any] | None) -> list[str]:
    """Regions in the last status (``old``) that are not ``listed`` in the spec any more."""
    rows = (old or {}).get("regions") or []
    names = [r.get("name") for r in rows if isinstance(r, dict)]
    return [n for n in names if isinstance(n, str) and n and n not in listed]


def exclude(request: PlanRequest, leaving: Sequence[str]) -> PlanRequest:
    """``request`` with each leaving region's target capped to 0, its replicas still counted.

    An exclusion announced but never in force: the planner moves out make-before-break."""
    if not leaving:
        return request
    gone = set(leaving)
    never = GridEvent(
        max_replicas=0, ends_in_seconds=math.inf, name=EXCLUSION, starts_in_seconds=math.inf
    )
    regions = tuple(
        dataclasses.replace(r, grid_event=never) if r.name in gone else r for r in request.regions
    )
    return dataclasses.replace(request, regions=regions)


def clean_up(
    regions: list[RegionObservation],
    leaving: Sequence[str],
    desired: dict[str, int],
    name: str,
    namespace: str,
) -> tuple[list[RegionObservation], list[Event]]:
    """Delete what this deployment owns in each leaving region where nothing runs any more.

    Returns the regions to report (a cleaned region is dropped, so its row leaves the status)
    and the Events. A region whose Region object or client is gone is dropped with a warning:
    nothing can be done there from here.
    """
    events: list[Event] = []
    keep: list[RegionObservation] = []
    for o in regions:
        if o.name not in leaving:
            keep.append(o)
            continue
        runtime = o.runtime
        if runtime is None or runtime.cluster is None:
            events.append(
                Event(
                    "Warning",
                    "RegionForgotten",
                    f"{o.name} was removed from placement.regions and its Region cannot be "
                    "reached from here: anything left there is not cleaned up",
                )
            )
            continue
        if not o.available or desired.get(o.name, 0) > 0 or o.ready > 0:
            keep.append(o)  # still draining, or not answering: try again next pass
            continue
        try:
            owner = owner_of(namespace, name)
            results = [  # every variant's workload, the first's (<name>-vllm) included
                runtime.cluster.delete_workload(workload_name(name, v), namespace, owner)
                for v in ["", *(x.name for x in o.variants)]
            ]
            gone = all(results)
        except ClusterError as err:
            o.errors.append(str(err))
            keep.append(o)
            continue
        if gone:
            events.append(
                Event(
                    "Normal",
                    "RegionRemoved",
                    f"{o.name}: removed from placement.regions; drained, and the Deployment and "
                    "Service deleted",
                )
            )
        else:
            keep.append(o)  # deletion accepted, still finalising: gone on a later pass
    return keep, events
