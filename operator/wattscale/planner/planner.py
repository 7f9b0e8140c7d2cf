"""The decision: optimiser plus guard-rails, as named ordered steps with reason codes.

``plan(request, state) -> Decision`` is pure and deterministic: the same request and state give
the same decision. Like the Kubernetes HPA it separates the *recommendation* (what the
optimiser wants: the replica calculator) from the *decision* (what the controller may do now);
the recommendation history for scale-down stabilisation travels in ``PlannerState``.

Steps, in order (each may add a reason code):

1. ``hard_caps``: quota and grid events cap pools and regions (``GridEventCapped``).
2. ``inputs``: demand metrics missing or stale -> hold the current plan, only going up to
   ``min_replicas`` (``MissingMetricsHold``); price/carbon signals stale or missing -> the
   optimiser may add but never remove (``StaleSignalsHold``).
3. ``optimise``: exact cost-optimal plan (``Infeasible`` with the binding constraint when no
   plan meets the need; then a best effort that never goes down). A plan that only removes
   replicas leaves the readings' noise band above the need (a one-sided HPA tolerance).
4. ``hysteresis``: move only when the saving over the horizon beats the move's cold-start cost
   by ``min_savings_percent`` (``MinSavingsNotMet``).
5. ``stabilise``: scale up at once; scale a pool down only to the highest recommendation of
   the stabilisation window (``ScaleDownStabilising``).
6. ``rate_limit``: replicas added/removed/shifted per step; ``max_replicas`` during a move
   (``RateLimited``, ``AtMaxReplicas``), where replicas an announced grid event will remove
   hold no room.
7. ``make_before_break``: add first; remove only while the *ready* capacity left still covers
   the need (``ShiftStarted``, ``ShiftWaitingForReady``, ``ShiftCompleted``).

Before them, with ``min_replicas`` 0 and an idle window, :func:`wattscale.planner.zero.gate`
decides whether the deployment sleeps (``ScaledToZero``: every replica goes, the steps are
skipped), stays asleep, wakes (``WokeUp``: one replica in the cheapest pool) or keeps at least
one replica while awake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .costing import UNCAPPED, Costing, build_costing, signals_missing
from .model import (
    Action,
    ActionKind,
    CapacitySeen,
    Decision,
    Explanation,
    PlannerState,
    PlanOption,
    PlanRequest,
    PoolKey,
    ReasonCode,
    Recommendation,
)
from .optimise import IntArray, Problem, Solution, route, solve, solve_near
from .sizing import size, sizing_window_seconds
from .zero import ZeroGate, ZeroState, gate

__all__ = ["plan"]


@dataclass
class _Work:
    """Mutable scratch state of one decision (never leaves this module)."""

    reasons: list[ReasonCode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    solver: str = "none"
    optimal: bool = True
    binding: str = ""
    runner_up: IntArray | None = None
    infeasible: bool = False
    missing: bool = False
    stale: bool = False
    min_savings_blocked: bool = False

    def add(self, code: ReasonCode) -> None:
        if code not in self.reasons:
            self.reasons.append(code)


def _cap_regions(co: Costing, r: IntArray, caps: IntArray) -> IntArray:
    """Trim ``r`` to the region ``caps``, removing the dearest replicas first."""
    out = r.copy()
    for i, cap in enumerate(caps):
        if cap >= UNCAPPED:
            continue
        members = np.flatnonzero(co.region_of == i)
        excess = int(out[members].sum()) - int(cap)
        for j in members[np.argsort(-co.fixed_objective[members], kind="stable")]:
            if excess <= 0:
                break
            cut = min(excess, int(out[j]))
            out[j] -= cut
            excess -= cut
    return out


def _cap_groups(co: Costing, r: IntArray) -> IntArray:
    """Trim ``r`` to the GPU quota its variants share, removing the dearest replicas first."""
    out = r.copy()
    used = np.bincount(co.group_of, weights=co.gpus * out, minlength=co.group_cap_gpus.shape[0])
    for g in np.flatnonzero(used > co.group_cap_gpus):
        excess = int(used[g]) - int(co.group_cap_gpus[g])
        members = np.flatnonzero(co.group_of == g)
        for j in members[np.argsort(-co.fixed_objective[members], kind="stable")]:
            if excess <= 0:
                break
            cut = min(int(out[j]), -(-excess // int(co.gpus[j])))
            out[j] -= cut
            excess -= cut * int(co.gpus[j])
    return out


def _group_room(co: Costing, r: IntArray, j: int) -> int:
    """Replicas of pool ``j`` that still fit in the GPU quota it shares with its variants."""
    members = co.group_of == co.group_of[j]
    left = int(co.group_cap_gpus[co.group_of[j]]) - int(co.gpus[members] @ r[members])
    return max(left, 0) // int(co.gpus[j])


def _hard_cap(co: Costing, req: PlanRequest, r: IntArray) -> IntArray:
    """``r`` within quota, grid-event caps in force and ``max_replicas`` (dearest go first).

    Announced events are not applied here: they bound the target, so the move out of their
    region is make-before-break."""
    out = _cap_regions(co, _cap_groups(co, np.minimum(r, co.hard_quota)), co.region_hard_cap)
    excess = int(out.sum()) - max(req.max_replicas, 0)
    for j in np.lexsort((np.arange(out.shape[0]), -co.fixed_objective)):
        if excess <= 0:
            break
        cut = min(excess, int(out[j]))
        out[j] -= cut
        excess -= cut
    return out


def _fill_cheapest(co: Costing, req: PlanRequest, r: IntArray, need: float) -> IntArray:
    """Best effort: add replicas, cheapest per token/s first, up to the need or the limits."""
    out = r.copy()
    per_cap = (co.fixed_objective + co.per_token_objective * co.capacity) / np.maximum(
        co.capacity, 1e-9
    )
    region_room = co.region_cap - np.bincount(
        co.region_of, weights=out, minlength=co.region_cap.shape[0]
    ).astype(np.int64)
    for j in np.lexsort((np.arange(out.shape[0]), per_cap)):
        have = float(co.capacity @ out)
        room_total = req.max_replicas - int(out.sum())
        if have >= need or room_total <= 0:
            break
        if co.capacity[j] <= 0:
            continue
        want = int(np.ceil((need - have) / co.capacity[j] - 1e-12))
        add = min(want, int(co.quota[j] - out[j]), room_total, int(region_room[co.region_of[j]]))
        add = min(add, _group_room(co, out, int(j)))
        if add > 0:
            out[j] += add
            region_room[co.region_of[j]] -= add
    return out


def _top_up_min_replicas(co: Costing, req: PlanRequest, r: IntArray) -> IntArray:
    """Add the cheapest replicas until ``min_replicas`` (within quota and caps)."""
    out = r.copy()
    order = np.lexsort((np.arange(out.shape[0]), co.fixed_objective))
    for j in order:
        short = req.min_replicas - int(out.sum())
        if short <= 0:
            break
        region_total = int(out[co.region_of == co.region_of[j]].sum())
        room = min(int(co.quota[j] - out[j]), int(co.region_cap[co.region_of[j]]) - region_total)
        room = min(room, _group_room(co, out, int(j)))
        add = min(short, max(room, 0))
        out[j] += add
    return out


def _diagnose(co: Costing, req: PlanRequest, p: Problem) -> tuple[str, ReasonCode]:
    """Name the constraint that makes ``p`` infeasible (checked from the most specific)."""
    need = p.need

    def best_capacity(limit_per_pool: IntArray, use_region_caps: bool, max_total: int) -> float:
        per: list[float] = []
        for i in range(co.region_cap.shape[0]):
            members = np.flatnonzero(co.region_of == i)
            caps = np.repeat(p.capacity[members], limit_per_pool[members])
            caps = np.sort(caps)[::-1]
            if use_region_caps:
                caps = caps[: int(min(co.region_cap[i], caps.shape[0]))]
            per.extend(caps.tolist())
        return float(np.sum(np.sort(np.array(per))[::-1][: max(max_total, 0)]))

    huge = 1 << 30
    quota_only = best_capacity(co.pool_quota, False, huge)
    with_grid = best_capacity(co.pool_quota, True, huge)
    with_max = best_capacity(co.pool_quota, True, req.max_replicas)
    if quota_only < need:
        return "quota", ReasonCode.QUOTA_EXHAUSTED
    if with_grid < need:
        return "grid_event", ReasonCode.GRID_EVENT_CAPPED
    if with_max < need:
        return "max_replicas", ReasonCode.AT_MAX_REPLICAS
    caps = p.capacity * p.hi
    for k in range(p.shares.shape[0]):
        if float(caps[p.allowed[k]].sum()) < p.shares[k] * need:
            return "latency_budget", ReasonCode.INFEASIBLE
    usable_regions = np.unique(p.region_of[p.hi > 0]).shape[0]
    if usable_regions < p.min_regions:
        return "min_regions", ReasonCode.INFEASIBLE
    if int(p.hi.sum()) < p.n_min:
        return "min_replicas", ReasonCode.QUOTA_EXHAUSTED
    if int(p.lo.sum()) > p.n_max:
        return "max_replicas", ReasonCode.AT_MAX_REPLICAS
    return "combined_constraints", ReasonCode.INFEASIBLE


def _binding(co: Costing, req: PlanRequest, p: Problem, r: IntArray, w: _Work) -> str:
    """Name the constraint that binds the chosen plan (a short explanation, best effort)."""
    if w.stale:
        return "never_down_hold"
    if w.missing:
        return "hold_current"
    per_cap = co.fixed_objective / np.maximum(co.capacity, 1e-9)
    used = r > 0
    dearest_used = float(per_cap[used].max()) if np.any(used) else np.inf
    for i, cap in enumerate(co.region_cap):
        members = co.region_of == i
        if (
            cap < UNCAPPED
            and int(r[members].sum()) >= cap
            and np.any(per_cap[members] < dearest_used)
        ):
            return f"grid_event:{co.region_names[i]}"
    at_quota = (r >= p.hi) & (p.hi > 0) & (per_cap < dearest_used)
    if np.any(at_quota):
        return f"quota:{co.keys[int(np.flatnonzero(at_quota)[0])]}"
    total = int(r.sum())
    if total >= req.max_replicas:
        return "max_replicas"
    regions_used = np.unique(co.region_of[used]).shape[0]
    if req.min_regions > 1 and regions_used <= req.min_regions:
        return "min_regions"
    spare = float(co.capacity @ r) - p.need
    if total <= req.min_replicas and (total == 0 or spare >= float(co.capacity[used].min())):
        return "min_replicas"
    return "need"


def _leave_band(co: Costing, target: IntArray, cur: IntArray, band: float, w: _Work) -> IntArray:
    """A plan that only removes replicas leaves the readings' noise ``band`` above the need:
    of the replicas it removes from pools it still uses, it keeps (cheapest per token/s first)
    as many as cover ``need x (1 + band)``.

    Like the HPA's tolerance, but one-sided: below the need the fleet grows to it at once, as
    the SLO asks. A scale-down to the need itself is taken back a pass later when noise lifts
    the need by a few percent (e2e: 6 -> 5 on a need of 12,212 tok/s, 5 -> 6 on 12,515, 2,480
    a replica). Moves are left alone, and so are pools the plan empties: keeping a region's
    last replica to cover the band would hold a region the plan leaves."""
    if band <= 0.0 or np.any(target > cur) or not np.any(target < cur):
        return target
    still_used = np.where(target > 0, cur, target)  # a pool the plan empties stays empty
    out = _keep_capacity(co, target, still_used, co.need_tokens_per_second * (1.0 + band))
    if int(out.sum()) > int(target.sum()):
        w.notes.append(
            f"kept {int(out.sum() - target.sum())} replica(s) a scale-down would remove: the "
            f"need {co.need_tokens_per_second:.0f} tok/s plus the readings' noise ({band:.1%})"
        )
    return out


def _solve(p: Problem, w: _Work, hint: IntArray | None = None) -> Solution | None:
    sol = solve(p, hint)
    if sol is not None:
        if w.solver != "milp":
            w.solver = sol.solver
        w.optimal = w.optimal and sol.optimal
    return sol


def _optimise(co: Costing, req: PlanRequest, cur: IntArray, w: _Work) -> tuple[IntArray, Problem]:
    """Steps 3 and 4: the optimum, then the hysteresis against the no-move baseline."""
    lo = np.minimum(cur, co.quota) if w.stale else np.zeros_like(cur)
    p = co.problem(req, lo=lo)
    opt = _solve(p, w, cur)
    if opt is None:
        w.infeasible = True
        w.binding, code = _diagnose(co, req, p)
        w.add(ReasonCode.INFEASIBLE)
        if code is not ReasonCode.INFEASIBLE:
            w.add(code)
        best = _fill_cheapest(co, req, np.maximum(lo, np.minimum(cur, co.quota)), p.need)
        best = _cap_groups(co, best)
        return _top_up_min_replicas(co, req, _cap_regions(co, best, co.region_cap)), p
    r_opt = opt.replicas
    if np.all(r_opt <= cur):  # no replica to add: nothing to cold-start, no hysteresis
        return r_opt, p
    base: Solution | None = None
    if np.any(cur > 0):
        base = _solve(co.problem(req, lo=lo, hi=np.minimum(cur, co.quota)), w, cur)
        if base is None and np.any(r_opt < cur):
            base = _solve(co.problem(req, lo=np.maximum(lo, np.minimum(cur, co.quota))), w)
    if base is None or np.array_equal(base.replicas, r_opt):
        return r_opt, p
    hours = co.horizon_hours
    saving = (base.objective - opt.objective) * hours - (
        co.move_cost(cur, r_opt) - co.move_cost(cur, base.replicas)
    )
    threshold = req.min_savings_percent / 100.0 * abs(base.objective) * hours
    if saving > 0 and saving >= threshold:
        w.runner_up = base.replicas
        w.notes.append(
            f"move saves {saving:.4g} over the {hours * 60:.0f}-min horizon after cold starts "
            f"(threshold {threshold:.4g})"
        )
        return r_opt, p
    w.min_savings_blocked = True
    w.add(ReasonCode.MIN_SAVINGS_NOT_MET)
    w.runner_up = r_opt
    w.notes.append(
        f"best move would save {saving:.4g} over the horizon after cold starts; "
        f"needs {threshold:.4g} ({req.min_savings_percent:g} %)"
    )
    return base.replicas, p


def _stabilise(
    co: Costing,
    req: PlanRequest,
    state: PlannerState,
    cur: IntArray,
    target: IntArray,
    w: _Work,
    protected: float,
    rising: bool = False,
) -> tuple[IntArray, PlannerState]:
    """Step 5: HPA-style scale-down stabilisation over the recommendation history, and the
    recent-peak guard-rail: a scale-down keeps ``protected`` tokens/s of capacity (at most what
    runs now), because what it removes takes a cold start to come back; while demand is
    ``rising`` (or settling) the capacity is kept whole."""
    now = req.now_seconds
    window = max(req.scale_down_stabilisation_seconds, 0.0)
    kept = tuple(h for h in state.history if now - window <= h.time_seconds <= now)
    rec = Recommendation(now, tuple(zip(co.keys, (int(x) for x in target), strict=True)))
    history = (*kept, rec)
    out = _hold_recent(co, target, cur, [co.vector(dict(h.replicas)) for h in kept])
    if req.demand_settling or rising:
        out = _keep_capacity(co, out, cur)
    elif protected > float(co.capacity @ out) * (1 + 1e-9):
        out = _keep_capacity(co, out, cur, protected)
    out = _cap_groups(co, np.minimum(out, co.quota))
    out = _cap_regions(co, out, co.region_cap)
    if np.any(out > target) and np.any(target < cur):
        w.add(ReasonCode.SCALE_DOWN_STABILISING)
    return out, replace(state, history=history)


def _hold_recent(co: Costing, target: IntArray, cur: IntArray, past: list[IntArray]) -> IntArray:
    """HPA-style scale-down stabilisation: each region keeps (of what runs there) the largest
    capacity recommended for it within the window, through the replicas cheapest per token/s.

    With one pool per region this is the HPA's rule per pool, ``min(cur, max(target, past))``.
    A region with several pools (variants) holds capacity, not each pool's count: a plan that
    swaps a variant for another must not keep the recent maximum of both.
    """
    n_regions = co.region_cap.shape[0]
    held = np.vstack([target, *past]) * co.capacity  # capacity per recommendation and pool
    per_region = np.array(
        [held[:, co.region_of == i].sum(axis=1).max(initial=0.0) for i in range(n_regions)]
    )
    running = np.bincount(co.region_of, weights=co.capacity * cur, minlength=n_regions)
    want = np.minimum(per_region, running)
    out = target.copy()
    per_cap = co.fixed_objective / np.maximum(co.capacity, 1e-9)
    have = np.bincount(co.region_of, weights=co.capacity * out, minlength=n_regions)
    for j in np.lexsort((np.arange(out.shape[0]), per_cap)):
        i = co.region_of[j]
        while out[j] < cur[j] and have[i] < want[i] * (1 - 1e-12):
            out[j] += 1
            have[i] += co.capacity[j]
    return out


def _capacity_seen(state: PlannerState, co: Costing, now: float, window: float) -> CapacitySeen:
    """The capacity estimates of the protection window, this pass's last."""
    kept = tuple(e for e in state.capacity_seen if now - window <= e[0] < now)
    return (*kept, (now, tuple(zip(co.keys, (float(c) for c in co.capacity), strict=True))))


