"""The one place where money, energy, carbon, SLO and migrations are counted, for every policy.

Input: per minute and region, the replicas allocated (paid for: Ready or loading), the Ready
replicas, and the replica starts and stops. The router then decides which Ready replicas serve the
minute's demand (`route`), and the totals follow:

- GPU cost = allocated replicas x gpu_hour_cost x 1/60 h;
- energy = (each Ready replica's power at its throughput + loading replicas' empty power) x PUE
  x 1/60 h (`ReplicaModel.board_watts`, calibrated on ML.ENERGY's H100 points);
- energy cost = energy x the hour's price (USD/MWh; negative prices are real and kept);
- carbon = energy x the hour's direct intensity (gCO2/kWh), where the region has carbon data;
- SLO attainment = requests meeting TTFT and TPOT SLOs / all requests, each region's backlog
  carried from minute to minute (`serve`, `model.serve_minute`);
- migrations = a replica start in one region matched with a stop in another region within
  the cold start plus 15 minutes (a move, whichever came first); `cold_starts` counts all starts;
- scale to zero: `wake_ups` counts the minutes a policy with nothing allocated starts
  replicas again, `requests_without_replica` the requests that arrived while no replica was
  Ready (asleep, or waiting for a wake-up's cold start): behind a gateway that queues them they
  wait, and they count as missing the SLO.

Replica counts may be fractional (the oracle's LP relaxation goes through the same code).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wattscale.sim import pools as pool_models
from wattscale.sim.scenario import Scenario

FloatArray = npt.NDArray[np.float64]

MIGRATION_SLACK_MINUTES = 15


@dataclass(frozen=True)
class Trajectory:
    """What a policy did, minute by minute (arrays of shape (minutes, regions))."""

    allocated: FloatArray
    ready: FloatArray
    starts: FloatArray
    stops: FloatArray


@dataclass(frozen=True)
class PolicyResult:
    """Totals and per-minute series of one policy on one scenario."""

    name: str
    total_cost: float
    energy_cost: float
    gpu_cost: float
    energy_kwh: float
    carbon_kg: float
    carbon_unknown_kwh: float
    slo_attainment: float
    replica_hours: float
    migrations: int
    cold_starts: int
    unserved_requests: float
    trajectory: Trajectory
    served_tokens_per_s: FloatArray  # (minutes, regions)
    cost_per_minute: FloatArray  # (minutes,)
    notes: tuple[str, ...] = ()
    # What the policy optimised: "cost", "carbon" or "balanced" with a carbon price (USD/t);
    # None for policies that do not price carbon (the baselines).
    objective: str | None = None
    carbon_price_per_tonne: float | None = None
    wake_ups: int = 0
    requests_without_replica: float = 0.0

    def summary(self) -> dict[str, float | int | str]:
        """The JSON keys of the issue, plus a few more."""
        return {
            "total_cost": self.total_cost,
            "energy_cost": self.energy_cost,
            "gpu_cost": self.gpu_cost,
            "energy_kwh": self.energy_kwh,
            "carbon_kg": self.carbon_kg,
            "slo_attainment": self.slo_attainment,
            "replica_hours": self.replica_hours,
            "migrations": self.migrations,
            "cold_starts": self.cold_starts,
            "carbon_unknown_kwh": self.carbon_unknown_kwh,
            "unserved_requests": self.unserved_requests,
            "objective": self.objective or "",
            "carbon_price_per_tonne": self.carbon_price_per_tonne or 0.0,
            "wake_ups": self.wake_ups,
            "requests_without_replica": self.requests_without_replica,
        }

    def carbon_price_label(self) -> str:
        """The carbon price the policy used, for tables."""
        if self.objective is None:
            return "-"
        if self.objective == "balanced":
            return f"{self.carbon_price_per_tonne or 0.0:g} USD/t"
        return "0 (cost)" if self.objective == "cost" else "carbon only"


def route(
    ready: FloatArray, demand: FloatArray, price: FloatArray, safe: float | FloatArray
) -> FloatArray:
    """Split each minute's demand (tokens/s) over Ready replicas: cheapest energy first.

    Regions are filled up to `safe` tokens/s per Ready replica in order of price; demand beyond
    every region's safe capacity is spread in proportion to Ready replicas (all run hotter).
    With variants `safe` is per column, and the spill goes in proportion to safe capacity.
    """
    minutes, regions = ready.shape
    served = np.zeros_like(ready, dtype=np.float64)
    remaining = demand.astype(np.float64).copy()
    order = np.argsort(price, axis=1, kind="stable")
    rows = np.arange(minutes)
    per_column = np.ndim(safe) > 0
    safe_c = np.broadcast_to(np.asarray(safe, dtype=np.float64), (regions,))
    for rank in range(regions):
        col = order[:, rank]
        room = ready[rows, col] * safe_c[col]
        take = np.minimum(room, remaining)
        served[rows, col] += take
        remaining -= take
    weight = ready * safe_c[None, :] if per_column else ready
    total_ready = weight.sum(axis=1)
    spill = remaining > 1e-9
    if np.any(spill):
        share = np.divide(
            weight[spill],
            total_ready[spill, None],
            out=np.zeros_like(weight[spill]),
            where=total_ready[spill, None] > 0,
        )
        served[spill] += share * remaining[spill, None]
    return served


def count_migrations(starts: FloatArray, stops: FloatArray, window_minutes: int) -> int:
    """Starts matched with stops in a different region within `window_minutes` (either order)."""
    minutes, regions = starts.shape
    pending_starts: deque[list[float]] = deque()  # [minute, region, count]
    pending_stops: deque[list[float]] = deque()
    moved = 0.0
    for t in range(minutes):
        for queue in (pending_starts, pending_stops):
            while queue and t - queue[0][0] > window_minutes:
                queue.popleft()
        for region in range(regions):
            for amount, own, other in (
                (float(starts[t, region]), pending_starts, pending_stops),
                (float(stops[t, region]), pending_stops, pending_starts),
            ):
                left = amount
                for entry in other:
                    if left <= 1e-9:
                        break
                    if entry[1] != region and entry[2] > 1e-9:
                        m = min(left, entry[2])
                        entry[2] -= m
                        left -= m
                        moved += m
                if left > 1e-9:
                    own.append([t, region, left])
    return round(moved)


def serve(
    scenario: Scenario, ready: FloatArray, routed: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Served tokens/s and the share of arrivals meeting the SLO, per minute and region.

    Each region's backlog is carried from minute to minute (`model.serve_minute`). Minutes
    without any backlog are computed all at once; the loop runs only through backlog episodes.
    """
    model, load, pools = scenario.model, scenario.load, scenario.pools
    out_mean, ctx_mean = load.mean_output_tokens, load.mean_context_tokens
    zero = np.zeros_like(routed)
    base = pool_models.serve(pools, model, ready, routed, zero, out_mean, ctx_mean)
    served = base.served_tokens_per_s.copy()
    met = base.met_share.copy()
    overflow = np.flatnonzero(np.any(base.backlog_tokens > 1e-6, axis=1))
    backlog = np.zeros(routed.shape[1])
    minutes = routed.shape[0]
    k = 0
    t = int(overflow[0]) if overflow.size else minutes
    while t < minutes:
        step = pool_models.serve(pools, model, ready[t], routed[t], backlog, out_mean, ctx_mean)
        served[t], met[t], backlog = step.served_tokens_per_s, step.met_share, step.backlog_tokens
        t += 1
        if not np.any(backlog > 1e-6):
            backlog = np.zeros_like(backlog)
            while k < overflow.size and overflow[k] < t:
                k += 1
            t = int(overflow[k]) if k < overflow.size else minutes
    return served, met


