"""The placement optimiser: integer replicas per pool at minimum cost rate, exactly.

Problem (all arrays indexed by pool j; populations p)::

    minimise    sum_j F_j r_j + sum_{p,j} v_j x_pj
    subject to  sum_j x_pj = s_p N                    (route every population's need)
                sum_p x_pj <= c_j r_j                  (within the pool's SLO capacity)
                x_pj = 0 where pool j breaks p's latency budget
                lo_j <= r_j <= hi_j, r_j integer       (quota, grid event, never-down holds)
                n_min <= sum_j r_j <= n_max
                sum_{j in region i} r_j <= cap_i       (grid event caps spanning pools)
                sum_{j in group g} gpus_j r_j <= Q_g   (a quota shared by a product's variants)
                #regions with a replica >= min_regions

``F_j`` is the fixed cost rate of one replica (GPU-hour + idle power), ``v_j`` the cost per
token/s routed to it (load-proportional power), ``c_j`` its capacity, ``N`` the need (demand
peak x headroom).

Two exact solvers:

* :func:`solve_dp`, the fast path, for one population and no coupling constraints. For fixed
  ``r`` the optimal routing fills pools in increasing ``v`` (a fractional knapsack), so a
  dynamic programme over pools in that order, with state = capacity reached so far (capped at
  ``N``), computes the optimum. After shifting ``v`` by its minimum (which changes the objective
  by the constant ``v_min N``) a state with more capacity and less cost dominates one with less
  capacity and more cost, so only the Pareto frontier is kept. Exact prunings keep it small:
  an LP lower bound on the rest of the pools against the best complete plan so far (seeded
  by rounding the LP, a greedy and the caller's hint), and bound tightening by LP reduced
  costs (the LP value is convex in each pool's bound, so moving a pool k replicas away from
  its LP value costs at least k times its reduced cost; moves dearer than the gap between the
  incumbent and the LP bound are cut).
* :func:`solve_milp`, HiGHS through ``scipy.optimize.milp``, for everything else (several
  latency-restricted populations, region caps spanning pools, quotas shared by pools,
  min_regions, total bounds) when
  the fast path's optimum of the relaxation violates them.

:func:`exhaustive` enumerates every plan: the reference the tests and the benchmark use.

:func:`solve` runs the fast path, checks the coupling constraints on its result (a relaxation's
optimum that is feasible is optimal) and falls back to HiGHS only when one is violated.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

__all__ = [
    "Problem",
    "Solution",
    "exhaustive",
    "route",
    "solve",
    "solve_dp",
    "solve_milp",
    "solve_near",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_REL_TOL = 1e-9
MILP_TIME_LIMIT_SECONDS = 2.0


@dataclass(frozen=True)
class Problem:
    """The optimisation problem in array form (see the module docstring for the symbols)."""

    fixed_per_replica: FloatArray  # F_j, objective unit per hour (> 0)
    per_token: FloatArray  # v_j, objective unit per hour per token/s
    capacity: FloatArray  # c_j, tokens/s per replica
    lo: IntArray
    hi: IntArray
    region_of: IntArray  # region index of pool j
    region_cap: IntArray  # per region; a large number when uncapped
    need: float  # N, tokens/s
    shares: FloatArray  # s_p, sums to 1
    allowed: BoolArray  # [p, j]
    n_min: int
    n_max: int
    min_regions: int
    single_population: bool | None = None  # precomputed by the caller, else derived
    gpus: IntArray | None = None  # GPUs per replica of pool j (None: no shared quota)
    group_of: IntArray | None = None  # quota group of pool j (its product in its region)
    group_cap_gpus: IntArray | None = None  # Q_g, GPUs per group

    @property
    def pools(self) -> int:
        """Number of pools."""
        return int(self.capacity.shape[0])

    def group_gpus(self, r: IntArray) -> IntArray | None:
        """GPUs plan ``r`` takes in each quota group (None when no quota is shared)."""
        if self.gpus is None or self.group_of is None or self.group_cap_gpus is None:
            return None
        n_g = self.group_cap_gpus.shape[0]
        weights = (self.gpus * r).astype(np.float64)
        return np.bincount(self.group_of, weights=weights, minlength=n_g).astype(np.int64)


@dataclass(frozen=True)
class Solution:
    """An integer plan, its optimal routing and its objective value."""

    replicas: IntArray
    load: FloatArray  # per pool, tokens/s of the need routed there (summed over populations)
    objective: float
    solver: str
    optimal: bool


def _single_population(p: Problem) -> bool:
    if p.single_population is not None:
        return p.single_population
    if p.shares.shape[0] == 1:
        return bool(np.all(p.allowed[0, p.hi > 0]))
    usable = p.hi > 0
    active = p.shares > 0
    return bool(np.all(p.allowed[np.ix_(active, usable)]))


def route(p: Problem, r: IntArray) -> tuple[FloatArray, float] | None:
    """Optimal routing of the need over plan ``r``: (load per pool, objective), or None."""
    cap = p.capacity * r
    if _single_population(p):
        order = np.lexsort((np.arange(p.pools), p.per_token))
        load = np.zeros(p.pools)
        rem = p.need
        for j in order:
            if rem <= 0.0:
                break
            take = min(rem, float(cap[j]))
            load[j] = take
            rem -= take
        if rem > p.need * 1e-9 + 1e-9:
            return None
        return load, float(p.fixed_per_replica @ r + p.per_token @ load)
    # Several populations with different allowed pools: a small transportation LP.
    n_p = p.shares.shape[0]
    nv = n_p * p.pools
    c = np.tile(p.per_token, n_p)
    a_eq = np.zeros((n_p, nv))
    for k in range(n_p):
        a_eq[k, k * p.pools : (k + 1) * p.pools] = 1.0
    a_ub = np.tile(np.eye(p.pools), (1, n_p))
    ub = np.where(p.allowed.reshape(-1), np.inf, 0.0)
    res = linprog(
        c,
        A_ub=a_ub,
        b_ub=cap,
        A_eq=a_eq,
        b_eq=p.shares * p.need,
        bounds=np.stack([np.zeros(nv), ub], axis=1),
        method="highs",
    )
    if res.status != 0:
        return None
    x = np.asarray(res.x).reshape(n_p, p.pools)
    load = x.sum(axis=0)
    return load, float(p.fixed_per_replica @ r + p.per_token @ load)


def coupling_ok(p: Problem, r: IntArray) -> bool:
    """Whether ``r`` meets the constraints the fast path relaxes (not routing)."""
    total = int(r.sum())
    if total < p.n_min or total > p.n_max:
        return False
    per_region = np.bincount(p.region_of, weights=r, minlength=p.region_cap.shape[0])
    if np.any(per_region > p.region_cap + 0.5):
        return False
    groups = p.group_gpus(r)
    if groups is not None and p.group_cap_gpus is not None and np.any(groups > p.group_cap_gpus):
        return False
    return int(np.count_nonzero(per_region > 0.5)) >= p.min_regions


class _Bounds:
    """Lower bounds on completing the DP from pool ``j`` on, built per suffix on demand.

    * LP bound: pay the forced replicas' fixed cost, then fill ``rem`` with forced capacity at
      ``vp`` per token/s and extra capacity at ``F/c + vp``, cheapest first.
    * Integer bound, for suffixes whose pools all have one capacity ``c``: covering ``rem``
      takes at least ``ceil(rem / c)`` replicas, so the completion costs at least the fixed
      cost of ``ceil(rem / c) * c`` of capacity (forced capacity free) plus routing ``rem`` at
      the cheapest ``vp``, both filled fractionally.

    Only the suffixes where the DP branches are ever asked for, so tables are built lazily.
    """

    def __init__(
        self, f: FloatArray, vp: FloatArray, c: FloatArray, lo: FloatArray, hi: FloatArray
    ) -> None:
        j_n = c.shape[0]
        idx = np.arange(j_n)
        owner = np.concatenate([idx, idx])
        seg = np.concatenate([lo * c, (hi - lo) * c])
        self._lp = self._sorted(np.concatenate([vp, f / c + vp]), seg, owner)
        self._fixed = self._sorted(np.concatenate([np.zeros(j_n), f / c]), seg, owner)
        self._route = self._sorted(vp, hi * c, idx)
        fl = (f * lo).tolist()
        self.forced = [0.0] * (j_n + 1)  # fixed cost of the forced replicas of pools j..
        for j in range(j_n - 1, -1, -1):
            self.forced[j] = self.forced[j + 1] + fl[j]
        # Common capacity of each suffix, scanning from the end (0.0 once capacities differ).
        self.capacity = [0.0] * (j_n + 1)
        seen = 0.0
        mixed = False
        for j in range(j_n - 1, -1, -1):
            cj = float(c[j])
            if hi[j] > 0 and not mixed:
                if seen == 0.0:
                    seen = cj
                elif abs(cj - seen) > 1e-9 * max(cj, seen):
                    mixed = True
            self.capacity[j] = 0.0 if mixed else seen
        self._cache: dict[tuple[int, int], tuple[FloatArray, FloatArray, list[float], list[float]]]
        self._cache = {}

    @staticmethod
    def _sorted(
        unit: FloatArray, seg: FloatArray, owner: IntArray
    ) -> tuple[FloatArray, FloatArray, IntArray]:
        order = np.lexsort((owner, unit))
        keep = seg[order] > 0
        return unit[order][keep], seg[order][keep], owner[order][keep]

    def _row(self, kind: int, j: int) -> tuple[FloatArray, FloatArray, list[float], list[float]]:
        key = (kind, j)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        unit, seg, owner = (self._lp, self._fixed, self._route)[kind]
        mask = owner >= j
        caps = seg[mask]
        x = np.concatenate([[0.0], np.cumsum(caps)])
        y = np.concatenate([[0.0], np.cumsum(caps * unit[mask])])
        out = (x, y, x.tolist(), y.tolist())
        self._cache[key] = out
        return out

    def lp(self, j: int) -> tuple[FloatArray, FloatArray, list[float], list[float]]:
        """Breakpoints (arrays and lists) of the LP bound for pools ``j..``."""
        return self._row(0, j)

    def integer(self, j: int, rem: float) -> float:
        """The integer bound for pools ``j..`` covering ``rem`` (0 when it does not apply)."""
        c = self.capacity[j]
        if c <= 0.0 or rem <= 0.0:
            return 0.0
        cover = math.ceil(rem / c - 1e-9) * c
        _, _, xf, yf = self._row(1, j)
        _, _, xv, yv = self._row(2, j)
        return _pl(cover, xf, yf) + _pl(rem, xv, yv)

    def integer_many(self, j: int, rem: FloatArray) -> FloatArray:
        """:meth:`integer` for an array of ``rem`` (zeros when it does not apply)."""
        c = self.capacity[j]
        if c <= 0.0:
            return np.zeros_like(rem)
        xf, yf, _, _ = self._row(1, j)
        xv, yv, _, _ = self._row(2, j)
        cover = np.ceil(np.maximum(rem, 0.0) / c - 1e-9) * c
        alt = np.interp(cover, xf, yf) + np.interp(rem, xv, yv)
        return np.where(rem > 0.0, alt, 0.0)


def _pl(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise-linear interpolation on non-decreasing ``xs`` (clamped at the ends)."""
    i = bisect.bisect_right(xs, x)
    if i >= len(xs):
        return ys[-1]
    if i <= 0:
        return ys[0]
    x0 = xs[i - 1]
    x1 = xs[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0) if x1 > x0 else ys[i - 1]


