"""The oracle is a lower bound: no policy beats it on total cost at equal or better SLO."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.sim.conftest import ScenarioFactory
from wattscale.sim.accounting import account
from wattscale.sim.model import ReplicaModel
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
    assert mip.objective >= lp.objective - 1e-6
    assert np.allclose(mip.trajectory.allocated, np.round(mip.trajectory.allocated))
    # The replayed schedule costs exactly what the solver said.
    assert account("oracle", short, mip.trajectory).total_cost == pytest.approx(mip.objective)
    assert account("oracle", short, lp.trajectory).total_cost == pytest.approx(lp.objective)


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
    assert account("oracle", sc, solution.trajectory).total_cost == pytest.approx(
        solution.objective
    )
