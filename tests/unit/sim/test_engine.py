"""The replay loop shows policies only the past and published prices; wattscale runs the planner."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from tests.unit.sim.conftest import ScenarioFactory
from wattscale.planner import PlanRequest
from wattscale.sim.engine import replay
from wattscale.sim.policies.base import IntArray, MinuteReadings, Observation
from wattscale.sim.policies.wattscale import WattscalePolicy
from wattscale.sim.run import simulate
from wattscale.sim.scenario import READING_WINDOW_SECONDS, Scenario

pytestmark = pytest.mark.unit


class Spy:
    """Holds one replica and records what it was shown."""

    name = "spy"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int, int]] = []

    def initial(self, scenario: Scenario) -> IntArray:
        return np.array([1], dtype=np.int64)

    def decide(self, obs: Observation) -> IntArray:
        self.seen.append(
            (
                obs.minute,
                obs.past_demand_tokens_per_s.shape[0],
                obs.known_prices_usd_mwh.shape[0],
                obs.past_carbon_g_per_kwh.shape[0],
            )
        )
        return np.array([1], dtype=np.int64)


def test_policies_see_the_past_and_published_prices_only(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    minutes = 6 * 60
    prices = np.arange(30.0)[:, None] + 10.0
    sc = scenario_from_arrays(np.full(minutes, 1000.0), prices)  # no table: real-time
    spy = Spy()
    replay(spy, sc)
    for minute, past, hours, carbon in spy.seen:
        assert past == minute
        assert hours == minute // 60 + 1
        assert carbon == minute // 60 + 1
    # The hour being served is unknown: the last completed hour's price is carried forward.
    view = sc.known_prices(125)
    assert view[1, 0] == prices[1, 0]
    assert view[2, 0] == prices[1, 0]


@pytest.mark.parametrize("gpu_hour_cost", [0.0, 2.5])
def test_wattscale_meets_the_slo_and_does_not_beat_the_oracle(
    scenario_from_arrays: ScenarioFactory, gpu_hour_cost: float
) -> None:
    minutes = 2 * 60
    t = np.arange(minutes)
    demand = 6300.0 * (2.0 + 1.5 * np.sin(2 * np.pi * t / minutes) ** 2)
    prices = np.column_stack([np.full(26, 80.0), np.linspace(20.0, 120.0, 26)])
    sc = scenario_from_arrays(demand, prices, gpu_hour_cost=gpu_hour_cost, quota=10)
    result = simulate(sc, ["wattscale", "static", "oracle"])
    ws, oracle = result.results["wattscale"], result.results["oracle"]
    assert ws.slo_attainment >= 0.99
    if ws.slo_attainment >= oracle.slo_attainment:
        assert ws.total_cost >= oracle.total_cost
    assert ws.total_cost < result.results["static"].total_cost


@pytest.mark.parametrize("name", ["reactive", "greedy"])
def test_hpa_baselines_hold_their_warm_start_before_anything_is_measured(
    scenario_from_arrays: ScenarioFactory, name: str
) -> None:
    # Minute 0 has no past minute to measure: that is no utilisation of 0, so the HPA holds
    # the replicas it started warm with instead of scaling to its floor.
    demand = np.full(30, 20_000.0)
    scenario = scenario_from_arrays(demand, np.array([[50.0, 40.0]]))
    result = simulate(scenario, [name]).results[name]
    first = result.trajectory.allocated[0].sum()
    assert first >= np.ceil(20_000.0 / (scenario.model.capacity_tokens_per_s * 0.7))
    assert result.slo_attainment == pytest.approx(1.0)


def test_every_policy_starts_as_a_running_one_not_sized_on_one_minute(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    # The deployment was serving 30,000 tok/s before the start; the first minute of the period
    # is a dip to half. A policy that had been running holds what its scale-down window kept,
    # not a fleet sized on that one minute, which the next minute's load would overrun.
    level = 30_000.0
    history = np.full(2 * 60, level)
    demand = np.r_[level / 2, np.full(29, level)]
    scenario = scenario_from_arrays(
        demand, np.array([[50.0, 40.0]]), quota=20, history_tokens_per_s=history
    )
    capacity = scenario.model.capacity_tokens_per_s
    result = simulate(scenario, ["reactive", "greedy", "carbon-capped", "wattscale"])
    for name in ("reactive", "greedy"):  # carbon-capped: the same, within its cap
        first = result.results[name].trajectory.allocated[0].sum()
        assert first == np.ceil(level / (capacity * 0.7)), name
    ws = result.results["wattscale"]
    assert ws.trajectory.ready[0].sum() * capacity >= level
    for name, policy in result.results.items():
        assert policy.slo_attainment >= 0.9999, name


def test_policies_are_shown_the_minutes_before_the_start_as_past_demand(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    history = np.arange(1.0, 31.0) * 1000.0
    scenario = scenario_from_arrays(
        np.full(10, 5000.0), np.array([[50.0]]), history_tokens_per_s=history
    )
    reader = Reader()
    replay(reader, scenario)
    assert [minute - past for minute, past, _, _ in reader.seen] == [-30] * 10
    # Minute 0 reads the last two minutes before the start; minute 1 the last and minute 0.
    assert reader.read[0][0] == pytest.approx(29_500.0)
    assert reader.read[1][0] == pytest.approx(17_500.0)


def test_the_replay_starts_from_the_history_the_operator_warm_starts_from() -> None:
    from wattscale.controller.memory import WARM_START_DEMAND
    from wattscale.forecast.recent import ERROR_MEMORY
    from wattscale.sim.load import HISTORY_MINUTES
    from wattscale.sim.policies.wattscale import REHEARSED_MINUTES

    assert WARM_START_DEMAND.total_seconds() == HISTORY_MINUTES * 60
    assert REHEARSED_MINUTES == ERROR_MEMORY <= HISTORY_MINUTES


def test_wattscale_starts_with_the_headroom_a_day_of_measured_error_derives(
    scenario_from_arrays: ScenarioFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A running operator's headroom is derived from the forecast error it measured over the
    # last day; one that starts with an empty memory sizes at the floor (1 / 0.9) until errors
    # are scored. The replay's wattscale starts as the running one.
    import wattscale.sim.policies.wattscale as policy_module

    rng = np.random.default_rng(7)
    history = 40_000.0 * np.clip(1.0 + 0.2 * rng.standard_normal(2 * 1440), 0.5, None)
    scenario = scenario_from_arrays(
        np.full(30, 40_000.0), np.array([[50.0]]), quota=30, history_tokens_per_s=history
    )
    running = WattscalePolicy()
    fleet = running.initial(scenario)
    assert running._state.recent.err_count >= 1000
    monkeypatch.setattr(policy_module, "REHEARSED_MINUTES", policy_module.PLANNED_MINUTES + 1)
    fresh = WattscalePolicy()
    fresh_fleet = fresh.initial(scenario)
    assert fresh._state.recent.err_count < 10
    assert fleet.sum() > fresh_fleet.sum()


class RequestLog(WattscalePolicy):
    """The wattscale policy, recording each minute's readings and the request it planned on."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[MinuteReadings | None, PlanRequest]] = []
        self._readings: MinuteReadings | None = None

    def decide(self, obs: Observation) -> IntArray:
        self._readings = obs.readings
        return super().decide(obs)

    def _request(self, *args: Any, **kwargs: Any) -> PlanRequest:
        request = super()._request(*args, **kwargs)
        self.shown.append((self._readings, request))
        return request


