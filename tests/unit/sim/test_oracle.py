"""The oracle is a lower bound: no policy beats it on total cost at equal or better SLO."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.sim.conftest import ScenarioFactory, make_scenario
from wattscale.sim.accounting import account
from wattscale.sim.engine import replay
from wattscale.sim.model import ReplicaModel
from wattscale.sim.policies.base import IntArray, Observation
from wattscale.sim.policies.oracle import solve_oracle
from wattscale.sim.run import POLICY_NAMES, simulate
from wattscale.sim.scenario import Scenario

pytestmark = pytest.mark.unit


def _random_instance(
    factory: ScenarioFactory, seed: int, gpu_hour_cost: float, hours: int = 8
) -> Scenario:
    rng = np.random.default_rng(seed)
    minutes = hours * 60
    t = np.arange(minutes)
    shape = 0.55 + 0.45 * np.sin(2 * np.pi * t / minutes + rng.uniform(0, 6)) ** 2
    steps = np.repeat(rng.uniform(0.8, 1.2, minutes // 10), 10)
    demand = 6300.0 * 4 * shape * steps / (shape * steps).max()
    prices = rng.uniform(-10, 150, (hours + 24, 3))
    carbon = rng.uniform(50, 500, (hours, 3))
    model = ReplicaModel(cold_start_s=int(rng.choice([60, 300, 600])))
    return factory(demand, prices, carbon, gpu_hour_cost=gpu_hour_cost, model=model, quota=8)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gpu_hour_cost", [0.0, 2.5])
def test_no_policy_beats_the_oracle_at_equal_slo(
    scenario_from_arrays: ScenarioFactory, seed: int, gpu_hour_cost: float
) -> None:
    sc = _random_instance(scenario_from_arrays, seed, gpu_hour_cost)
    names = [n for n in POLICY_NAMES if n != "wattscale"]
    result = simulate(sc, names)
    oracle = result.results["oracle"]
    assert result.oracle is not None
    assert result.oracle.lower_bound <= oracle.total_cost + 1e-9
    for name, r in result.results.items():
        if r.slo_attainment >= oracle.slo_attainment - 1e-9:
            assert r.total_cost >= oracle.total_cost - 1e-9, name
            assert r.total_cost >= result.oracle.lower_bound - 1e-9, name


@pytest.mark.parametrize("seed", range(2))
def test_the_integer_oracle_is_no_cheaper_than_its_relaxation(
    scenario_from_arrays: ScenarioFactory, seed: int
) -> None:
    short = _random_instance(scenario_from_arrays, seed, 2.5, hours=2)
    lp = solve_oracle(short)
    mip = solve_oracle(short, integer=True, time_limit_s=30)
    assert mip.solved_objective >= lp.solved_objective - 1e-6
    assert np.allclose(mip.trajectory.allocated, np.round(mip.trajectory.allocated))
    # The solver under-estimates power (an affine bound below the curve), nothing else.
    for solution in (mip, lp):
        accounted = account("oracle", short, solution.trajectory).total_cost
        assert solution.objective - 1e-9 <= accounted <= solution.objective * 1.05


def test_the_oracle_holds_no_replica_only_to_burn_negative_priced_power(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    # One replica is enough all along; an hour of -100 USD/MWh must not attract idle replicas.
    prices = np.array([[50.0], [-100.0], [50.0]] + [[50.0]] * 24)
    sc = scenario_from_arrays(np.full(180, 3000.0), prices, gpu_hour_cost=0.0, quota=8)
    solution = solve_oracle(sc)
    assert float(solution.trajectory.allocated.max()) == pytest.approx(1.0)
    # The unrestricted LP would fill the quota in that hour: its optimum is the bound.
    assert solution.lower_bound < solution.objective
    assert account("oracle", sc, solution.trajectory).total_cost >= solution.objective - 1e-9


class PerfectForesight:
    """Whole replicas with perfect foresight: each minute's Ready count is the fewest that serve
    that minute within `utilisation` of capacity, all in the region cheapest at that hour,
    started a cold start ahead."""

    name = "foresight"

    def __init__(self, scenario: Scenario, utilisation: float) -> None:
        model = scenario.model
        lag = model.cold_start_minutes
        per = model.capacity_tokens_per_s * utilisation
        need = np.maximum(np.ceil(scenario.load.output_tokens_per_s / per - 1e-9), 1)
        prices = scenario.minute_prices()
        self.plan = np.zeros((scenario.minutes + lag, len(scenario.regions)), dtype=np.int64)
        for t in range(scenario.minutes):
            self.plan[t, int(np.argmin(prices[t]))] = int(need[t])
        self.lag = lag

    def initial(self, scenario: Scenario) -> IntArray:
        return np.asarray(self.plan[0], dtype=np.int64)

    def decide(self, obs: Observation) -> IntArray:
        # Hold what minute t needs Ready now and what t + lag needs, started now.
        ahead = self.plan[min(obs.minute + self.lag, self.plan.shape[0] - 1)]
        return np.asarray(
            np.maximum(np.maximum(self.plan[obs.minute], ahead), obs.ready * 0), dtype=np.int64
        )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    gpu_hour_cost=st.sampled_from([0.0, 2.5]),
    utilisation=st.floats(0.5, 1.1),
)
def test_a_perfect_foresight_planner_never_beats_the_bound_at_equal_slo(
    seed: int, gpu_hour_cost: float, utilisation: float
) -> None:
    sc = _random_instance(make_scenario, seed, gpu_hour_cost, hours=3)
    solution = solve_oracle(sc)
    oracle = account("oracle", sc, solution.trajectory)
    planner = replay(PerfectForesight(sc, utilisation), sc)
    if planner.slo_attainment >= oracle.slo_attainment - 1e-9:
        assert planner.total_cost >= solution.lower_bound - 1e-9
    assert solution.lower_bound <= oracle.total_cost + 1e-9