def _capacity_drift(co: Costing, cur: IntArray, seen: CapacitySeen) -> float:
    """How much more capacity this pass's estimates credit the running replicas with than the
    lowest estimates of the protection window (>= 1).

    The capacity is learned and moves pass to pass (a few percent while few windows are held);
    the recent-peak guard-rail is kept at the lowest recent estimate, as the demand it keeps is
    the highest recent one, so that a scale-down an estimate up by 5 % allowed is not taken back
    a pass later when it drops again (e2e outage: us-west 4 -> 3 -> 4 on 2,787 then 2,637)."""
    lowest = co.capacity.astype(np.float64)
    for _, caps in seen:
        by_key = dict(caps)
        past = np.array(
            [by_key.get(k, float(c)) for k, c in zip(co.keys, co.capacity, strict=True)]
        )
        lowest = np.minimum(lowest, past)
    low = float(lowest @ cur)
    return float(co.capacity @ cur) / low if low > 0 else 1.0


def _keep_capacity(co: Costing, r: IntArray, cur: IntArray, up_to: float | None = None) -> IntArray:
    """``r`` with enough of the replicas it removes kept (cheapest first) that its capacity is
    not below the current one (or ``up_to``, when lower): an under-read may move replicas, not
    shrink the fleet."""
    out = r.copy()
    keep = float(co.capacity @ cur) if up_to is None else min(up_to, float(co.capacity @ cur))
    deficit = keep - float(co.capacity @ out) - 1e-9 * keep
    per_cap = co.fixed_objective / np.maximum(co.capacity, 1e-9)
    for j in np.lexsort((np.arange(out.shape[0]), per_cap)):
        while deficit > 0 and out[j] < cur[j]:
            out[j] += 1
            deficit -= float(co.capacity[j])
    return out


