"""The replay of scale to zero: idle hours cost nothing, a wake-up's cold start costs the SLO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.sim.conftest import ScenarioFactory
from wattscale.api.inference import DEFAULT_IDLE_SECONDS
from wattscale.sim.accounting import wake_ups
from wattscale.sim.errors import SimInputError
from wattscale.sim.load import build_load, read_trace
from wattscale.sim.run import parse_policies, simulate

pytestmark = pytest.mark.unit


def _busy_idle_busy(minutes_idle: int) -> np.ndarray:
    busy = np.full(90, 9000.0)
    return np.concatenate([busy, np.zeros(minutes_idle), busy])


def test_a_long_idle_period_sleeps_and_the_wake_up_costs_one_cold_start(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    demand = _busy_idle_busy(180)
    prices = np.column_stack([np.full(7, 50.0), np.full(7, 30.0)])
    sc = scenario_from_arrays(demand, prices, quota=6)
    result = simulate(sc, ["wattscale", "wattscale-zero"])
    ws, zero = result.results["wattscale"], result.results["wattscale-zero"]
    # Asleep for the idle time beyond the window: fewer replica-hours, less money.
    assert zero.total_cost < ws.total_cost
    assert zero.replica_hours < ws.replica_hours
    allocated = zero.trajectory.allocated.sum(axis=1)
    idle_minutes = DEFAULT_IDLE_SECONDS // 60
    assert np.all(allocated[90 : 90 + idle_minutes - 1] >= 1)  # not before the window
    assert np.any(allocated[90 + idle_minutes : 270] == 0)
    # Woken by the first minute's waiting requests: one wake-up, whose requests wait.
    assert zero.wake_ups == 1
    assert ws.wake_ups == 0
    assert zero.requests_without_replica > 0
    assert ws.requests_without_replica == 0
    assert zero.slo_attainment < ws.slo_attainment
    assert allocated[271] >= 1  # the wake starts within one step of the first request
    saved = result.headline()
    assert saved["scale_to_zero_savings"] > 0
    assert saved["scale_to_zero_slo_cost"] > 0


def test_idle_shorter_than_the_window_never_sleeps(scenario_from_arrays: ScenarioFactory) -> None:
    demand = _busy_idle_busy(20)
    sc = scenario_from_arrays(demand, np.full((4, 1), 40.0), quota=6)
    zero = simulate(sc, ["wattscale-zero"]).results["wattscale-zero"]
    assert zero.wake_ups == 0
    assert zero.requests_without_replica == 0


def test_wake_ups_count_starts_after_nothing_was_allocated() -> None:
    allocated = np.array([[1.0], [0.0], [0.0], [2.0], [2.0], [0.0], [1.0]])
    assert wake_ups(allocated) == 2


def test_wattscale_zero_runs_only_when_named() -> None:
    assert "wattscale-zero" not in parse_policies(None)
    assert parse_policies("wattscale,wattscale-zero") == ["wattscale", "wattscale-zero"]


def test_idle_below_percent_makes_quiet_hours_idle_and_keeps_the_peak(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    rows = ["t_start_s,rate_rps"] + [f"{600 * k},{10 + 10 * (k // 72)}" for k in range(144)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    shape = read_trace(path)
    load = build_load(shape, 1440, 7000.0, idle_below_percent=50)
    toks = load.output_tokens_per_s
    assert float(toks.max()) == pytest.approx(7000.0)
    assert float(toks[60:650].max()) == 0.0  # the first half-day ran at half the peak: now idle
    assert np.all(load.requests_per_s[toks == 0] == 0)
    with pytest.raises(SimInputError, match="leaves no load"):
        build_load(shape, 500, 7000.0, tz_offset_hours=1.0, idle_below_percent=60)


def test_a_shorter_idle_window_sleeps_sooner(scenario_from_arrays: ScenarioFactory) -> None:
    from wattscale.sim.policies.wattscale import WattscalePolicy

    sc = scenario_from_arrays(_busy_idle_busy(180), np.full((7, 1), 40.0), quota=6)
    short = simulate(
        sc,
        ["wattscale-zero"],
        factories={"wattscale-zero": lambda: WattscalePolicy(scale_to_zero=True, idle_seconds=600)},
    ).results["wattscale-zero"]
    allocated = short.trajectory.allocated.sum(axis=1)
    assert np.all(allocated[90:99] >= 1)
    assert np.all(allocated[105:270] == 0)
