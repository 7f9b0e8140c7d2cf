"""The simulator's accounting on cases small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.sim.conftest import ScenarioFactory
from wattscale.sim.accounting import account, count_migrations, route
from wattscale.sim.engine import replay
from wattscale.sim.model import ReplicaModel
from wattscale.sim.policies.base import IntArray, Observation
from wattscale.sim.policies.oracle import solve_oracle
from wattscale.sim.policies.static import StaticPolicy
from wattscale.sim.scenario import Scenario

pytestmark = pytest.mark.unit


class Scripted:
    """A policy that plays back a fixed schedule: {minute: replicas per region}."""

    name = "scripted"

    def __init__(self, first: list[int], changes: dict[int, list[int]]) -> None:
        self.first = np.asarray(first, dtype=np.int64)
        self.changes = changes
        self.current = self.first

    def initial(self, scenario: Scenario) -> IntArray:
        return self.first

    def decide(self, obs: Observation) -> IntArray:
        if obs.minute in self.changes:
            self.current = np.asarray(self.changes[obs.minute], dtype=np.int64)
        return self.current


def test_one_region_constant_load_and_price(scenario_from_arrays: ScenarioFactory) -> None:
    # One replica at u = 0.45 for one hour at 100 USD/MWh, 200 gCO2/kWh, 2.5 USD/GPU-hour.
    sc = scenario_from_arrays(
        np.full(60, 3150.0), [[100.0]], carbon_g_per_kwh=[[200.0]], gpu_hour_cost=2.5
    )
    r = replay(StaticPolicy(), sc)
    watts = float(sc.model.replica_watts(np.asarray(3150.0))) * 1.2  # board power x PUE
    assert 540.0 < watts / 1.2 < 560.0  # batch ~20: between the 8 and 64 anchors
    kwh = watts / 1000.0
    assert r.replica_hours == pytest.approx(1.0)
    assert r.gpu_cost == pytest.approx(2.5)
    assert r.energy_kwh == pytest.approx(kwh)
    assert r.energy_cost == pytest.approx(kwh * 0.1)
    assert r.total_cost == pytest.approx(2.5 + kwh * 0.1)
    assert r.carbon_kg == pytest.approx(kwh * 0.2)
    assert r.slo_attainment == pytest.approx(1.0)
    assert r.migrations == 0
    assert r.cold_starts == 0


def test_oracle_matches_hand_cost_when_one_replica_is_the_only_choice(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    sc = scenario_from_arrays(np.full(60, 3150.0), [[100.0]], gpu_hour_cost=2.5)
    solution = solve_oracle(sc)
    r = account("oracle", sc, solution.trajectory)
    static = replay(StaticPolicy(), sc)
    assert r.total_cost == pytest.approx(static.total_cost)
    # The solver's power is a bound below the curve: its estimate is at most the real cost.
    assert solution.objective <= r.total_cost
    assert solution.lower_bound <= solution.objective


def test_cold_start_pays_idle_power_and_gpu_time_before_ready(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    # 1 replica all hour; a second one asked for at minute 10 is Ready at minute 15.
    model = ReplicaModel(cold_start_s=300)
    sc = scenario_from_arrays(np.full(60, 3150.0), [[100.0]], gpu_hour_cost=6.0, model=model)
    r = replay(Scripted([1], {10: [2]}), sc)
    assert r.trajectory.ready[14, 0] == 1
    assert r.trajectory.ready[15, 0] == 2
    assert r.trajectory.allocated[10, 0] == 2
    assert r.replica_hours == pytest.approx(1.0 + 50 / 60)
    assert r.gpu_cost == pytest.approx(6.0 * (1.0 + 50 / 60))
    # One replica serves alone for 15 minutes, two share the load after; loading draws empty.
    one = float(sc.model.replica_watts(np.asarray(3150.0)))
    two = 2 * float(sc.model.replica_watts(np.asarray(1575.0)))
    board_wh = (15 * one + 45 * two + 5 * sc.model.empty_watts) / 60
    assert r.energy_kwh == pytest.approx(board_wh * 1.2 / 1000.0)
    assert r.cold_starts == 1


def test_no_ready_replica_means_every_request_misses(scenario_from_arrays: ScenarioFactory) -> None:
    sc = scenario_from_arrays(np.full(60, 3150.0), [[100.0]])
    r = replay(Scripted([0], {0: [1]}), sc)  # first replica Ready at minute 5
    assert r.slo_attainment == pytest.approx(55 / 60)
    assert r.unserved_requests == pytest.approx(5 * 60 * 3150.0 / 200.0)


def test_overload_beyond_capacity_misses_the_slo(scenario_from_arrays: ScenarioFactory) -> None:
    sc = scenario_from_arrays(np.full(60, 7700.0), [[100.0]])  # u = 1.1 on one replica
    r = replay(Scripted([1], {}), sc)
    assert r.slo_attainment < 0.1


def test_a_backlog_is_carried_and_its_wait_counts(scenario_from_arrays: ScenarioFactory) -> None:
    # Ten minutes at twice what one replica can serve, then a light load: the backlog drains
    # over the next minutes, and requests arriving behind it miss their TTFT.
    demand = np.concatenate([np.full(10, 2 * 7800.0), np.full(50, 1000.0)])
    sc = scenario_from_arrays(demand, [[100.0]])
    r = replay(Scripted([1], {}), sc)
    served = r.served_tokens_per_s[:, 0]
    assert served[:10] == pytest.approx(np.full(10, sc.model.max_tokens_per_s))
    assert served[10] == pytest.approx(sc.model.max_tokens_per_s)  # still draining
    assert float(np.sum(served)) == pytest.approx(float(np.sum(demand)))  # nothing lost
    light = replay(Scripted([1], {}), scenario_from_arrays(np.full(60, 1000.0), [[100.0]]))
    assert light.slo_attainment == pytest.approx(1.0)
    # Even if every light-load request were met, attainment would be its share of requests.
    light_share = 50 * 1000.0 / (50 * 1000.0 + 10 * 2 * 7800.0)
    assert r.slo_attainment < light_share - 0.05


def test_router_fills_the_cheapest_region_first() -> None:
    ready = np.array([[2.0, 2.0]])
    served = route(ready, np.array([7000.0]), np.array([[80.0, 20.0]]), safe=6300.0)
    assert served.tolist() == [[0.0, 7000.0]]
    served = route(ready, np.array([14000.0]), np.array([[80.0, 20.0]]), safe=6300.0)
    assert served.tolist() == [[1400.0, 12600.0]]


def test_router_spreads_overload_in_proportion_to_ready_replicas() -> None:
    served = route(np.array([[1.0, 3.0]]), np.array([28000.0]), np.array([[1.0, 2.0]]), 6300.0)
    assert served.sum() == pytest.approx(28000.0)
    assert served[0, 1] / served[0, 0] == pytest.approx(3.0)


def test_migrations_match_a_start_with_a_stop_elsewhere() -> None:
    starts = np.zeros((30, 2))
    stops = np.zeros((30, 2))
    starts[0, 1] = 2  # make-before-break: start in region 1 ...
    stops[6, 0] = 2  # ... stop in region 0 once Ready
    stops[7, 1] = 1  # a plain scale-down is no migration
    assert count_migrations(starts, stops, window_minutes=20) == 2


def test_negative_prices_are_kept(scenario_from_arrays: ScenarioFactory) -> None:
    sc = scenario_from_arrays(np.full(60, 3150.0), [[-50.0]], gpu_hour_cost=0.0)
    r = replay(StaticPolicy(), sc)
    assert r.energy_cost < 0
    assert r.total_cost == pytest.approx(r.energy_cost)