def _trim_adds(co: Costing, add: IntArray, limit: int) -> IntArray:
    """Keep at most ``limit`` added replicas, cheapest per token/s first."""
    out = np.zeros_like(add)
    per_cap = co.fixed_objective / np.maximum(co.capacity, 1e-9)
    left = max(limit, 0)
    for j in np.lexsort((np.arange(add.shape[0]), per_cap)):
        take = min(int(add[j]), left)
        out[j] = take
        left -= take
    return out


def _add_within_groups(co: Costing, hard: IntArray, add: IntArray) -> IntArray:
    """``hard + add``, the adds cut (dearest first) to what fits beside ``hard`` in the GPU
    quota a product's variants share: a move between two variants of a full quota waits."""
    out = hard.copy()
    per_cap = co.fixed_objective / np.maximum(co.capacity, 1e-9)
    for j in np.lexsort((np.arange(add.shape[0]), per_cap)):
        out[j] += min(int(add[j]), _group_room(co, out, int(j)))
    return out


def _ready_capacity_ok(co: Costing, p: Problem, desired: IntArray, floor: float) -> bool:
    """Whether the ready replicas kept by ``desired`` serve at least ``floor`` of the need."""
    ready = np.minimum(co.ready, desired)
    if float(co.capacity @ ready) < floor * (1 - 1e-12):
        return False
    if p.shares.shape[0] == 1:
        return True
    routed = route(
        Problem(
            p.fixed_per_replica,
            p.per_token,
            p.capacity,
            p.lo,
            p.hi,
            p.region_of,
            p.region_cap,
            floor,
            p.shares,
            p.allowed,
            p.n_min,
            p.n_max,
            p.min_regions,
        ),
        ready,
    )
    return routed is not None


