"""`oracle`: the offline optimum with perfect foresight of load and prices, solved with HiGHS.

Variables per minute t and region i: replicas allocated n (Ready or loading), replica starts s,
and tokens/s routed x. Constraints, the same as the simulator's:

- starts: s[t,i] >= n[t,i] - n[t-1,i] (the replicas at minute 0 are Ready for free, as for every
  policy's warm start);
- cold start: Ready[t,i] = n[t,i] - sum of s[t-L+1..t, i] (a start is Ready L minutes later);
- routing: x[t,i] <= safe tokens/s x Ready[t,i]; sum_i x[t,i] = demand[t];
- integer Ready replicas: sum_i Ready[t,i] >= ceil(demand[t] / safe tokens/s) and >= minReplicas
  (valid for any real policy, whose Ready counts are whole numbers; it tightens the relaxation);
- quota: n[t,i] <= quota_i.

Objective: GPU-hours + energy x price, with a replica's power replaced by an affine function
below the replica model's power curve (`ReplicaModel.power_lower_bound`: a + s x <= P(x) for
every throughput x a replica can serve; the intercept is also kept at or below a loading
replica's empty power), and above it (`power_upper_bound`) in minutes of negative prices, where
more power costs less. Like the planner, the oracle does not hold replicas only to be paid for
burning negative-priced power (idle energy is priced at max(price, 0) in its objective). Its
schedule is then accounted like every policy's (real prices, the real power curve, the queue).

The schedule keeps every minute within the safe utilisation. The reported `lower_bound` comes
from a second LP: the same, but Ready replicas may serve up to their largest batch
(`max_tokens_per_s`) and idle energy is priced as it is. Its optimum is a proven lower bound on
the cost of any schedule, fractional or whole, that serves each minute's demand within that
minute: such a schedule is a feasible point of the LP, and the LP's objective never exceeds the
accounting's cost of the same schedule (power under-estimated, every other term exact).
`integer=True` asks for the MILP (whole replicas and starts) within a time limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, csr_matrix

from wattscale.sim.accounting import Trajectory
from wattscale.sim.errors import SimInputError
from wattscale.sim.scenario import Scenario

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OracleSolution:
    """The oracle's schedule and how it was obtained."""

    trajectory: Trajectory
    objective: float
    lower_bound: float
    integer: bool
    status: str
    solve_seconds: float
    solved_objective: float = 0.0
    """What the solver minimised (idle energy at max(price, 0), power under-estimated)."""

    @property
    def label(self) -> str:
        if self.integer:
            return "MILP (whole replicas)"
        return "LP relaxation"


class _Builder:
    """Sparse constraint rows, appended block by block."""

    def __init__(self) -> None:
        self.rows: list[npt.NDArray[np.int64]] = []
        self.cols: list[npt.NDArray[np.int64]] = []
        self.vals: list[FloatArray] = []
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []
        self.count = 0

    def block(self, n_rows: int, lo: FloatArray, hi: FloatArray) -> int:
        first = self.count
        self.count += n_rows
        self.lo.append(np.broadcast_to(lo, (n_rows,)).astype(np.float64))
        self.hi.append(np.broadcast_to(hi, (n_rows,)).astype(np.float64))
        return first

    def add(self, rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], value: float) -> None:
        self.rows.append(rows.astype(np.int64))
        self.cols.append(cols.astype(np.int64))
        self.vals.append(np.full(rows.shape[0], value))

    def constraint(self, n_vars: int) -> LinearConstraint:
        matrix = coo_matrix(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(self.count, n_vars),
        )
        return LinearConstraint(
            csr_matrix(matrix), np.concatenate(self.lo), np.concatenate(self.hi)
        )


