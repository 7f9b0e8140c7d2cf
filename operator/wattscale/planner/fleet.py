"""Deployments sharing Regions: a Region's GPU quota and its grid-event cap belong to the fleet.

A Region offers ``available`` GPUs of a product to every InferenceDeployment placed there, and
a grid event caps the Region as a whole, not each deployment. Each deployment is still planned
by :func:`~wattscale.planner.plan`; what it may use of a shared pool is its *share*
(:func:`share`), computed from what every other deployment holds there (its *claim*):

* the pool's capacity C (the quota in GPUs, or the grid event's cap in GPUs while one applies)
  minus what the others hold, minus what higher-priority deployments wanted and were refused
  (so lower priorities yield, make-before-break, before higher ones grow);
* when the holders together already exceed C (the quota was lowered, an event began), each
  gets ``floor(C x held / total)``: a proportional cut, never more than C in total.

Equal-priority deployments never lose what they hold to each other, so nothing flaps; a
deployment the share binds is told who holds the rest (``QuotaExhausted`` with the competing
deployments named). Shares never sum above C, whatever order the deployments are planned in:
:func:`plan_fleet` plans them one at a time, the way the live ledger does, and is the fleet
solve the benchmark times.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from wattscale.planner.model import (
    Decision,
    GridEvent,
    PlannerState,
    PlanRequest,
    PoolKey,
    ReasonCode,
    RegionInput,
)
from wattscale.planner.planner import plan


@dataclass(frozen=True, slots=True)
class Claim:
    """What one deployment holds in one pool, and what its last plan was refused there."""

    member: str
    priority: int
    held_gpus: int
    refused_gpus: int = 0


NAMED_HOLDERS = 5
"""How many of the other holders a share names (the largest); the rest are counted."""


@dataclass(frozen=True, slots=True)
class Share:
    """One deployment's share of a pool: the GPUs it may hold, and who holds the others."""

    allowed_gpus: int
    holders: tuple[tuple[str, int], ...]
    """The largest other holders (at most :data:`NAMED_HOLDERS`) and their GPUs, largest first."""
    held_by_others: int = 0
    """GPUs every other deployment holds there."""
    other_holders: int = 0
    """Other deployments holding GPUs there beyond those named in ``holders``."""


def share(capacity_gpus: int, claims: Iterable[Claim], member: str, priority: int) -> Share:
    """``member``'s share of a pool of ``capacity_gpus`` that ``claims`` hold (see module).

    One pass over the claims (a pool may have thousands of holders)."""
    own = held_by_others = preempted = 0
    holding: list[tuple[int, str]] = []
    for c in claims:
        if c.member == member:
            own = c.held_gpus
            continue
        held_by_others += c.held_gpus
        if c.priority > priority:
            preempted += c.refused_gpus
        if c.held_gpus > 0:
            holding.append((-c.held_gpus, c.member))
    named = heapq.nsmallest(NAMED_HOLDERS, holding)  # the largest, ties by name
    holders = tuple((m, -g) for g, m in named)
    rest = len(holding) - len(holders)
    total = held_by_others + own
    if total > capacity_gpus:
        allowed = math.floor(capacity_gpus * own / total) if total else 0
        return Share(allowed, holders, held_by_others, rest)
    allowed = max(0, capacity_gpus - held_by_others - preempted)
    return Share(allowed, holders, held_by_others, rest)


def held_gpus(decision: Decision, request: PlanRequest, key: PoolKey) -> int:
    """GPUs a deployment occupies in a quota pool (a GPU product in a region, over all its
    variants) after ``decision``: per variant the target, or what still runs while a
    make-before-break move drains (the larger)."""
    held = 0
    for r in request.regions:
        for p in r.pools:
            k = p.key(r.name)
            if r.name != key.region or p.gpu_product != key.gpu_product:
                continue
            replicas = max(
                decision.target.get(k, 0), decision.desired.get(k, 0), p.current_replicas,
                p.ready_replicas,
            )  # fmt: skip
            held += replicas * p.gpus_per_replica
    return held