def _make_before_break(
    co: Costing,
    req: PlanRequest,
    p: Problem,
    cur: IntArray,
    stab: IntArray,
    w: _Work,
    protected: float = 0.0,
) -> tuple[IntArray, bool]:
    """Steps 6 and 7: rate limits, then add first and remove only what ready capacity allows
    (the need, or the recent peak's ``protected`` capacity when higher: a move's old side
    keeps serving until its replacements carry what was served minutes ago).

    Returns the desired vector and whether removals are waiting for readiness.
    """
    hard = _hard_cap(co, req, cur)
    forced = bool(np.any(hard < cur))
    add = np.maximum(stab - hard, 0)
    remove = np.maximum(hard - stab, 0)
    is_move = bool(add.sum() > 0 and remove.sum() > 0)
    limits = []
    if req.max_scale_up_per_step is not None:
        limits.append(req.max_scale_up_per_step)
    if is_move and req.max_shift_per_step is not None:
        limits.append(req.max_shift_per_step)
    # Replicas an announced grid event will remove hold no room under max_replicas: their
    # replacements must be Ready before it begins, and once it has begun they would be added
    # past max_replicas anyway (the capped region's replicas are then leaving): waiting for it
    # only makes the move a cold start late, with the region drawing power through the event.
    leaving = int(hard.sum()) - int(_cap_regions(co, hard, co.region_cap).sum())
    room = req.max_replicas - int(hard.sum()) + leaving
    if limits and int(add.sum()) > min(limits):
        add = _trim_adds(co, add, min(limits))
        w.add(ReasonCode.RATE_LIMITED)
    if int(add.sum()) > max(room, 0):
        add = _trim_adds(co, add, room)
        w.add(ReasonCode.AT_MAX_REPLICAS)
    desired = _add_within_groups(co, hard, add)
    # Removals: dearest replicas first, each only while the ready capacity left still covers
    # the need (or, when it already does not, while it does not shrink).
    budget = req.max_scale_down_per_step
    removed = 0
    waiting = False
    base_ready = float(co.capacity @ np.minimum(co.ready, desired))
    # While demand settles (under-reads), Ready capacity is kept whole, not only to the need;
    # unless an announced grid event is emptying a region: that move must end before it begins.
    settling = req.demand_settling and not np.any(_cap_regions(co, cur, co.region_cap) < cur)
    floor = base_ready if settling else min(max(p.need, protected), base_ready)
    order = np.lexsort((np.arange(cur.shape[0]), -co.fixed_objective))
    for j in order:
        for _ in range(int(remove[j])):
            if budget is not None and removed >= budget:
                w.add(ReasonCode.RATE_LIMITED)
                break
            trial = desired.copy()
            trial[j] -= 1
            if _ready_capacity_ok(co, p, trial, floor):
                desired = trial
                removed += 1
            else:
                waiting = True
                break
    if forced:
        w.add(ReasonCode.GRID_EVENT_CAPPED)
    return desired, waiting