def solve_oracle(
    scenario: Scenario, integer: bool = False, time_limit_s: float = 600.0
) -> OracleSolution:
    """Solve the whole-horizon problem and return the schedule as a trajectory.

    Like the planner, the oracle does not hold a replica only to be paid for burning
    negative-priced power: in its objective a replica's idle energy is priced at max(price, 0)
    (load still goes where power is cheapest, negative prices included). Its schedule is then
    costed at the real prices. When the period has negative prices, the unrestricted LP is
    solved as well and its optimum is the reported `lower_bound`.
    """
    model = scenario.model
    solution = _solve(scenario, integer, time_limit_s, True, model.safe_tokens_per_s)
    bound = _solve(scenario, False, time_limit_s, False, model.max_tokens_per_s)
    return replace(
        solution,
        lower_bound=min(bound.lower_bound, solution.lower_bound),
        solve_seconds=solution.solve_seconds + bound.solve_seconds,
    )


def _solve(
    scenario: Scenario,
    integer: bool,
    time_limit_s: float,
    floor_idle_price: bool,
    per_replica_tokens_per_s: float,
) -> OracleSolution:
    minutes, regions = scenario.minutes, len(scenario.regions)
    size = minutes * regions
    n_vars = 3 * size + regions  # held n, starts s, routed x (minute-major), initial n
    per_replica, per_replica_true, per_token = _cost_rates(scenario, floor_idle_price)
    cost = np.concatenate(
        [per_replica.ravel(), np.zeros(size), per_token.ravel(), np.zeros(regions)]
    )
    demand = scenario.load.output_tokens_per_s
    quota = np.asarray(scenario.quota, dtype=np.float64)
    need = np.maximum(np.ceil(demand / per_replica_tokens_per_s - 1e-9), scenario.min_replicas)
    if float(np.max(need)) > float(quota.sum()):
        raise SimInputError("the oracle cannot serve the peak within the per-region quotas")
    b = _rows(scenario, need, per_replica_tokens_per_s)
    upper = np.concatenate(
        [
            np.tile(quota, minutes),
            np.tile(quota, minutes),
            np.full(size, np.inf),
            quota,
        ]
    )
    integrality = np.zeros(n_vars)
    if integer:
        integrality[: 2 * size] = 1
        integrality[3 * size :] = 1
    began = time.monotonic()
    result = milp(
        cost,
        constraints=b.constraint(n_vars),
        bounds=Bounds(np.zeros(n_vars), upper),
        integrality=integrality,
        options={"time_limit": time_limit_s, "disp": False},
    )
    elapsed = time.monotonic() - began
    if result.x is None:
        raise SimInputError(f"the oracle found no schedule: {result.message}")
    sol = np.asarray(result.x, dtype=np.float64)
    n, trajectory = _schedule(sol, minutes, regions, scenario.model.cold_start_minutes)
    bound = float(result.fun)
    if integer:
        bound = float(getattr(result, "mip_dual_bound", None) or result.fun)
    # The schedule at the real prices (differs from result.fun only with floored idle prices).
    x = sol[2 * size : 3 * size].reshape(minutes, regions)
    true_cost = float(np.sum(n * per_replica_true) + np.sum(x * per_token))
    return OracleSolution(
        trajectory=trajectory,
        objective=true_cost,
        lower_bound=bound,
        integer=integer,
        status=str(result.message),
        solve_seconds=elapsed,
        solved_objective=float(result.fun),
    )