def solve_one_capacity(p: Problem) -> Solution | None:
    """Exact optimum when every usable pool has the same capacity and no lower bound.

    Then an optimal plan has ``n = ceil(N / c)`` replicas, all fully loaded but one (a
    replica carrying nothing could go, saving its fixed cost > 0; two partly loaded ones
    could shift load to the lower ``v`` until one is full or empty). So: the ``n - 1`` full
    replicas are the cheapest ``F + v c`` units, and the partial one, carrying
    ``N - (n - 1) c``, goes where ``F + v rem`` plus the quota correction is least.
    """
    usable = np.flatnonzero(p.hi > 0)
    need = p.need
    if usable.shape[0] == 0:
        return None if need > 1e-9 else _empty_solution(p)
    c = float(p.capacity[usable[0]])
    n_units = int(p.hi[usable].sum())
    n = max(math.ceil((need - need * _REL_TOL - 1e-9) / c), 0)
    if n > n_units:
        return None
    replicas = np.zeros(p.pools, dtype=np.int64)
    if n == 0:
        return Solution(replicas, np.zeros(p.pools), 0.0, "dp", True)
    rem = need - (n - 1) * c
    g = p.fixed_per_replica[usable] + p.per_token[usable] * c
    order = usable[np.lexsort((usable, g))]  # pools by full-replica cost
    g_sorted = p.fixed_per_replica[order] + p.per_token[order] * c
    counts = p.hi[order]
    unit_g = np.repeat(g_sorted, counts)
    unit_owner = np.repeat(order, counts)
    prefix = np.concatenate([[0.0], np.cumsum(unit_g)])
    used = np.bincount(unit_owner[: n - 1], minlength=p.pools)[usable]
    full_cost = np.where(
        used < p.hi[usable],
        prefix[n - 1],
        prefix[min(n, unit_g.shape[0])] - g,
    )
    exhausted = used >= p.hi[usable]
    if n >= unit_g.shape[0] + 1:
        full_cost = np.where(exhausted, np.inf, full_cost)
    total = full_cost + p.fixed_per_replica[usable] + p.per_token[usable] * rem
    best = int(np.lexsort((usable, total))[0])
    m = int(usable[best])
    if not math.isfinite(float(total[best])):
        return None
    # Rebuild the plan: the n - 1 cheapest units, skipping one of m's if m was exhausted.
    taken = unit_owner[: n - 1]
    if exhausted[best]:
        # Drop the last of m's units among the first n - 1, take the n-th unit instead.
        m_positions = np.flatnonzero(taken == m)
        keep = np.ones(n - 1, dtype=bool)
        keep[m_positions[-1]] = False
        taken = np.concatenate([taken[keep], unit_owner[n - 1 : n]])
    replicas += np.bincount(taken, minlength=p.pools).astype(np.int64)
    replicas[m] += 1
    routed = route(p, replicas)
    if routed is None:  # pragma: no cover - n replicas of c cover the need
        return None
    load, obj = routed
    return Solution(replicas, load, obj, "dp", True)