def _weights(co: Costing, p: Problem, desired: IntArray) -> dict[PoolKey, float]:
    """Traffic weights over the ready replicas of ``desired`` (cost-optimal routing)."""
    ready = np.minimum(co.ready, desired)
    base = ready if float(co.capacity @ ready) > 0 else desired
    cap = co.capacity * base
    total_cap = float(cap.sum())
    if total_cap <= 0:
        return {}
    need = min(p.need, total_cap)
    load: np.ndarray
    if need > 0:
        routed = route(
            Problem(
                p.fixed_per_replica,
                p.per_token,
                p.capacity,
                p.lo,
                p.hi,
                p.region_of,
                p.region_cap,
                need,
                p.shares,
                p.allowed,
                p.n_min,
                p.n_max,
                p.min_regions,
            ),
            base,
        )
        load = routed[0] if routed is not None else cap
    else:
        load = cap
    s = float(load.sum())
    return {k: float(x / s) for k, x in zip(co.keys, load, strict=True) if x > 0}


def _option(co: Costing, p: Problem, r: IntArray | None) -> PlanOption | None:
    if r is None:
        return None
    routed = route(p, r)
    if routed is None:
        cap = co.capacity * r
        tot = float(cap.sum())
        load = cap * (p.need / tot) if tot > 0 else np.zeros_like(cap)
        return co.option(r, load)
    return co.option(r, routed[0])


