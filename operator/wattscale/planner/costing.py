"""Cost model: turns a PlanRequest into the optimiser's arrays and prices any replica vector.

Cost rate of pool j (one GPU product in region i) holding r_j replicas that carry load x_j of
the need N (tokens/s: headroom x the demand peak over the *sizing window*, cold start + two
control intervals, see :func:`sizing_steps`), averaged over the horizon steps t::

    gpu_hour_cost_j * r_j                                          currency/h
  + PUE_i * (r_j * idle_j + (max_j - idle_j) * x_j / N * d_t / cap_j) / 1000 * e_it   per step

where ``d_t`` is the demand forecast, ``cap_j`` the replica's capacity within the SLO and
``e_it`` the energy rate (currency/kWh, plus carbon price x gCO2/kWh / 1e6 when the objective is
``balanced``). Traffic weights ``x_j / N`` are held over the horizon, as the operator publishes
them. Averaging over the steps gives ``F_j r_j + v_j x_j``: linear, which the optimiser needs.

Negative energy prices are kept as they are in ``v_j`` (they attract load) and in every
reported cost; in the *optimised* fixed cost ``F_j`` they are floored at a tiny positive value,
so the planner never buys a replica only to burn negative-priced power: replicas follow need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .model import Objective, PlanOption, PlanRequest, PoolInput, PoolKey, RegionInput
from .optimise import FloatArray, IntArray, Problem
from .sizing import SIZING_INTERVALS, sizing_steps

__all__ = ["SIZING_INTERVALS", "Costing", "build_costing", "signals_missing", "sizing_steps"]

# Objective floor for a replica's fixed cost rate (objective unit per hour).
FIXED_COST_FLOOR = 1e-6
# In the carbon objective, money only breaks ties.
CARBON_OBJECTIVE_MONEY_WEIGHT = 1e-6
UNCAPPED = 1 << 40


@dataclass(frozen=True)
class Costing:
    """The priced pools of one request; builds Problems and PlanOptions."""

    keys: tuple[PoolKey, ...]
    region_names: tuple[str, ...]
    region_of: IntArray
    capacity: FloatArray
    quota: IntArray  # per pool: min(quota, grid cap of a one-pool region, max_replicas)
    pool_quota: IntArray  # per pool: quota (and a one-pool region's grid cap) only
    region_cap: IntArray  # per region: grid-event caps in force or announced (bounds the target)
    region_hard_cap: IntArray  # per region: caps in force only (bound the current replicas)
    hard_quota: IntArray  # per pool: like ``quota``, with only the grid caps in force
    gpus: IntArray  # per pool: GPUs per replica
    group_of: IntArray  # per pool: its quota group (its GPU product in its region)
    group_cap_gpus: IntArray  # per group: the GPU quota its variants share
    current: IntArray
    ready: IntArray
    fixed_objective: FloatArray  # F_j as optimised (floored)
    per_token_objective: FloatArray  # v_j
    fixed_money: FloatArray  # currency/h per replica (horizon average)
    per_token_money: FloatArray
    idle_facility_watts: FloatArray  # per replica, PUE included
    dynamic_facility_watts_per_token: FloatArray  # per token/s of average demand, PUE included
    idle_carbon_g_per_hour: FloatArray
    dynamic_carbon_g_per_hour_per_token: FloatArray
    cold_start_objective: FloatArray  # objective cost of one new replica's cold start
    need_tokens_per_second: float
    mean_demand_tokens_per_second: float
    shares: FloatArray
    allowed: np.ndarray  # bool [population, pool]
    horizon_hours: float

    def problem(
        self,
        req: PlanRequest,
        lo: IntArray | None = None,
        hi: IntArray | None = None,
        need: float | None = None,
    ) -> Problem:
        """The optimisation problem, with optional tighter bounds or another need."""
        lo_a = np.zeros_like(self.quota) if lo is None else lo
        hi_a = self.quota.copy() if hi is None else np.minimum(hi, self.quota)
        lo_a = np.minimum(lo_a, hi_a)
        need_v = self.need_tokens_per_second if need is None else need
        # min_regions is about spreading replicas: vacuous when no replica is needed at all.
        spread = need_v > 0 or req.min_replicas > 0 or int(lo_a.sum()) > 0
        return Problem(
            fixed_per_replica=self.fixed_objective,
            per_token=self.per_token_objective,
            capacity=self.capacity,
            lo=lo_a,
            hi=hi_a,
            region_of=self.region_of,
            region_cap=self.region_cap,
            need=need_v,
            shares=self.shares,
            allowed=self.allowed,
            n_min=req.min_replicas,
            n_max=req.max_replicas,
            min_regions=req.min_regions if spread else 0,
            single_population=self.shares.shape[0] == 1
            or bool(np.all(self.allowed[np.ix_(self.shares > 0, hi_a > 0)])),
            gpus=self.gpus,
            group_of=self.group_of,
            group_cap_gpus=self.group_cap_gpus,
        )

    def as_mapping(self, r: IntArray) -> dict[PoolKey, int]:
        """Replica vector as {pool: replicas}."""
        return {k: int(v) for k, v in zip(self.keys, r, strict=True)}

    def vector(self, replicas: dict[PoolKey, int]) -> IntArray:
        """{pool: replicas} as a vector (missing pools are 0)."""
        return np.array([replicas.get(k, 0) for k in self.keys], dtype=np.int64)

    def option(self, r: IntArray, load: FloatArray) -> PlanOption:
        """Price plan ``r`` routed as ``load`` (tokens/s of the need per pool)."""
        n = self.need_tokens_per_second
        scale = self.mean_demand_tokens_per_second / n if n > 0 else 0.0
        avg_load = load * scale
        return PlanOption(
            replicas=self.as_mapping(r),
            cost_per_hour=float(self.fixed_money @ r + self.per_token_money @ load),
            objective_per_hour=float(self.fixed_objective @ r + self.per_token_objective @ load),
            energy_watts=float(
                self.idle_facility_watts @ r + self.dynamic_facility_watts_per_token @ avg_load
            ),
            carbon_g_per_hour=float(
                self.idle_carbon_g_per_hour @ r
                + self.dynamic_carbon_g_per_hour_per_token @ avg_load
            ),
            capacity_tokens_per_second=float(self.capacity @ r),
        )

    def move_cost(self, r_from: IntArray, r_to: IntArray) -> float:
        """Objective cost of the cold starts a move from ``r_from`` to ``r_to`` needs."""
        added = np.maximum(r_to - r_from, 0)
        return float(self.cold_start_objective @ added)


def _finite(x: float | None) -> float | None:
    """``x`` if it is a finite number, else None (a missing signal)."""
    return x if x is not None and math.isfinite(x) else None


def _series(now: float | None, forecast: tuple[float, ...], steps: int) -> FloatArray | None:
    """Value per horizon step: ``now`` first, then the forecast (non-finite points dropped)."""
    now = _finite(now)
    points = [float(x) for x in forecast[:steps] if math.isfinite(x)]
    if not points:
        return None if now is None else np.full(steps, now)
    points.extend([points[-1]] * (steps - len(points)))
    if now is not None:
        points[0] = now
    return np.array(points, dtype=np.float64)


def signals_missing(region: RegionInput) -> bool:
    """Whether a region's energy signals are stale, missing or not finite."""
    return (
        not region.price_fresh
        or not region.carbon_fresh
        or _finite(region.price_per_kwh) is None
        or _finite(region.carbon_g_per_kwh) is None
    )