def _one_capacity(p: Problem) -> bool:
    usable = p.hi > 0
    if not np.any(usable) or np.any(p.lo > 0):
        return False
    caps = p.capacity[usable]
    return float(caps.max() - caps.min()) <= 1e-12 * float(caps.max())


@dataclass(frozen=True)
class _Narrowed:
    """One population's pools in DP order (cheapest per token first), with bounds narrowed by
    the LP relaxation and the best plan known so far (``incumbent``, its objective)."""

    order: IntArray  # pool index per DP position
    f: FloatArray
    vp: FloatArray
    c: FloatArray
    lo: FloatArray
    hi: FloatArray
    incumbent: float


def _narrow(p: Problem, usable: IntArray, hint: IntArray | None) -> _Narrowed | None:
    """Order the usable pools, solve the LP relaxation, seed an incumbent (greedy, rounding,
    ``hint``) and narrow each pool's bounds to where it can still beat it (None: the need
    exceeds every pool's quota)."""
    need = p.need
    vmin = float(np.min(p.per_token[usable]))
    order = usable[np.lexsort((usable, p.per_token[usable]))]
    f = p.fixed_per_replica[order]
    vp = np.maximum(p.per_token[order] - vmin, 0.0)
    c = p.capacity[order]
    lo = p.lo[order].astype(np.float64)
    hi = p.hi[order].astype(np.float64)
    if need > float(hi @ c) * (1 + _REL_TOL) + 1e-9:
        return None
    # LP relaxation and an incumbent from rounding it.
    lp_value, r_frac, lam_left, lam_right = _lp(f, vp, c, lo, hi, need, float(f @ lo))
    incumbent = min(
        _greedy_upper_bound(f, vp, c, lo, hi, need),
        _rounding_upper_bound(f, vp, c, lo, hi, need, r_frac),
    )
    if hint is not None:
        h = np.clip(hint[order].astype(np.float64), lo, hi)
        incumbent = min(incumbent, float(_plan_costs(f, vp, c, h[None, :], need)[0]))
    # The LP value is convex in each pool's bound, so moving pool j k replicas away from its
    # LP value costs at least k times the first replica's reduced cost: with k * slope > gap
    # the move cannot beat the incumbent. This narrows every pool but the break pool(s).
    gap = incumbent - lp_value + abs(incumbent) * 1e-9 + 1e-12
    a = f / c + vp
    at_hi = (r_frac >= hi - 1e-9) & (hi > lo)
    at_lo = (r_frac <= lo + 1e-9) & (hi > lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        down = (lam_right - a) * c
        k_down = np.where(down > 0, np.floor(gap / down), np.inf)
        up = f + np.minimum(0.0, vp - lam_left) * c
        k_up = np.where(up > 0, np.floor(gap / up), np.inf)
    lo = np.where(at_hi, np.maximum(lo, hi - k_down), lo)
    hi = np.where(at_lo, np.minimum(hi, lo + k_up), hi)
    return _Narrowed(order, f, vp, c, lo, hi, incumbent)


def solve_dp(p: Problem, hint: IntArray | None = None) -> Solution | None:
    """Exact optimum for one population, ignoring totals, region caps and min_regions.

    ``hint`` (e.g. the current plan) only seeds the incumbent; it never changes the answer.
    """
    need = p.need
    usable = np.flatnonzero(p.hi > 0)
    if usable.shape[0] == 0:
        return None if need > 1e-9 else _empty_solution(p)
    narrowed = _narrow(p, usable, hint)
    if narrowed is None:
        return None
    r_ord = _dp(narrowed, need)
    if r_ord is None:
        return None
    replicas = p.lo.copy()
    replicas[narrowed.order] = np.array(r_ord, dtype=np.int64)
    routed = route(p, replicas)
    if routed is None:  # pragma: no cover - the DP only returns plans that cover the need
        return None
    load, obj = routed
    return Solution(replicas=replicas, load=load, objective=obj, solver="dp", optimal=True)


def _dp(n: _Narrowed, need: float) -> list[int] | None:
    """The cheapest replicas per DP position covering ``need`` (None: none does).

    States are (capacity so far, cost so far) frontiers, one layer per pool with a choice,
    pruned by :class:`_Bounds`; the answer is read back through each layer's parents."""
    tol_n = need * _REL_TOL + 1e-9
    bounds = _Bounds(n.f, n.vp, n.c, n.lo, n.hi)
    incumbent = n.incumbent
    # The DP itself, in plain Python lists (frontiers are small); big layers use numpy.
    f_l: list[float] = n.f.tolist()
    vp_l: list[float] = n.vp.tolist()
    c_l: list[float] = n.c.tolist()
    lo_l = [int(x) for x in n.lo.tolist()]
    hi_l = [int(x) for x in n.hi.tolist()]
    cap: list[float] = [0.0]
    cost: list[float] = [0.0]
    # Per branching layer: (position, parent index per state, replicas chosen per state).
    layers: list[tuple[int, list[int], list[int]]] = []
    j = 0
    while j < len(c_l):
        if min(cap) >= need:  # everything covered: the rest stays at its lower bound
            break
        if hi_l[j] == lo_l[j]:
            # A pool with no choice: it takes what it can of the remaining need.
            fixed = f_l[j] * lo_l[j]
            room = c_l[j] * lo_l[j]
            v_j = vp_l[j]
            for s_idx in range(len(cap)):
                fill = min(need - cap[s_idx], room)
                cost[s_idx] += fixed + v_j * fill
                nc = cap[s_idx] + fill
                cap[s_idx] = need if nc >= need - tol_n else nc
            j += 1
            continue
        pool = (c_l[j], f_l[j], vp_l[j], lo_l[j], hi_l[j])
        forced, lp_next = bounds.forced[j + 1], bounds.lp(j + 1)
        if len(cap) * (hi_l[j] - lo_l[j] + 1) <= _SMALL_LAYER:
            xs, ys = lp_next[2], lp_next[3]
            step = _small_layer(
                cap, cost, need, tol_n, *pool, forced, xs, ys, incumbent, bounds, j + 1
            )
        else:
            xs_a, ys_a = lp_next[0], lp_next[1]
            step = _big_layer(
                np.array(cap), np.array(cost), need, tol_n, *pool, forced, xs_a, ys_a,
                incumbent, bounds, j + 1,
            )  # fmt: skip
        if step is None:
            return None
        incumbent, parents, chosen, cap, cost = step
        layers.append((j, parents, chosen))
        j += 1
    final = [i for i, x in enumerate(cap) if x >= need]
    if not final:
        return None
    best = min(final, key=lambda i: (cost[i], i))
    r_ord = list(lo_l)
    idx = best
    for pos, parent_idx, chosen_r in reversed(layers):
        r_ord[pos] = chosen_r[idx]
        idx = parent_idx[idx]
    return r_ord


def _big_layer(
    cap: FloatArray,
    cost: FloatArray,
    need: float,
    tol_n: float,
    c: float,
    f: float,
    vp: float,
    lo: int,
    hi: int,
    forced_next: float,
    xs: FloatArray,
    ys: FloatArray,
    incumbent: float,
    bounds: _Bounds,
    nxt: int,
) -> tuple[float, list[int], list[int], list[float], list[float]] | None:
    """One DP layer, vectorised: every state x every replica count, bound, Pareto frontier."""
    rem = need - cap
    r_top = np.clip(np.ceil(rem / c - 1e-12), lo, hi)
    counts = (r_top - lo + 1).astype(np.int64)
    parent = np.repeat(np.arange(cap.shape[0]), counts)
    offs = np.arange(parent.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    r = lo + offs
    pc = cap[parent]
    new_cap = pc + r * c
    new_cap[new_cap >= need - tol_n] = need
    np.minimum(new_cap, need, out=new_cap)
    new_cost = cost[parent] + f * r + vp * (new_cap - pc)
    done = new_cap >= need
    if done.any():
        incumbent = min(incumbent, float(new_cost[done].min()) + forced_next)
    left = need - new_cap
    lb = np.interp(left, xs, ys)
    if bounds.capacity[nxt] > 0.0:
        lb = np.maximum(lb, bounds.integer_many(nxt, left))
    bound = new_cost + forced_next + lb
    bound[left > xs[-1] * (1 + _REL_TOL) + 1e-9] = np.inf
    keep = np.flatnonzero(bound <= incumbent + abs(incumbent) * _REL_TOL + 1e-12)
    if keep.shape[0] == 0:
        return None
    # Pareto frontier: by capacity descending, keep a state only if it is cheaper than every
    # state with at least as much capacity.
    srt = keep[np.lexsort((new_cost[keep], -new_cap[keep]))]
    sc = new_cost[srt]
    prev_min = np.minimum.accumulate(np.concatenate([[np.inf], sc[:-1]]))
    front = srt[sc < prev_min - (np.abs(sc) * 1e-12 + 1e-15)]
    return (
        incumbent,
        parent[front].tolist(),
        r[front].astype(np.int64).tolist(),
        new_cap[front].tolist(),
        new_cost[front].tolist(),
    )


_SMALL_LAYER = 128  # up to this many candidates a layer runs in plain Python


def _small_layer(
    cap: list[float],
    cost: list[float],
    need: float,
    tol_n: float,
    c: float,
    f: float,
    vp: float,
    lo: int,
    hi: int,
    forced_next: float,
    xs: list[float],
    ys: list[float],
    incumbent: float,
    bounds: _Bounds,
    nxt: int,
) -> tuple[float, list[int], list[int], list[float], list[float]] | None:
    """One DP layer in plain Python: the same rules as :func:`_big_layer`.

    For one state the LP bound is convex in the replica count (the pools after this one are
    at least as dear per token/s as this one's ``vp``), so the scan over counts stops as soon
    as that bound is above the incumbent and no longer falling. (The integer bound, a step
    function, only prunes single candidates.)
    """
    cand: list[tuple[float, float, int, int]] = []
    x_max = xs[-1] * (1 + _REL_TOL) + 1e-9
    n_x = len(xs)
    bisect_right = bisect.bisect_right
    rel = _REL_TOL
    integer = bounds.capacity[nxt] > 0.0
    for s_idx in range(len(cap)):
        cp = cap[s_idx]
        co = cost[s_idx]
        rem = need - cp
        top = min(max(math.ceil(rem / c - 1e-12), lo), hi) if rem > 0 else lo
        prev = math.inf
        for r in range(lo, top + 1):
            nc = cp + r * c
            if nc >= need - tol_n:
                nc = need
            nco = co + f * r + vp * (nc - cp)
            left = need - nc
            if left <= 0.0:
                bound = convex = nco + forced_next
                if bound < incumbent:
                    incumbent = bound
            elif left > x_max:
                continue
            else:
                i = bisect_right(xs, left)
                if i >= n_x:
                    lb = ys[-1]
                else:
                    x0 = xs[i - 1]
                    x1 = xs[i]
                    lb = (
                        ys[i - 1] + (ys[i] - ys[i - 1]) * (left - x0) / (x1 - x0)
                        if x1 > x0
                        else ys[i - 1]
                    )
                convex = nco + forced_next + lb
                bound = convex
                if integer:
                    bound = max(bound, nco + forced_next + bounds.integer(nxt, left))
            limit_now = incumbent + abs(incumbent) * rel + 1e-12
            if convex > limit_now and convex >= prev:
                break  # the LP bound is convex in r: every larger r is out too
            prev = convex
            if bound > limit_now:
                continue
            cand.append((nc, nco, s_idx, r))
    limit = incumbent + abs(incumbent) * rel + 1e-12
    # Candidates kept before the incumbent fell further are only extra states (harmless);
    # complete ones that are now dearer than the incumbent are dropped.
    if not cand:
        return None
    cand.sort(key=lambda x: (-x[0], x[1]))
    parents: list[int] = []
    rs: list[int] = []
    caps: list[float] = []
    costs: list[float] = []
    best = math.inf
    for nc, nco, s_idx, r in cand:
        if nco < best - (abs(nco) * 1e-12 + 1e-15) and not (
            nc >= need and nco + forced_next > limit
        ):
            best = nco
            parents.append(s_idx)
            rs.append(r)
            caps.append(nc)
            costs.append(nco)
    if not parents:
        return None
    return incumbent, parents, rs, caps, costs


def _lp(
    f: FloatArray,
    vp: FloatArray,
    c: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    need: float,
    forced: float,
) -> tuple[float, FloatArray, float, float]:
    """LP relaxation: value, fractional replicas, and the unit cost of capacity at the break
    from the left (last unit used) and from the right (next unit available)."""
    j_n = c.shape[0]
    unit = np.concatenate([vp, f / c + vp])
    seg = np.concatenate([lo * c, (hi - lo) * c])
    owner = np.concatenate([np.arange(j_n), np.arange(j_n)])
    order = np.lexsort((owner, unit))
    seg_s = seg[order]
    unit_s = unit[order]
    before = np.concatenate([[0.0], np.cumsum(seg_s)[:-1]])
    used = np.clip(need - before, 0.0, seg_s)
    value = forced + float(used @ unit_s)
    extra = np.zeros(2 * j_n)
    extra[order] = used
    r_frac = lo + extra[j_n:] / c
    pos = seg_s > 0
    used_idx = np.flatnonzero(pos & (used > 0))
    free_idx = np.flatnonzero(pos & (used < seg_s * (1 - 1e-12)))
    lam_left = float(unit_s[used_idx[-1]]) if used_idx.shape[0] else 0.0
    lam_right = float(unit_s[free_idx[0]]) if free_idx.shape[0] else math.inf
    return value, r_frac, lam_left, lam_right


def _plan_costs(
    f: FloatArray, vp: FloatArray, c: FloatArray, plans: FloatArray, need: float
) -> FloatArray:
    """Exact objective (shifted) of each row of ``plans`` (pools in increasing vp order)."""
    cap = plans * c
    before = np.cumsum(cap, axis=1) - cap
    load = np.clip(need - before, 0.0, cap)
    cost = plans @ f + load @ vp
    short = cap.sum(axis=1) < need * (1 - _REL_TOL) - 1e-9
    return np.where(short, np.inf, cost)


def _rounding_upper_bound(
    f: FloatArray,
    vp: FloatArray,
    c: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    need: float,
    r_frac: FloatArray,
) -> float:
    """Round the LP down, then cover the residual with one or two pools.

    Only the pools whose capacity cost is closest to the LP's break are tried (every pair of
    them): a heuristic, used only as the DP's first incumbent.
    """
    plans = _rounding_plans(f, vp, c, lo, hi, need, r_frac)
    if plans.shape[0] == 0:
        return math.inf
    return float(np.min(_plan_costs(f, vp, c, plans, need)))


def _rounding_plans(
    f: FloatArray,
    vp: FloatArray,
    c: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    need: float,
    r_frac: FloatArray,
) -> FloatArray:
    """The candidate plans of :func:`_rounding_upper_bound` (rows; none when no room)."""
    base = np.maximum(lo, np.floor(r_frac + 1e-9))
    residual = need - float(base @ c)
    if residual <= need * _REL_TOL:
        return base[None, :]
    room = hi - base
    a = f / c + vp
    with_room = np.flatnonzero(room > 0)
    if with_room.shape[0] == 0:
        return np.zeros((0, c.shape[0]))
    cand = with_room[np.argsort(a[with_room], kind="stable")[:_ROUNDING_POOLS]]
    n = cand.shape[0]
    first = np.minimum(room[cand], np.floor(residual / c[cand]))  # [n]
    rest = np.maximum(residual - first * c[cand], 0.0)  # [n]
    second = np.ceil(rest[:, None] / c[cand][None, :] - 1e-12)  # [n, n]
    plans = np.repeat(base[None, :], n * n, axis=0).reshape(n, n, -1)
    idx = np.arange(n)
    plans[idx, :, cand] += first[:, None]
    plans[:, idx, cand] += second
    out: FloatArray = np.minimum(plans.reshape(n * n, -1), hi[None, :])
    return out


_ROUNDING_POOLS = 8


def _greedy_plan(
    f: FloatArray, vp: FloatArray, c: FloatArray, lo: FloatArray, hi: FloatArray, need: float
) -> FloatArray | None:
    """Fill the need from the cheapest capacity per token/s (None when it cannot be met)."""
    r = lo.copy()
    rem = need - float(lo @ c)
    for j in np.lexsort((np.arange(c.shape[0]), f / c + vp)):
        if rem <= 0:
            break
        add = min(hi[j] - lo[j], math.ceil(rem / c[j] - 1e-12))
        r[j] += add
        rem -= add * c[j]
    if rem > need * _REL_TOL + 1e-9:
        return None
    return r


def _greedy_upper_bound(
    f: FloatArray, vp: FloatArray, c: FloatArray, lo: FloatArray, hi: FloatArray, need: float
) -> float:
    r = _greedy_plan(f, vp, c, lo, hi, need)
    if r is None:
        return math.inf
    load_rem = need
    cost = float(f @ r)
    for j in range(c.shape[0]):  # pools are already in increasing vp order
        take = min(load_rem, r[j] * c[j])
        cost += vp[j] * take
        load_rem -= take
    return cost


def _empty_solution(p: Problem) -> Solution:
    r = p.lo.copy()
    load = np.zeros(p.pools)
    return Solution(r, load, float(p.fixed_per_replica @ r), "dp", True)


def solve_milp(p: Problem, time_limit_seconds: float = MILP_TIME_LIMIT_SECONDS) -> Solution | None:
    """The full problem with HiGHS. ``optimal`` is False when the time limit cut it short."""
    j_n = p.pools
    n_p = p.shares.shape[0]
    n_r = p.region_cap.shape[0]
    nx = n_p * j_n
    use_y = p.min_regions > 1
    ny = n_r if use_y else 0
    n = j_n + nx + ny
    cost = np.concatenate([p.fixed_per_replica, np.tile(p.per_token, n_p), np.zeros(ny)])
    rows: list[FloatArray] = []
    lbs: list[float] = []
    ubs: list[float] = []

    def add(row: FloatArray, lb: float, ub: float) -> None:
        rows.append(row)
        lbs.append(lb)
        ubs.append(ub)

    for k in range(n_p):
        row = np.zeros(n)
        row[j_n + k * j_n : j_n + (k + 1) * j_n] = 1.0
        add(row, float(p.shares[k] * p.need), float(p.shares[k] * p.need))
    for j in range(j_n):
        row = np.zeros(n)
        row[j] = -p.capacity[j]
        row[j_n + j : j_n + nx : j_n] = 1.0
        add(row, -np.inf, 0.0)
    row = np.zeros(n)
    row[:j_n] = 1.0
    add(row, float(p.n_min), float(p.n_max))
    for i in range(n_r):
        members = p.region_of == i
        if int(p.hi[members].sum()) > int(p.region_cap[i]):
            row = np.zeros(n)
            row[:j_n][members] = 1.0
            add(row, -np.inf, float(p.region_cap[i]))
        if use_y:
            row = np.zeros(n)
            row[:j_n][members] = 1.0
            row[j_n + nx + i] = -1.0
            add(row, 0.0, np.inf)  # y_i <= replicas in region i
    if use_y:
        row = np.zeros(n)
        row[j_n + nx :] = 1.0
        add(row, float(p.min_regions), np.inf)
    for members, cap in _shared_groups(p):
        row = np.zeros(n)
        row[:j_n][members] = p.gpus[members] if p.gpus is not None else 0.0
        add(row, -np.inf, float(cap))
    x_ub = np.where(p.allowed.reshape(-1), np.inf, 0.0)
    lower = np.concatenate([p.lo.astype(np.float64), np.zeros(nx), np.zeros(ny)])
    upper = np.concatenate([p.hi.astype(np.float64), x_ub, np.ones(ny)])
    integrality = np.concatenate([np.ones(j_n), np.zeros(nx), np.ones(ny)])
    res = milp(
        cost,
        constraints=LinearConstraint(np.array(rows), np.array(lbs), np.array(ubs)),
        bounds=Bounds(lower, upper),
        integrality=integrality,
        options={"time_limit": time_limit_seconds, "mip_rel_gap": 1e-9},
    )
    if res.x is None:
        return None
    r = np.rint(res.x[:j_n]).astype(np.int64)
    routed = route(p, r)
    if routed is None:
        return None
    load, obj = routed
    return Solution(r, load, obj, "milp", bool(res.status == 0))


def _shared_groups(p: Problem) -> list[tuple[BoolArray, int]]:
    """The quota groups whose bounds alone could exceed their GPUs: (members, Q_g)."""
    if p.gpus is None or p.group_of is None or p.group_cap_gpus is None:
        return []
    out = []
    for g, cap in enumerate(p.group_cap_gpus.tolist()):
        members = p.group_of == g
        if int(p.gpus[members] @ p.hi[members]) > cap:
            out.append((members, int(cap)))
    return out


def solve_near(p: Problem) -> Solution | None:
    """A good feasible plan, fast, without the DP's proof of optimality.

    For one population: the closed form when every pool has one capacity (exact), else the
    cheapest of the DP's own first incumbents (the LP rounded down and topped up by one or two
    pools; the greedy fill by capacity cost), then each replica dropped that is not needed.
    Falls back to :func:`solve` (exact) whenever that plan breaks a coupling constraint or
    there are several populations. For what is informative only (the explanation's runner-up).
    """
    if not _single_population(p):
        return solve(p)
    if _one_capacity(p):
        sol = solve_one_capacity(p)
        return sol if sol is None or coupling_ok(p, sol.replicas) else solve(p)
    usable = np.flatnonzero(p.hi > 0)
    if usable.shape[0] == 0:
        return solve(p)
    order = usable[np.lexsort((usable, p.per_token[usable]))]
    vmin = float(np.min(p.per_token[usable]))
    f = p.fixed_per_replica[order]
    vp = np.maximum(p.per_token[order] - vmin, 0.0)
    c = p.capacity[order]
    lo = p.lo[order].astype(np.float64)
    hi = p.hi[order].astype(np.float64)
    if p.need > float(hi @ c) * (1 + _REL_TOL) + 1e-9:
        return None
    _, r_frac, _, _ = _lp(f, vp, c, lo, hi, p.need, float(f @ lo))
    plans = _rounding_plans(f, vp, c, lo, hi, p.need, r_frac)
    greedy = _greedy_plan(f, vp, c, lo, hi, p.need)
    if greedy is not None:
        plans = np.vstack([plans, greedy[None, :]])
    if plans.shape[0] == 0:
        return solve(p)
    costs = _plan_costs(f, vp, c, plans, p.need)
    best = plans[int(np.argmin(costs))]
    while True:  # drop replicas the need does not use (cheapest plan first)
        drops = np.flatnonzero(best > lo)
        if drops.shape[0] == 0:
            break
        trial = np.repeat(best[None, :], drops.shape[0], axis=0)
        trial[np.arange(drops.shape[0]), drops] -= 1
        t_costs = _plan_costs(f, vp, c, trial, p.need)
        if float(t_costs.min()) >= float(costs.min()):
            break
        best, costs = trial[int(np.argmin(t_costs))], t_costs
    replicas = p.lo.copy()
    replicas[order] = best.astype(np.int64)
    routed = route(p, replicas)
    if routed is None or not coupling_ok(p, replicas):
        return solve(p)
    load, obj = routed
    return Solution(replicas, load, obj, "near", False)


def solve(p: Problem, hint: IntArray | None = None) -> Solution | None:
    """Exact optimum of ``p``: the fast path when its answer is feasible, else HiGHS.

    ``hint``, a plan that is probably good (the current one), only speeds the search up.
    """
    if _single_population(p):
        sol = solve_one_capacity(p) if _one_capacity(p) else solve_dp(p, hint)
        if sol is None:
            return None  # the relaxation is infeasible, so is the problem
        if coupling_ok(p, sol.replicas):
            return sol
    return solve_milp(p)


def exhaustive(p: Problem) -> Solution | None:
    """Reference optimum by enumerating every integer plan (small problems only).

    Used by the tests and the benchmark to check :func:`solve`; exponential in the pools.
    Every plan in the bounds is priced with its optimal routing (a fill in increasing ``v``
    for one population, an LP otherwise) and checked against every constraint.
    """
    import itertools

    ranges = [range(int(lo), int(hi) + 1) for lo, hi in zip(p.lo, p.hi, strict=True)]
    plans = np.array(list(itertools.product(*ranges)), dtype=np.int64).reshape(-1, p.pools)
    totals = plans.sum(axis=1)
    onehot = np.zeros((p.pools, p.region_cap.shape[0]))
    onehot[np.arange(p.pools), p.region_of] = 1.0
    per_region = plans @ onehot
    ok = (totals >= p.n_min) & (totals <= p.n_max)
    ok &= np.all(per_region <= p.region_cap[None, :] + 0.5, axis=1)
    ok &= (per_region > 0.5).sum(axis=1) >= p.min_regions
    if p.gpus is not None and p.group_of is not None and p.group_cap_gpus is not None:
        groups = np.zeros((p.pools, p.group_cap_gpus.shape[0]))
        groups[np.arange(p.pools), p.group_of] = p.gpus
        ok &= np.all(plans @ groups <= p.group_cap_gpus[None, :] + 0.5, axis=1)
    ok &= plans @ p.capacity >= p.need * (1 - 1e-9) - 1e-9
    plans = plans[ok]
    if plans.shape[0] == 0:
        return None
    if _single_population(p):
        order = np.lexsort((np.arange(p.pools), p.per_token))
        cap = plans[:, order] * p.capacity[order][None, :]
        before = np.cumsum(cap, axis=1) - cap
        load_o = np.clip(p.need - before, 0.0, cap)
        objs = plans @ p.fixed_per_replica + load_o @ p.per_token[order]
        best = int(np.argmin(objs))
        load = np.zeros(p.pools)
        load[order] = load_o[best]
        return Solution(plans[best], load, float(objs[best]), "exhaustive", True)
    found: Solution | None = None
    for r in plans:
        routed = route(p, r)
        if routed is None:
            continue
        load_r, obj = routed
        if found is None or obj < found.objective - 1e-12 * max(1.0, abs(obj)):
            found = Solution(r, load_r, obj, "exhaustive", True)
    return found