def _runner_up(co: Costing, req: PlanRequest, p: Problem, target: IntArray) -> IntArray | None:
    """The best plan without the region that carries most of the chosen plan's capacity.

    Informative only, so by default it is found the fast way (:func:`solve_near`: the LP
    rounded and trimmed, exact with one GPU product per region); ``req.runner_up_exact`` runs
    the exact solver instead, as the chosen plan does."""
    if not np.any(target > 0):
        return None
    per_region = np.bincount(
        co.region_of, weights=co.capacity * target, minlength=co.region_cap.shape[0]
    )
    top = int(np.argmax(per_region))
    hi = np.where(co.region_of == top, 0, p.hi)
    alt_p = co.problem(req, lo=np.minimum(p.lo, hi), hi=hi)
    alt = solve(alt_p) if req.runner_up_exact else solve_near(alt_p)
    return None if alt is None else alt.replicas


def _primary(
    w: _Work, cur: IntArray, desired: IntArray, target: IntArray, waiting: bool, was_pending: bool
) -> ReasonCode:
    adds = bool(np.any(desired > cur))
    removes = bool(np.any(desired < cur))
    if w.infeasible:
        return ReasonCode.INFEASIBLE
    if w.missing:
        return ReasonCode.MISSING_METRICS_HOLD
    if ReasonCode.GRID_EVENT_CAPPED in w.reasons and removes:
        return ReasonCode.GRID_EVENT_CAPPED
    if waiting:
        return ReasonCode.SHIFT_STARTED if adds else ReasonCode.SHIFT_WAITING_FOR_READY
    if adds:
        return ReasonCode.SCALE_UP
    if removes:
        return ReasonCode.SHIFT_COMPLETED if was_pending else ReasonCode.SCALE_DOWN
    for code in (
        ReasonCode.AT_MAX_REPLICAS,
        ReasonCode.RATE_LIMITED,
        ReasonCode.SCALE_DOWN_STABILISING,
        ReasonCode.MIN_SAVINGS_NOT_MET,
    ):
        if code in w.reasons:
            return code
    if w.stale:
        return ReasonCode.STALE_SIGNALS_HOLD
    return ReasonCode.NO_CHANGE