def _usable(x: float) -> float:
    return x if math.isfinite(x) and x > 0 else 0.0


def _allowed(req: PlanRequest, regions: list[RegionInput], n_pools: list[int]) -> np.ndarray:
    lat = req.latency
    if lat is None or not lat.populations:
        return np.ones((1, sum(n_pools)), dtype=bool)
    rows = []
    for pop in lat.populations:
        row: list[bool] = []
        for reg, n in zip(regions, n_pools, strict=True):
            ok = reg.rtt_ms.get(pop.name, 0.0) + lat.service_ttft_ms <= lat.ttft_slo_ms
            row.extend([ok] * n)
        rows.append(row)
    return np.array(rows, dtype=bool)


def _shares(req: PlanRequest) -> FloatArray:
    lat = req.latency
    if lat is None or not lat.populations:
        return np.ones(1)
    s = np.array([max(p.demand_share, 0.0) for p in lat.populations], dtype=np.float64)
    total = float(s.sum())
    return s / total if total > 0 else np.full(s.shape[0], 1.0 / s.shape[0])


def _quota_groups(regions: list[RegionInput]) -> tuple[IntArray, IntArray, IntArray]:
    """GPUs per replica and quota group of each pool (in :func:`build_costing`'s order), and
    each group's GPU quota: the variants of one product in one region share the largest
    ``quota_replicas x gpus_per_replica`` any of them states (the Region's quota, up to
    rounding to whole replicas)."""
    gpus: list[int] = []
    group_of: list[int] = []
    index: dict[tuple[str, str], int] = {}
    caps: list[int] = []
    for reg in regions:
        for pool in sorted(reg.pools, key=lambda p: (p.gpu_product, p.variant)):
            g = max(pool.gpus_per_replica, 1)
            group = index.setdefault((reg.name, pool.gpu_product), len(caps))
            if group == len(caps):
                caps.append(0)
            caps[group] = max(caps[group], max(pool.quota_replicas, 0) * g)
            gpus.append(g)
            group_of.append(group)
    i64 = np.int64
    return np.array(gpus, dtype=i64), np.array(group_of, dtype=i64), np.array(caps, dtype=i64)


