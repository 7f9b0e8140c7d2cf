"""The fleet's ledger of shared pools: what each deployment holds of each Region's GPU quota.

Every deployment's pass plans within its share (:mod:`wattscale.planner.fleet`) under one
lock, and records what it then holds, so two passes can never hand out the same GPUs: the
quota (and a grid event's cap) is never oversubscribed by the operator's own plans. A pass
that the quota binds is told who holds the rest. After a restart the ledger is seeded from
every deployment's status (what the operator last set in each region) before the first pass.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wattscale.planner import Decision, PlannerState, PlanRequest, PoolKey, plan
from wattscale.planner.fleet import (
    Claim,
    Share,
    event_capacity_gpus,
    held_gpus,
    pool_capacity_gpus,
    quota_note,
    restrict,
    share,
)


@dataclass(frozen=True)
class Planned:
    """One pass's plan within its shares: the decision, the request it was made on, and who
    holds the quota when the quota bound it (None otherwise)."""

    decision: Decision
    request: PlanRequest
    quota_note: str | None


class QuotaLedger:
    """Claims per shared pool; thread-safe (kopf runs passes in worker threads)."""

    def __init__(self) -> None:
        self._claims: dict[PoolKey, dict[str, Claim]] = {}
        self._lock = threading.Lock()
        self._quota: dict[PoolKey, int] = {}
        """Each pool's quota in GPUs, as the last pass placed there stated it."""
        self._own: Callable[[], Callable[[str], bool]] | None = None
        self._ceiling: Callable[[PoolKey], int | None] | None = None

    def shard(
        self, own: Callable[[], Callable[[str], bool]], ceiling: Callable[[PoolKey], int | None]
    ) -> None:
        """Several replicas: this one plans the members it owns (``own()`` gives the judgement,
        made once per call for every member), and its shard as a whole holds at most its
        ``ceiling`` in each pool (:mod:`.shares`; None: no ceiling yet, so no growth). The
        others' members count at what they hold."""
        self._own, self._ceiling = own, ceiling

    def _capacity(self, key: PoolKey, quota_gpus: int, mine: Callable[[str], bool] | None) -> int:
        """The pool capacity the shares are computed from: the quota; with shards, what the
        other shards hold (per their status, up to an interval old) plus this shard's ceiling
        (never less than it holds, never more than the quota), and the whole never more than
        the quota unless what is held already is. So this shard grows only within its
        ceiling, and is cut only when it alone holds more than the quota: never because
        another shard's status is late to show what it released. The cap matters when this
        shard has just handed members over: until its next ceiling round, its ceiling still
        covers what they hold, now counted as the other shard's too."""
        if mine is None or self._ceiling is None:
            return quota_gpus
        own = foreign = 0
        for member, claim in self._claims.get(key, {}).items():
            if mine(member):
                own += claim.held_gpus
            else:
                foreign += claim.held_gpus
        ceiling = self._ceiling(key)
        mine_at_most = min(max(own if ceiling is None else ceiling, own), quota_gpus)
        return min(mine_at_most + foreign, max(quota_gpus, own + foreign))

    def shard_usage(
        self,
    ) -> tuple[dict[PoolKey, int], dict[PoolKey, int], dict[PoolKey, int], dict[PoolKey, int]]:
        """Per pool: the quota, what this replica's own members hold and were refused, and
        what the other members hold (as their status last said)."""
        held: dict[PoolKey, int] = {}
        refused: dict[PoolKey, int] = {}
        others: dict[PoolKey, int] = {}
        mine = None if self._own is None else self._own()
        with self._lock:
            for key, claims in self._claims.items():
                for member, claim in claims.items():
                    if mine is None or mine(member):
                        held[key] = held.get(key, 0) + claim.held_gpus
                        refused[key] = refused.get(key, 0) + claim.refused_gpus
                    else:
                        others[key] = others.get(key, 0) + claim.held_gpus
            return dict(self._quota), held, refused, others

    def seed(self, member: str, priority: int, held: Mapping[PoolKey, int]) -> None:
        """What ``member`` holds per pool (GPUs), e.g. from its status after a restart."""
        with self._lock:
            for key, gpus in held.items():
                if key not in self._claims or member not in self._claims[key]:
                    self._claims.setdefault(key, {})[member] = Claim(member, priority, gpus)

    def observe(self, member: str, priority: int, held: Mapping[PoolKey, int]) -> None:
        """What ``member`` holds per pool (GPUs) as another replica last set it (its status):
        replaces its claims. A deployment another operator replica owns is planned there;
        here it only holds its share."""
        with self._lock:
            for key, claims in self._claims.items():
                if key not in held:
                    claims.pop(member, None)
            for key, gpus in held.items():
                claims = self._claims.setdefault(key, {})
                old = claims.get(member)
                refused = old.refused_gpus if old is not None else 0
                claims[member] = Claim(member, priority, gpus, refused)

    def forget(self, member: str) -> None:
        """The deployment is gone: its GPUs are free."""
        with self._lock:
            for claims in self._claims.values():
                claims.pop(member, None)

    def held(self, key: PoolKey) -> dict[str, int]:
        """GPUs each deployment holds in a pool."""
        with self._lock:
            return {m: c.held_gpus for m, c in self._claims.get(key, {}).items()}

    def plan(
        self,
        member: str,
        priority: int,
        request: PlanRequest,
        state: PlannerState | None,
        acting: bool = True,
    ) -> Planned:
        """Plan ``request`` within ``member``'s shares and record what it then holds
        (``acting`` False, DryRun or Paused: only what runs now is held)."""
        with self._lock:
            capacity = pool_capacity_gpus(request)
            self._quota.update(capacity)
            mine = None if self._own is None else self._own()
            claims = self._claims
            quota = {
                k: share(self._capacity(k, cap, mine), claims.get(k, {}).values(), member, priority)
                for k, cap in capacity.items()
            }
            event = {
                region: share(
                    cap,
                    [
                        c
                        for k, cs in self._claims.items()
                        if k.region == region
                        for c in cs.values()
                    ],
                    member,
                    priority,
                )
                for region, cap in event_capacity_gpus(request).items()
            }
            restricted = restrict(request, quota, event)
            decision = plan(restricted, state)
            self._record(member, priority, restricted, decision if acting else None, quota)
            return Planned(decision, restricted, quota_note(decision, quota))

    def _record(
        self,
        member: str,
        priority: int,
        request: PlanRequest,
        decision: Decision | None,
        quota: Mapping[PoolKey, Share],
    ) -> None:
        refused = _refused(request, decision, quota) if decision is not None else {}
        for key in list(self._claims):
            if key not in quota:
                self._claims[key].pop(member, None)  # no longer placed there
        for key in quota:
            gpus = (
                held_gpus(decision, request, key)
                if decision is not None
                else _running(request, key)
            )
            self._claims.setdefault(key, {})[member] = Claim(
                member, priority, gpus, refused.get(key, 0)
            )


def _refused(
    request: PlanRequest, decision: Decision, quota: Mapping[PoolKey, Share]
) -> dict[PoolKey, int]:
    """GPUs a quota-bound plan lacked, set against the bound pool whose others hold most."""
    if decision.explanation.binding_constraint != "quota":
        return {}
    pools = {PoolKey(r.name, p.gpu_product): p for r in request.regions for p in r.pools}
    bound = [k for k in quota if quota[k].holders]
    if not bound:
        return {}
    key = max(bound, key=lambda k: quota[k].held_by_others)
    pool = pools[key]
    needed = math.ceil(
        decision.explanation.need_tokens_per_second / pool.capacity_tokens_per_second
    )
    lacking = max(0, needed - sum(decision.target.values()))
    return {key: lacking * pool.gpus_per_replica} if lacking else {}


def _running(request: PlanRequest, key: PoolKey) -> int:
    """GPUs a quota pool's replicas occupy now (set or Ready), over all its variants."""
    return sum(
        max(p.current_replicas, p.ready_replicas) * p.gpus_per_replica
        for r in request.regions
        for p in r.pools
        if PoolKey(r.name, p.gpu_product) == key
    )