def plan(req: PlanRequest, state: PlannerState | None = None) -> Decision:
    """Decide the replicas per pool for ``req``; pass the returned ``state`` to the next call."""
    state = state or PlannerState()
    running = sum(p.current_replicas for r in req.regions for p in r.pools)
    z = gate(req, state, running)
    if z.state in (ZeroState.SLEEP, ZeroState.ASLEEP):
        return _at_zero(req, state, z)
    if z.min_replicas != req.min_replicas:
        req = replace(req, min_replicas=z.min_replicas)
    decision = _plan(req, state)
    if z.state is ZeroState.WAKE:
        decision = _woken(decision, z)
    return replace(decision, state=replace(decision.state, busy_seconds=z.busy_seconds))


def _at_zero(req: PlanRequest, state: PlannerState, z: ZeroGate) -> Decision:
    """Every pool at zero: the deployment goes to sleep, or stays asleep."""
    keys = [p.key(r.name) for r in req.regions for p in r.pools]
    current = [p.current_replicas for r in req.regions for p in r.pools]
    reason = ReasonCode.SCALED_TO_ZERO
    before = ", ".join(f"{k}={c}" for k, c in zip(keys, current, strict=True) if c > 0)
    explanation = Explanation(
        reason=reason,
        chosen=None,
        runner_up=None,
        current=None,
        binding_constraint="scale_to_zero",
        need_tokens_per_second=0.0,
        solver="none",
        optimal=True,
        notes=(z.note,),
    )
    return Decision(
        desired=dict.fromkeys(keys, 0),
        target=dict.fromkeys(keys, 0),
        actions=tuple(
            Action(ActionKind.REMOVE, k, c, 0) for k, c in zip(keys, current, strict=True) if c
        ),
        traffic_weights={},
        reason=reason,
        reasons=(reason,),
        message=f"{reason}: {before or 'none'} -> none; {z.note}",
        explanation=explanation,
        state=replace(state, busy_seconds=z.busy_seconds, shift_pending=False),
    )


def _woken(decision: Decision, z: ZeroGate) -> Decision:
    """The decision that wakes a deployment from zero, said as such."""
    reason = ReasonCode.WOKE_UP
    _, _, rest = decision.message.partition(": ")
    return replace(
        decision,
        reason=reason,
        reasons=(reason, *decision.reasons),
        message=f"{reason}: {rest}; {z.note}",
        explanation=replace(
            decision.explanation, reason=reason, notes=(*decision.explanation.notes, z.note)
        ),
    )