def wake_ups(allocated: FloatArray) -> int:
    """Minutes that start replicas after a minute with none allocated (a wake from zero)."""
    total = allocated.sum(axis=1)
    return int(np.count_nonzero((total[1:] > 1e-9) & (total[:-1] <= 1e-9)))


def account(
    name: str, scenario: Scenario, trajectory: Trajectory, notes: tuple[str, ...] = ()
) -> PolicyResult:
    """Cost, energy, carbon, SLO and migrations of a trajectory on a scenario."""
    model = scenario.model
    price = scenario.minute_prices()
    carbon = scenario.minute_carbon()
    demand = scenario.load.output_tokens_per_s
    pools = scenario.pools
    safe = pool_models.safe_tokens_per_s(pools, model)
    routed = route(trajectory.ready, demand, price, safe)
    served, attained = serve(scenario, trajectory.ready, routed)
    board_w = pool_models.board_watts(pools, model, trajectory.allocated, trajectory.ready, served)
    facility_kwh = board_w * model.pue / 1000.0 / 60.0
    energy_cost_m = facility_kwh * price / 1000.0
    gpu_cost_m = trajectory.allocated * scenario.gpu_hour_cost_per_column() / 60.0
    known = ~np.isnan(carbon)
    carbon_kg = float(np.sum(np.where(known, facility_kwh * np.nan_to_num(carbon), 0.0)) / 1000.0)
    unknown_kwh = float(np.sum(np.where(known, 0.0, facility_kwh)))
    # SLO: requests split like tokens; requests routed nowhere (no Ready replica) miss.
    requests = scenario.load.requests_per_s * 60.0
    total_routed = routed.sum(axis=1)
    share = np.divide(routed, demand[:, None], out=np.zeros_like(routed), where=demand[:, None] > 0)
    met = float(np.sum(requests[:, None] * share * attained))
    unserved = float(
        np.sum(np.where(demand > 0, requests * (1.0 - total_routed / np.maximum(demand, 1e-12)), 0))
    )
    all_requests = float(np.sum(requests))
    slo = met / all_requests if all_requests > 0 else 1.0
    energy_cost = float(np.sum(energy_cost_m))
    gpu_cost = float(np.sum(gpu_cost_m))
    window = model.cold_start_minutes + MIGRATION_SLACK_MINUTES
    return PolicyResult(
        name=name,
        total_cost=energy_cost + gpu_cost,
        energy_cost=energy_cost,
        gpu_cost=gpu_cost,
        energy_kwh=float(np.sum(facility_kwh)),
        carbon_kg=carbon_kg,
        carbon_unknown_kwh=unknown_kwh,
        slo_attainment=min(1.0, max(0.0, slo)),
        replica_hours=float(np.sum(trajectory.allocated) / 60.0),
        migrations=count_migrations(trajectory.starts, trajectory.stops, window),
        cold_starts=round(float(np.sum(trajectory.starts))),
        unserved_requests=max(0.0, unserved),
        trajectory=trajectory,
        served_tokens_per_s=served,
        cost_per_minute=(energy_cost_m + gpu_cost_m).sum(axis=1),
        notes=notes,
        wake_ups=wake_ups(trajectory.allocated),
        requests_without_replica=float(
            np.sum(np.where(trajectory.ready.sum(axis=1) <= 1e-9, requests, 0.0))
        ),
    )