def test_wattscale_is_told_when_the_last_minute_broke_the_slo(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    # Demand triples in one minute: the fleet sized for the first level saturates while its
    # scale-up loads. The operator marks such a pass's demand censored (what the fleet could
    # serve, not what users asked) and the planner scores no forecast on it; so must the replay.
    demand = np.r_[np.full(30, 10_000.0), np.full(30, 30_000.0)]
    scenario = scenario_from_arrays(demand, np.array([[50.0]]))
    policy = RequestLog()
    replay(policy, scenario)
    model = scenario.model
    flags = []
    for readings, request in policy.shown:  # minute 0 (and the warm start) read nothing
        over = readings is not None and (
            readings.ttft_p95_s[0] * 1000 > model.ttft_slo_ms
            or readings.tpot_p95_s[0] * 1000 > model.tpot_slo_ms
        )
        assert request.demand_censored == bool(over and readings.ready[0] > 0)
        flags.append(request.demand_censored)
    assert any(flags), "the surge never broke the SLO: the test shows nothing"
    assert not any(flags[:25]), "censored before the surge"


def test_every_policy_reads_demand_over_the_rate_window(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    # A live autoscaler reads a rate() over its window (the operator's 120 s), not the last
    # minute exactly: a one-minute burst is diluted in the reading, for wattscale and the HPA
    # alike, and wattscale's planner is handed that reading as the measured demand with the
    # window as its lag, as the controller hands it (so the sizing remembers what was measured,
    # not its own forecast).
    demand = np.r_[np.full(20, 10_000.0), 30_000.0, np.full(19, 10_000.0)]
    scenario = scenario_from_arrays(demand, np.array([[50.0]]))
    policy = RequestLog()
    replay(policy, scenario)
    assert READING_WINDOW_SECONDS == 120
    measured = {}
    for minute, (_, request) in enumerate(policy.shown[1:]):  # [0]: the warm start
        measured[minute] = request.measured_tokens_per_second
        if minute > 0:  # minute 0 has nothing to read
            assert request.demand_lag_seconds == READING_WINDOW_SECONDS
    # Minute 21 reads minutes 19-20 (10,000 and the 30,000 burst), minute 22 reads 20-21.
    assert measured[21] == pytest.approx(20_000.0)
    assert measured[22] == pytest.approx(20_000.0)
    assert measured[23] == pytest.approx(10_000.0)
    assert max(v for v in measured.values() if v is not None) == pytest.approx(20_000.0)

    reader = Reader()
    replay(reader, scenario)
    assert reader.read[21] == (pytest.approx(20_000.0), pytest.approx(0.5))  # what the HPA reads
    assert reader.read[23] == (pytest.approx(10_000.0), pytest.approx(0.25))


class Reader(Spy):
    """Holds one replica and records, per minute, the demand read and the HPA's utilisation of
    a 40,000 tok/s fleet."""

    def __init__(self) -> None:
        super().__init__()
        self.read: dict[int, tuple[float, float | None]] = {}

    def decide(self, obs: Observation) -> IntArray:
        self.read[obs.minute] = (obs.read_demand(), obs.last_utilisation(40_000.0))
        return super().decide(obs)


def test_the_reading_window_is_the_scenarios(scenario_from_arrays: ScenarioFactory) -> None:
    # An operator configured with a 60-s rate window (scrapes every 15 s) reads the last minute:
    # the replay reads what the scenario says, and wattscale is told that lag.
    demand = np.r_[np.full(20, 10_000.0), 30_000.0, np.full(19, 10_000.0)]
    scenario = replace(scenario_from_arrays(demand, np.array([[50.0]])), reading_window_seconds=60)
    policy = RequestLog()
    replay(policy, scenario)
    _, request = policy.shown[1 + 21]  # [0]: the warm start; then minute 0, 1, ...
    assert request.measured_tokens_per_second == pytest.approx(30_000.0)
    assert request.demand_lag_seconds == 60.0
    reader = Reader()
    replay(reader, scenario)
    assert reader.read[21] == (pytest.approx(30_000.0), pytest.approx(0.75))