def _cost_rates(
    scenario: Scenario, floor_idle_price: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """USD per minute and region: per allocated replica as optimised (idle power at
    max(price, 0) when ``floor_idle_price``) and at the real prices, and per routed token/s."""
    model = scenario.model
    price = scenario.minute_prices()  # (T, R) USD/MWh
    usd_per_kwh = price / 1000.0
    idle_usd_per_kwh = np.maximum(usd_per_kwh, 0.0) if floor_idle_price else usd_per_kwh
    ready_watts, watts_per_token = model.power_lower_bound
    upper_watts, _ = model.power_upper_bound
    kwh = model.pue / 1000.0 / 60.0  # per W held for a minute, at the meter
    # Per allocated replica (Ready or loading): GPU time and a bound on the power of either
    # state, below it where power costs money and above it where prices are negative (there
    # more power costs less); per routed token/s: the common slope.
    floor_watts = np.where(
        usd_per_kwh < 0,
        max(upper_watts, model.empty_watts),
        min(ready_watts, model.empty_watts),
    )
    per_replica_true = scenario.gpu_hour_cost / 60.0 + floor_watts * kwh * usd_per_kwh
    per_replica = scenario.gpu_hour_cost / 60.0 + floor_watts * kwh * idle_usd_per_kwh
    per_token = watts_per_token * kwh * usd_per_kwh
    return per_replica, per_replica_true, per_token


def _rows(scenario: Scenario, need: npt.NDArray[np.float64], safe: float) -> _Builder:
    """The LP's rows: starts, routing within the safe utilisation of Ready replicas, demand
    served every minute, and the whole-replica cut ``sum_i Ready >= need``."""
    minutes, regions = scenario.minutes, len(scenario.regions)
    lag = scenario.model.cold_start_minutes
    size = minutes * regions
    n_off, s_off, x_off, init_off = 0, size, 2 * size, 3 * size

    def idx(
        offset: int, t: npt.NDArray[np.int64], i: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        return np.asarray(offset + t * regions + i, dtype=np.int64)

    grid_t, grid_i = np.meshgrid(np.arange(minutes), np.arange(regions), indexing="ij")
    tt, ii = grid_t.ravel(), grid_i.ravel()
    b = _Builder()
    # starts: n[t] - n[t-1] - s[t] <= 0 (n[-1] is the free initial allocation).
    first = b.block(size, np.array(-np.inf), np.array(0.0))
    rows = first + np.arange(size)
    b.add(rows, idx(n_off, tt, ii), 1.0)
    b.add(rows, idx(s_off, tt, ii), -1.0)
    later = tt > 0
    b.add(rows[later], idx(n_off, tt[later] - 1, ii[later]), -1.0)
    b.add(rows[~later], init_off + ii[~later], -1.0)

    def ready_terms(
        rows: npt.NDArray[np.int64],
        t: npt.NDArray[np.int64],
        i: npt.NDArray[np.int64],
        scale: float,
    ) -> None:
        b.add(rows, idx(n_off, t, i), scale)
        for k in range(lag):
            ok = t - k >= 0
            b.add(rows[ok], idx(s_off, t[ok] - k, i[ok]), -scale)

    # routing: x - safe * Ready <= 0.
    first = b.block(size, np.array(-np.inf), np.array(0.0))
    rows = first + np.arange(size)
    b.add(rows, idx(x_off, tt, ii), 1.0)
    ready_terms(rows, tt, ii, -safe)
    # demand: sum_i x = D.
    demand = scenario.load.output_tokens_per_s
    first = b.block(minutes, demand, demand)
    b.add(first + tt, idx(x_off, tt, ii), 1.0)
    # whole Ready replicas: sum_i Ready >= need.
    first = b.block(minutes, need, np.array(np.inf))
    ready_terms(first + tt, tt, ii, 1.0)
    return b


def _schedule(
    sol: npt.NDArray[np.float64], minutes: int, regions: int, lag: int
) -> tuple[npt.NDArray[np.float64], Trajectory]:
    """The held replicas and the trajectory (Ready after ``lag`` minutes of loading) of the
    solution vector ``sol``."""
    size = minutes * regions
    n = sol[:size].reshape(minutes, regions)
    init = sol[3 * size :]
    # Tidy solver round-off so the replay sees clean counts.
    n = np.where(np.abs(n - np.round(n)) < 1e-7, np.round(n), n)
    prev = np.vstack([init[None, :], n[:-1]])
    stops = np.maximum(prev - n, 0.0)
    starts = np.maximum(n - prev, 0.0)  # <= s: at the optimum the extra s buys nothing
    ready = n.copy()
    for k in range(lag):
        ready[k:] -= starts[: minutes - k]
    ready = np.maximum(ready, 0.0)
    return n, Trajectory(allocated=n, ready=ready, starts=starts, stops=stops)