_COLUMNS = ("cap", "fo", "vo", "fm", "vm", "idle_w", "dyn_w", "idle_c", "dyn_c", "cold")
"""Per pool: capacity, objective and money cost rates (fixed per replica, per token of load),
facility watts and carbon (idle, per token), and the objective's cost of a cold start."""


@dataclass(frozen=True, slots=True)
class _Energy:
    """One region's energy rates over the horizon: plain means (what an idle replica pays) and
    means weighted by the demand's share of the need (what the load-proportional part pays)."""

    objective: float
    money: float
    carbon: float
    objective_load: float
    money_load: float


def _energy(req: PlanRequest, regions: list[RegionInput], d_share: FloatArray) -> list[_Energy]:
    """Each region's :class:`_Energy`; a missing signal is priced pessimistically (the
    dearest or dirtiest region's value)."""
    steps = d_share.shape[0]
    known_prices = [x for r in regions if (x := _finite(r.price_per_kwh)) is not None]
    known_carbon = [x for r in regions if (x := _finite(r.carbon_g_per_kwh)) is not None]
    fallback_price = max(known_prices) if known_prices else 0.0
    fallback_carbon = max(known_carbon) if known_carbon else 0.0
    # Energy series per region (rows) over the horizon steps (columns), then their means.
    price_rows = []
    carbon_rows = []
    for reg in regions:
        price_s = _series(reg.price_per_kwh, reg.price_forecast_per_kwh, steps)
        carbon_s = _series(reg.carbon_g_per_kwh, reg.carbon_forecast_g_per_kwh, steps)
        price_rows.append(np.full(steps, fallback_price) if price_s is None else price_s)
        carbon_rows.append(np.full(steps, fallback_carbon) if carbon_s is None else carbon_s)
    n_reg = len(regions)
    price_m = np.array(price_rows).reshape(n_reg, steps)
    carbon_m = np.array(carbon_rows).reshape(n_reg, steps)
    if req.objective is Objective.COST:
        e_obj_m = price_m
    elif req.objective is Objective.BALANCED:
        e_obj_m = price_m + req.carbon_price_per_tonne / 1e6 * carbon_m
    else:
        e_obj_m = carbon_m + CARBON_OBJECTIVE_MONEY_WEIGHT * price_m
    # Load-weighted means for the load-proportional part (traffic weights are fixed).
    return [
        _Energy(*values)
        for values in zip(
            e_obj_m.mean(axis=1).tolist(),
            price_m.mean(axis=1).tolist(),
            carbon_m.mean(axis=1).tolist(),
            (e_obj_m @ d_share / steps).tolist(),
            (price_m @ d_share / steps).tolist(),
            strict=True,
        )
    ]


def _event_caps(reg: RegionInput) -> tuple[int, int]:
    """A region's replica caps from a grid event: announced or in force (bounds the target),
    and in force only (bounds the replicas running now)."""
    event = reg.grid_event
    if event is None or event.ends_in_seconds <= 0:
        return UNCAPPED, UNCAPPED
    cap = max(event.max_replicas, 0)
    return cap, cap if event.in_force else UNCAPPED


def _pool_row(
    pool: PoolInput, pue: float, energy: _Energy, gpu_weight: float, cold_start_seconds: float
) -> tuple[int, dict[str, float]]:
    """A pool's quota (0 when it cannot serve: no capacity or no finite GPU price) and its
    :data:`_COLUMNS`."""
    cap = _usable(pool.capacity_tokens_per_second)
    usable = cap > 0 and math.isfinite(pool.gpu_hour_cost_per_replica)
    gpu_cost = pool.gpu_hour_cost_per_replica if usable else 0.0
    idle_w = _usable(pool.idle_watts) if usable else 0.0  # bad watts count as 0 W
    max_w = max(_usable(pool.max_watts), idle_w) if usable else 0.0
    cap_safe = cap if usable else 1.0
    idle_kw = idle_w * pue / 1000.0
    dyn_kw_per_token = (max_w - idle_w) * pue / 1000.0 / cap_safe
    fo = gpu_weight * gpu_cost + idle_kw * energy.objective
    cold_h = max(cold_start_seconds, 0.0) / 3600.0
    row = {
        "cap": cap,
        "fo": max(fo, FIXED_COST_FLOOR),
        "vo": dyn_kw_per_token * energy.objective_load,
        "fm": gpu_cost + idle_kw * energy.money,
        "vm": dyn_kw_per_token * energy.money_load,
        "idle_w": idle_kw * 1000.0,
        "dyn_w": dyn_kw_per_token * 1000.0,
        "idle_c": idle_kw * energy.carbon,
        "dyn_c": dyn_kw_per_token * energy.carbon,
        "cold": cold_h * max(fo, 0.0),
    }
    return (max(pool.quota_replicas, 0) if usable else 0), row


