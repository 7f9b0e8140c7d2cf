"""Table tests for the planner, one per behaviour a user relies on."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.planner.planner_builders import CAP, pool, region, request
from wattscale.planner import (
    DEFAULT_GPU_POWER,
    ActionKind,
    GridEvent,
    LatencyBudget,
    Objective,
    PlannerState,
    PoolKey,
    Population,
    ReasonCode,
    plan,
    replica_power,
)

pytestmark = pytest.mark.unit

A = PoolKey("A", "H100")
B = PoolKey("B", "H100")
C = PoolKey("C", "H100")


def test_replica_power_defaults_follow_public_measurements() -> None:
    h100 = DEFAULT_GPU_POWER["H100"]
    assert h100.max_watts == 690.0
    assert h100.board_limit_watts == 700.0
    assert 70.0 <= h100.idle_watts <= 100.0
    two = replica_power("h100", 2, host_idle_watts_per_gpu=0, host_max_watts_per_gpu=0)
    assert two.idle_watts == 2 * h100.idle_watts
    assert two.at_utilisation(0.5) == pytest.approx(2 * (90 + 300))


def test_scales_up_at_once() -> None:
    d = plan(request(region("A", 0.1, pool(current=2))))
    assert d.desired[A] == 4  # 20k tok/s x 1.2 headroom / 7k per replica
    assert d.reason is ReasonCode.SCALE_UP
    assert [a.kind for a in d.actions] == [ActionKind.ADD]


def test_scale_down_waits_for_window() -> None:
    busy = plan(request(region("A", 0.1, pool(current=4)), now_seconds=0.0))
    assert busy.desired[A] == 4
    quiet = request(region("A", 0.1, pool(current=4)), demand=5000.0, now_seconds=60.0)
    held = plan(quiet, busy.state)
    assert held.desired[A] == 4
    assert held.target[A] == 1
    assert held.reason is ReasonCode.SCALE_DOWN_STABILISING
    later = request(region("A", 0.1, pool(current=4)), demand=5000.0, now_seconds=400.0)
    done = plan(later, held.state)
    assert done.desired[A] == 1
    assert done.reason is ReasonCode.SCALE_DOWN


def test_settling_demand_may_not_shrink_the_fleet() -> None:
    """Replicas that just became Ready are not in the demand readings yet: the low reading
    (5,000 tok/s against 4 replicas) may not scale down, even with no stabilisation window."""
    low = request(
        region("A", 0.1, pool(current=4)),
        demand=5000.0,
        scale_down_stabilisation_seconds=0.0,
        demand_settling=True,
    )
    held = plan(low)
    assert held.target[A] == 1
    assert held.desired[A] == 4
    settled = plan(replace(low, demand_settling=False))
    assert settled.desired[A] == 1


def test_settling_demand_still_moves_make_before_break_within_the_shift_limit() -> None:
    """Settling keeps the fleet's capacity, not every replica: a move to a cheaper region is
    still a move (rate-limited by max_shift_per_step, removals wait for readiness)."""
    req = request(
        region("A", 3.0, pool(current=6, ready=6)),  # a price spike where it runs
        region("B", 0.01),
        cold_start_seconds=60.0,
        scale_down_stabilisation_seconds=0.0,
        max_shift_per_step=2,
        min_savings_percent=0.0,
        demand_settling=True,
    )
    d = plan(req)
    assert d.target == {A: 0, B: 4}
    assert d.desired == {A: 6, B: 2}
    assert ReasonCode.RATE_LIMITED in d.reasons


def _shift_request(a_current: int, b_current: int, b_ready: int):  # type: ignore[no-untyped-def]
    return request(
        region("A", 0.50, pool(current=a_current)),
        region("B", 0.00, pool(current=b_current, ready=b_ready)),
        demand_tokens_per_second=(20000.0,) * 60,
        min_savings_percent=1.0,
        cold_start_seconds=120.0,
    )


def test_shift_needs_ready_target() -> None:
    first = plan(_shift_request(4, 0, 0))
    assert first.target == {A: 0, B: 4}
    assert first.desired == {A: 4, B: 4}  # add in B first, keep A
    assert first.reason is ReasonCode.SHIFT_STARTED
    assert [(a.kind, a.pool) for a in first.actions] == [(ActionKind.ADD, B)]
    waiting = plan(_shift_request(4, 4, 0), first.state)
    assert waiting.desired == {A: 4, B: 4}
    assert waiting.reason is ReasonCode.SHIFT_WAITING_FOR_READY
    partly = plan(_shift_request(4, 4, 1), waiting.state)
    assert partly.desired == {A: 3, B: 4}  # one B ready: one A may go, the need stays covered
    done = plan(_shift_request(3, 4, 4), partly.state)
    assert done.desired == {A: 0, B: 4}
    assert done.reason is ReasonCode.SHIFT_COMPLETED
    assert [(a.kind, a.pool) for a in done.actions] == [(ActionKind.REMOVE, A)]


def test_actions_are_ordered_make_before_break() -> None:
    req = request(
        region("A", 0.9, pool(current=2)),
        region("B", 0.0),
        region("C", 0.3, pool(current=4)),
        demand_tokens_per_second=(20000.0,) * 60,
        min_savings_percent=0.0,
        cold_start_seconds=60.0,
    )
    d = plan(req)
    kinds = [a.kind for a in d.actions]
    assert kinds == sorted(kinds, key=lambda k: k is ActionKind.REMOVE)
    assert (ActionKind.ADD, B) in [(a.kind, a.pool) for a in d.actions]
    assert d.desired[A] == 0  # C's ready replicas cover the need while B starts
    assert d.desired[C] == 4


def test_grid_event_caps_region() -> None:
    event = GridEvent(max_replicas=1, ends_in_seconds=3600.0, name="dr-1")
    d = plan(request(region("A", 0.01, grid_event=event), region("B", 0.3)))
    assert d.desired[A] == 1
    assert d.desired[B] == 3
    assert d.explanation.binding_constraint == "grid_event:A"


def test_grid_event_excludes_region_at_once() -> None:
    event = GridEvent(max_replicas=0, ends_in_seconds=600.0)
    d = plan(request(region("A", 0.01, pool(current=4), grid_event=event), region("B", 0.3)))
    assert d.desired == {A: 0, B: 4}
    assert d.reason is ReasonCode.GRID_EVENT_CAPPED


def test_announced_grid_event_moves_out_make_before_break() -> None:
    """An event announced to start within the cold start: replacements start now elsewhere,
    and the region keeps serving until they are Ready (no hard cut before the event begins)."""
    event = GridEvent(max_replicas=0, ends_in_seconds=3600.0, starts_in_seconds=120.0)
    a = pool(current=4, ready=4)
    d = plan(request(region("A", 0.01, a, grid_event=event), region("B", 0.3)))
    assert d.target == {A: 0, B: 4}
    assert d.desired == {A: 4, B: 4}  # make before break
    assert d.reason is not ReasonCode.GRID_EVENT_CAPPED
    assert d.explanation.binding_constraint == "grid_event:A"
    ready = plan(
        request(region("A", 0.01, a, grid_event=event), region("B", 0.3, pool(current=4, ready=4))),
        d.state,
    )
    assert ready.desired == {A: 0, B: 4}  # B serves now: A leaves before the event begins


def test_announced_grid_event_move_is_not_held_back_by_max_replicas() -> None:
    """At max_replicas, the replacements for a region an announced event will empty start now,
    past max_replicas by the replicas leaving (as they would once the event began): waiting
    for the event would leave the region drawing power through a cold start of it."""
    event = GridEvent(max_replicas=0, ends_in_seconds=3600.0, starts_in_seconds=120.0)
    a = pool(current=4, ready=4)
    d = plan(request(region("A", 0.01, a, grid_event=event), region("B", 0.3), max_replicas=4))
    assert d.target == {A: 0, B: 4}
    assert d.desired == {A: 4, B: 4}  # 8 > max_replicas 4, only while A's 4 leave
    assert ReasonCode.AT_MAX_REPLICAS not in d.reasons
    ready = plan(
        request(
            region("A", 0.01, a, grid_event=event),
            region("B", 0.3, pool(current=4, ready=4)),
            max_replicas=4,
        ),
        d.state,
    )
    assert ready.desired == {A: 0, B: 4}  # back within max_replicas before the event begins
    # Without an event, a move at max_replicas still waits for room.
    calm = plan(request(region("A", 0.3, a), region("B", 0.01), max_replicas=4))
    assert sum(calm.desired.values()) <= 4


def test_negative_price_is_valid() -> None:
    d = plan(request(region("A", -0.2, pool(cost=0.0)), region("B", 0.1, pool(cost=0.0))))
    assert d.desired == {A: 4, B: 0}  # load goes to the negative price ...
    assert d.explanation.chosen is not None
    assert d.explanation.chosen.cost_per_hour < 0  # ... and earns money
    # ... but no replica is bought only to burn negative-priced power.
    assert d.explanation.chosen.capacity_tokens_per_second < 24000.0 + CAP


def test_min_savings_blocks_small_moves() -> None:
    small = plan(
        request(
            region("A", 0.100, pool(current=4)),
            region("B", 0.099),
            demand_tokens_per_second=(20000.0,) * 60,
        )
    )
    assert small.desired == {A: 4, B: 0}
    assert small.reason is ReasonCode.MIN_SAVINGS_NOT_MET
    assert small.explanation.runner_up is not None
    assert small.explanation.runner_up.replicas[B] == 4
    big = plan(_shift_request(4, 0, 0))
    assert big.target[B] == 4


def test_infeasible_reports_binding_constraint() -> None:
    d = plan(request(region("A", 0.1, pool(current=1, quota=2))))
    assert d.reason is ReasonCode.INFEASIBLE
    assert d.explanation.binding_constraint == "quota"
    assert ReasonCode.QUOTA_EXHAUSTED in d.reasons
    assert d.desired[A] == 2  # best effort: everything the quota allows
    capped = plan(request(region("A", 0.1), max_replicas=2))
    assert capped.explanation.binding_constraint == "max_replicas"
    assert ReasonCode.AT_MAX_REPLICAS in capped.reasons
    assert capped.desired[A] == 2


def test_stale_signals_never_scale_down() -> None:
    stale = region("A", 0.1, pool(current=4), price_fresh=False)
    d = plan(request(stale, demand=1000.0))
    assert d.desired[A] == 4
    assert d.reason is ReasonCode.STALE_SIGNALS_HOLD
    up = plan(request(stale, demand=30000.0))
    assert up.desired[A] == 6  # but it still scales up
    assert ReasonCode.STALE_SIGNALS_HOLD in up.reasons


def test_missing_metrics_holds_and_tops_up_to_min() -> None:
    d = plan(request(region("A", 0.1, pool(current=4)), demand_tokens_per_second=()))
    assert d.desired[A] == 4
    assert d.reason is ReasonCode.MISSING_METRICS_HOLD
    cold = plan(request(region("A", 0.1), demand_tokens_per_second=(), min_replicas=2))
    assert cold.desired[A] == 2
    stale_metrics = plan(request(region("A", 0.1, pool(current=3)), metrics_fresh=False))
    assert stale_metrics.desired[A] == 3


def test_latency_budget_keeps_far_populations_local() -> None:
    lat = LatencyBudget(
        ttft_slo_ms=200.0,
        service_ttft_ms=100.0,
        populations=(Population("eu", 0.5), Population("us", 0.5)),
    )
    eu = region("A", 0.01, rtt_ms={"eu": 10.0, "us": 120.0})
    us = region("B", 0.40, rtt_ms={"eu": 120.0, "us": 10.0})
    without = plan(request(eu, us))
    assert without.desired[B] == 0
    d = plan(request(eu, us, latency=lat))
    assert d.desired[B] * CAP >= 12000.0  # the US half of the need, served from the US
    assert d.desired[A] * CAP >= 12000.0
    assert d.traffic_weights[B] == pytest.approx(0.5, abs=1e-6)


def test_min_regions_spreads_replicas() -> None:
    d = plan(request(region("A", 0.01), region("B", 0.40), min_regions=2))
    assert d.desired[A] > 0
    assert d.desired[B] > 0
    assert d.explanation.solver == "milp"


def test_carbon_objective_prefers_clean_power() -> None:
    dirty = region("A", 0.05, carbon_g_per_kwh=500.0)
    clean = region("B", 0.30, carbon_g_per_kwh=50.0)
    assert plan(request(dirty, clean)).desired[A] == 4
    assert plan(request(dirty, clean, objective=Objective.CARBON)).desired[B] == 4
    priced = request(
        dirty, clean, objective=Objective.BALANCED, carbon_price_per_tonne=1000.0
    )  # 1000/t = 0.001/g: 450 g/kWh more costs 0.45/kWh, more than the 0.25 price gap
    assert plan(priced).desired[B] == 4


def test_price_forecast_counts_over_the_horizon() -> None:
    rising = region("A", 0.05, price_forecast_per_kwh=(0.05, 2.0, 2.0, 2.0))
    flat = region("B", 0.20)
    assert plan(request(rising, flat)).desired[B] == 4
    assert plan(request(region("A", 0.05), flat)).desired[A] == 4


def test_rate_limit_scale_up() -> None:
    d = plan(request(region("A", 0.1), max_scale_up_per_step=1))
    assert sum(d.desired.values()) == 1
    assert ReasonCode.RATE_LIMITED in d.reasons


def test_explanation_prices_chosen_runner_up_and_current() -> None:
    d = plan(request(region("A", 0.1, pool(current=4)), region("B", 0.3)))
    ex = d.explanation
    assert ex.chosen is not None
    assert ex.runner_up is not None
    assert ex.current is not None
    assert ex.chosen.objective_per_hour <= ex.runner_up.objective_per_hour
    assert ex.chosen.energy_watts > 0
    assert ex.binding_constraint == "need"
    assert ex.optimal
    assert d.reason is ReasonCode.NO_CHANGE
    assert d.traffic_weights == {A: pytest.approx(1.0)}
    assert "A/H100=4" in d.message


def test_state_round_trips_and_is_deterministic() -> None:
    req = request(region("A", 0.1, pool(current=4)), region("B", 0.2))
    a = plan(req, PlannerState())
    b = plan(req, PlannerState())
    assert a == b
    assert plan(req, a.state) == plan(req, b.state)


def test_non_finite_inputs_hold_instead_of_crashing() -> None:
    nan = float("nan")
    d = plan(request(region("A", nan, pool(current=4)), demand=1000.0))
    assert d.desired[A] == 4  # a NaN price is a missing signal: never down
    assert ReasonCode.STALE_SIGNALS_HOLD in d.reasons
    held = plan(request(region("A", 0.1, pool(current=4)), demand_tokens_per_second=(nan, 5.0)))
    assert held.desired[A] == 4
    assert held.reason is ReasonCode.MISSING_METRICS_HOLD
    bad_pool = pool(current=2, capacity=nan)
    dead = plan(request(region("A", 0.1, bad_pool), region("B", 0.2)))
    assert dead.desired[B] == 4  # a pool without a usable capacity gets no replicas


def test_max_shift_per_step_limits_a_move() -> None:
    req = request(
        region("A", 0.50, pool(current=4)),
        region("B", 0.00),
        demand_tokens_per_second=(20000.0,) * 60,
        min_savings_percent=1.0,
        cold_start_seconds=120.0,
        max_shift_per_step=2,
    )
    d = plan(req)
    assert d.target == {A: 0, B: 4}
    assert d.desired == {A: 4, B: 2}
    assert ReasonCode.RATE_LIMITED in d.reasons
    assert d.reason is ReasonCode.SHIFT_STARTED