def restrict(
    request: PlanRequest,
    quota: Mapping[PoolKey, Share],
    event: Mapping[str, Share] | None = None,
) -> PlanRequest:
    """``request`` within the deployment's shares: pool quotas cut to the quota share, each
    grid event's cap to the share of the event's cap (both in replicas of this deployment)."""
    regions: list[RegionInput] = []
    for r in request.regions:
        pools = tuple(
            replace(
                p,
                quota_replicas=min(
                    p.quota_replicas,
                    quota[PoolKey(r.name, p.gpu_product)].allowed_gpus // p.gpus_per_replica,
                ),
            )
            if PoolKey(r.name, p.gpu_product) in quota
            else p
            for p in r.pools
        )
        grid: GridEvent | None = r.grid_event
        if grid is not None and event is not None and r.name in event:
            gpus = max((p.gpus_per_replica for p in r.pools), default=1)
            grid = replace(
                grid, max_replicas=min(grid.max_replicas, event[r.name].allowed_gpus // gpus)
            )
        regions.append(replace(r, pools=pools, grid_event=grid))
    return replace(request, regions=tuple(regions))


def pool_capacity_gpus(request: PlanRequest) -> dict[PoolKey, int]:
    """Each pool's quota in GPUs, as this request states it (the Region's whole quota)."""
    out: dict[PoolKey, int] = {}
    for r in request.regions:
        for p in r.pools:
            key = PoolKey(r.name, p.gpu_product)  # the variants of a product share its quota
            out[key] = max(out.get(key, 0), p.quota_replicas * p.gpus_per_replica)
    return out


def event_capacity_gpus(request: PlanRequest) -> dict[str, int]:
    """Each region's grid-event cap in GPUs (regions without an event are absent)."""
    out: dict[str, int] = {}
    for r in request.regions:
        if r.grid_event is not None:
            gpus = max((p.gpus_per_replica for p in r.pools), default=1)
            out[r.name] = r.grid_event.max_replicas * gpus
    return out


def quota_note(decision: Decision, shares: Mapping[PoolKey, Share]) -> str | None:
    """Who holds the quota a quota-bound decision could not get, in words; else None."""
    bound = decision.explanation.binding_constraint == "quota"
    if not bound and decision.reason is not ReasonCode.QUOTA_EXHAUSTED:
        return None
    parts = []
    for key, s in sorted(shares.items()):
        if s.holders:
            named = ", ".join(f"{m} ({g} GPUs)" for m, g in s.holders)
            if s.other_holders:
                rest = s.held_by_others - sum(g for _, g in s.holders)
                named += f" and {s.other_holders} more ({rest} GPUs)"
            parts.append(
                f"{key.region} {key.gpu_product}: {s.allowed_gpus} GPUs left, held by {named}"
            )
    return "; ".join(parts) if parts else None


@dataclass(frozen=True)
class FleetMember:
    """One deployment of a fleet solve: its name, request, planner state and priority."""

    name: str
    request: PlanRequest
    state: PlannerState | None = None
    priority: int = 0


@dataclass(frozen=True)
class FleetPlan:
    """Every member's decision, the GPUs each holds per pool, and who was refused for whom."""

    decisions: Mapping[str, Decision]
    held: Mapping[PoolKey, Mapping[str, int]]
    notes: Mapping[str, str]


def plan_fleet(members: Sequence[FleetMember]) -> FleetPlan:
    """Plan deployments that share pools, highest priority first (then by name), each within
    what the ones before it left. The pools' capacities are the first member's view of them
    (every request names the same Regions' quotas and events)."""
    order = sorted(members, key=lambda m: (-m.priority, m.name))
    capacity: dict[PoolKey, int] = {}
    events: dict[str, int] = {}
    for m in order:
        for k, v in pool_capacity_gpus(m.request).items():
            capacity.setdefault(k, v)
        for k2, v2 in event_capacity_gpus(m.request).items():
            events.setdefault(k2, v2)
    claims: dict[PoolKey, list[Claim]] = {k: [] for k in capacity}
    decisions: dict[str, Decision] = {}
    notes: dict[str, str] = {}
    for m in order:
        quota = {k: share(capacity[k], claims[k], m.name, m.priority) for k in capacity}
        event = {
            region: share(
                cap,
                [c for k, cs in claims.items() if k.region == region for c in cs],
                m.name,
                m.priority,
            )
            for region, cap in events.items()
        }
        request = restrict(m.request, quota, event)
        decision = plan(request, m.state)
        decisions[m.name] = decision
        note = quota_note(decision, quota)
        if note:
            notes[m.name] = note
        for k in capacity:
            if any(r.name == k.region for r in request.regions):
                claims[k].append(Claim(m.name, m.priority, held_gpus(decision, request, k)))
    held = {k: {c.member: c.held_gpus for c in cs} for k, cs in claims.items()}
    return FleetPlan(decisions, held, notes)