def build_costing(req: PlanRequest, need: float | None = None) -> Costing:
    """Price every pool of ``req`` over its horizon (see the module docstring).

    ``need``: the capacity to cover (:func:`wattscale.planner.sizing.size`); without it, the
    fixed headroom (1 when derived) x the forecast's peak over the sizing window."""
    regions = sorted(req.regions, key=lambda r: r.name)
    demand = np.array(req.demand_tokens_per_second or (0.0,), dtype=np.float64)
    demand = np.maximum(np.nan_to_num(demand, nan=0.0), 0.0)
    steps = demand.shape[0]
    if need is None:
        peak = float(demand[: sizing_steps(req, steps)].max())
        need = peak * max(req.headroom or 1.0, 1.0)
    d_share = demand / need if need > 0 else np.zeros(steps)
    energy = _energy(req, regions, d_share)
    gpu_weight = CARBON_OBJECTIVE_MONEY_WEIGHT if req.objective is Objective.CARBON else 1.0

    keys: list[PoolKey] = []
    cols: dict[str, list[float]] = {k: [] for k in _COLUMNS}
    quota: list[int] = []
    hard_quota: list[int] = []
    current: list[int] = []
    ready: list[int] = []
    region_of: list[int] = []
    region_cap: list[int] = []
    region_hard_cap: list[int] = []
    n_pools: list[int] = []
    for i, reg in enumerate(regions):
        pue = reg.pue if math.isfinite(reg.pue) and reg.pue >= 1.0 else 1.0
        cap_i, hard_i = _event_caps(reg)
        region_cap.append(cap_i)
        region_hard_cap.append(hard_i)
        pools = sorted(reg.pools, key=lambda p: (p.gpu_product, p.variant))
        n_pools.append(len(pools))
        for pool in pools:
            keys.append(pool.key(reg.name))
            region_of.append(i)
            q, row = _pool_row(pool, pue, energy[i], gpu_weight, req.cold_start_seconds)
            quota.append(q)
            hard_quota.append(q)
            current.append(max(pool.current_replicas, 0))
            ready.append(max(pool.ready_replicas, 0))
            for k in _COLUMNS:
                cols[k].append(row[k])
        if len(pools) == 1:  # a single-pool region's cap is a pool bound
            quota[-1] = min(quota[-1], cap_i)
            hard_quota[-1] = min(hard_quota[-1], hard_i)
    arr = {k: np.array(v, dtype=np.float64) for k, v in cols.items()}
    gpus, group_of, group_cap = _quota_groups(regions)
    horizon_hours = steps * max(req.horizon_step_seconds, 0.0) / 3600.0
    return Costing(
        keys=tuple(keys),
        region_names=tuple(r.name for r in regions),
        region_of=np.array(region_of, dtype=np.int64),
        capacity=arr["cap"],
        quota=np.minimum(np.array(quota, dtype=np.int64), max(req.max_replicas, 0)),
        pool_quota=np.array(quota, dtype=np.int64),
        hard_quota=np.minimum(np.array(hard_quota, dtype=np.int64), max(req.max_replicas, 0)),
        gpus=gpus,
        group_of=group_of,
        group_cap_gpus=group_cap,
        region_cap=np.array(region_cap, dtype=np.int64),
        region_hard_cap=np.array(region_hard_cap, dtype=np.int64),
        current=np.array(current, dtype=np.int64),
        ready=np.array(ready, dtype=np.int64),
        fixed_objective=arr["fo"],
        per_token_objective=arr["vo"],
        fixed_money=arr["fm"],
        per_token_money=arr["vm"],
        idle_facility_watts=arr["idle_w"],
        dynamic_facility_watts_per_token=arr["dyn_w"],
        idle_carbon_g_per_hour=arr["idle_c"],
        dynamic_carbon_g_per_hour_per_token=arr["dyn_c"],
        cold_start_objective=arr["cold"],
        need_tokens_per_second=need,
        mean_demand_tokens_per_second=float(demand.mean()),
        shares=_shares(req),
        allowed=_allowed(req, regions, n_pools),
        horizon_hours=horizon_hours,
    )