def _plan(req: PlanRequest, state: PlannerState) -> Decision:
    """The decision for a deployment that runs, or may run, replicas (steps 1 to 7)."""
    w = _Work()
    # Step 2 (inputs) first: whether demand was measured decides what the sizing learns.
    demand = req.demand_tokens_per_second
    w.missing = not demand or not req.metrics_fresh or not all(math.isfinite(x) for x in demand)
    w.stale = any(signals_missing(r) for r in req.regions)
    sizing = size(req, state.recent, measured=not w.missing)
    state = replace(state, recent=sizing.recent)
    if not w.missing:
        w.notes.append(sizing.note())
    co = build_costing(req, sizing.need_tokens_per_second)
    cur = co.current
    # Step 1: hard caps (quota, grid events, max_replicas) bound everything below.
    capped = _hard_cap(co, req, cur)
    if w.missing:
        w.add(ReasonCode.MISSING_METRICS_HOLD)
        target = _top_up_min_replicas(co, req, capped)
        p = co.problem(req, lo=np.minimum(target, co.quota), need=float(co.capacity @ target))
    else:
        if w.stale:
            w.add(ReasonCode.STALE_SIGNALS_HOLD)
        # Steps 3-4, and a scale-down leaves the noise band.
        target, p = _optimise(co, req, capped, w)
        target = _leave_band(co, target, capped, sizing.noise_band, w)
    # Step 5.
    seen = _capacity_seen(state, co, req.now_seconds, sizing_window_seconds(req))
    state = replace(state, capacity_seen=seen)
    protected = 0.0 if w.missing else sizing.protected_tokens_per_second
    protected *= _capacity_drift(co, cur, seen)
    rising = sizing.rising and not w.missing
    stab, new_state = _stabilise(co, req, state, cur, target, w, protected, rising)
    # Steps 6-7.
    desired, waiting = _make_before_break(co, req, p, cur, stab, w, protected)
    reason = _primary(w, cur, desired, target, waiting, state.shift_pending)
    if reason not in w.reasons:
        w.reasons.insert(0, reason)
    pending = waiting or (state.shift_pending and bool(np.any(desired > target)))
    new_state = replace(new_state, shift_pending=pending)
    if not w.binding:
        w.binding = _binding(co, req, p, target, w)

    runner: IntArray | None = w.runner_up
    if runner is None and req.explain and not w.missing and not w.infeasible:
        runner = _runner_up(co, req, p, target)
    actions = [
        Action(ActionKind.ADD, k, int(c), int(d))
        for k, c, d in zip(co.keys, cur, desired, strict=True)
        if d > c
    ] + [
        Action(ActionKind.REMOVE, k, int(c), int(d))
        for k, c, d in zip(co.keys, cur, desired, strict=True)
        if d < c
    ]
    current_opt = _option(co, p, capped) if np.any(capped > 0) else None
    explanation = Explanation(
        reason=reason,
        chosen=_option(co, p, target),
        runner_up=_option(co, p, runner),
        current=current_opt,
        binding_constraint=w.binding,
        need_tokens_per_second=p.need,
        solver=w.solver,
        optimal=w.optimal,
        notes=tuple(w.notes),
    )
    message = _message(reason, co, cur, desired, target, w)
    return Decision(
        desired=co.as_mapping(desired),
        target=co.as_mapping(target),
        actions=tuple(actions),
        traffic_weights=_weights(co, p, desired),
        reason=reason,
        reasons=tuple(w.reasons),
        message=message,
        explanation=explanation,
        state=new_state,
    )


def _fmt(co: Costing, r: IntArray) -> str:
    parts = [f"{k}={int(x)}" for k, x in zip(co.keys, r, strict=True) if x > 0]
    return ", ".join(parts) if parts else "none"


def _message(
    reason: ReasonCode, co: Costing, cur: IntArray, desired: IntArray, target: IntArray, w: _Work
) -> str:
    text = f"{reason}: {_fmt(co, cur)} -> {_fmt(co, desired)}"
    if not np.array_equal(desired, target):
        text += f" (target {_fmt(co, target)})"
    if w.binding:
        text += f"; binding: {w.binding}"
    return text
