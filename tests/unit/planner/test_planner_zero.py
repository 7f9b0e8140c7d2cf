"""Scale to zero and back (planner side): sleep after the idle window, wake on a waiting request."""

from __future__ import annotations

import pytest

from tests.unit.planner.planner_builders import pool, region, request
from wattscale.planner import PlannerState, PlanRequest, PoolKey, ReasonCode, plan

pytestmark = pytest.mark.unit

IDLE = 1800.0


def _zero(*regions: object, demand: float, now: float, **kw: object) -> PlanRequest:
    base: dict[str, object] = {
        "min_replicas": 0,
        "scale_to_zero_idle_seconds": IDLE,
        "waiting_requests": 0.0,
        "now_seconds": now,
    }
    base.update(kw)
    return request(*regions, demand=demand, **base)  # type: ignore[arg-type]


def _total(desired: object) -> int:
    return sum(desired.values())  # type: ignore[attr-defined]


def test_idle_deployment_keeps_one_replica_until_the_window_passes_then_sleeps() -> None:
    state = PlannerState()
    busy = plan(_zero(region("a", 0.1, pool(current=2)), demand=5000.0, now=0.0), state)
    assert busy.state.busy_seconds == 0.0
    state = busy.state
    # Idle, inside the window: never below one replica (the ordinary scale-down stops at 1).
    for now in (600.0, 1200.0, 1790.0):
        d = plan(_zero(region("a", 0.1, pool(current=1)), demand=0.0, now=now), state)
        assert _total(d.desired) == 1, now
        assert d.reason is not ReasonCode.SCALED_TO_ZERO
        state = d.state
    d = plan(_zero(region("a", 0.1, pool(current=1)), demand=0.0, now=1800.0), state)
    assert d.reason is ReasonCode.SCALED_TO_ZERO
    assert _total(d.desired) == 0
    assert "idle window 1800 s" in d.message


def test_a_waiting_request_or_an_unknown_reading_keeps_it_awake() -> None:
    state = PlannerState(busy_seconds=0.0)
    for waiting in (3.0, None):
        d = plan(
            _zero(
                region("a", 0.1, pool(current=1)), demand=0.0, now=4000.0, waiting_requests=waiting
            ),
            state,
        )
        assert _total(d.desired) == 1
        assert d.state.busy_seconds == 4000.0


def test_missing_demand_metrics_never_count_as_idle() -> None:
    state = PlannerState(busy_seconds=0.0)
    d = plan(
        _zero(region("a", 0.1, pool(current=1)), demand=0.0, now=4000.0, metrics_fresh=False),
        state,
    )
    assert _total(d.desired) == 1
    assert d.state.busy_seconds == 4000.0


def test_after_a_restart_the_idle_window_starts_again() -> None:
    d = plan(_zero(region("a", 0.1, pool(current=1)), demand=0.0, now=99_999.0), PlannerState())
    assert _total(d.desired) == 1
    assert d.state.busy_seconds == 99_999.0


def test_asleep_without_waiting_requests_stays_at_zero() -> None:
    regions = (region("a", 0.1, pool(current=0)), region("b", 0.05, pool(current=0)))
    d = plan(_zero(*regions, demand=0.0, now=5000.0, demand_tokens_per_second=()), PlannerState())
    assert _total(d.desired) == 0
    assert d.reason is ReasonCode.SCALED_TO_ZERO
    assert d.actions == ()


def test_a_waiting_request_wakes_one_replica_in_the_cheapest_region() -> None:
    regions = (region("dear", 0.30, pool(current=0)), region("cheap", 0.02, pool(current=0)))
    asleep = PlannerState(busy_seconds=0.0)
    d = plan(
        _zero(*regions, demand=0.0, now=9000.0, demand_tokens_per_second=(), waiting_requests=2.0),
        asleep,
    )
    assert d.reason is ReasonCode.WOKE_UP
    assert dict(d.desired) == {PoolKey("dear", "H100"): 0, PoolKey("cheap", "H100"): 1}
    assert "2 requests waiting at the gateway" in d.message
    assert d.state.busy_seconds == 9000.0


def test_an_unreadable_gateway_wakes_it_too() -> None:
    d = plan(
        _zero(
            region("a", 0.1, pool(current=0)),
            demand=0.0,
            now=9000.0,
            demand_tokens_per_second=(),
            waiting_requests=None,
        ),
        PlannerState(),
    )
    assert d.reason is ReasonCode.WOKE_UP
    assert _total(d.desired) == 1
    assert "could not be read" in d.message


def test_while_the_woken_replica_loads_it_is_held_then_sized_normally() -> None:
    state = PlannerState(busy_seconds=9000.0)
    loading = region("a", 0.1, pool(current=1, ready=0))
    held = plan(_zero(loading, demand=0.0, now=9060.0, demand_tokens_per_second=()), state)
    assert _total(held.desired) == 1
    ready = region("a", 0.1, pool(current=1, ready=1))
    sized = plan(_zero(ready, demand=30_000.0, now=9360.0), held.state)
    assert _total(sized.desired) >= 5  # 30,000 tok/s at 7,000 per replica, with headroom
    assert sized.reason is ReasonCode.SCALE_UP


def test_min_replicas_above_zero_never_sleeps() -> None:
    req = _zero(region("a", 0.1, pool(current=1)), demand=0.0, now=1e6, min_replicas=1)
    d = plan(req, PlannerState(busy_seconds=0.0))
    assert _total(d.desired) == 1
    assert d.reason is not ReasonCode.SCALED_TO_ZERO


def test_without_an_idle_window_min_replicas_zero_plans_as_before() -> None:
    req = _zero(
        region("a", 0.1, pool(current=0)), demand=0.0, now=0.0, scale_to_zero_idle_seconds=None
    )
    d = plan(req, PlannerState())
    assert d.reason is not ReasonCode.WOKE_UP
    assert d.state.busy_seconds is None
