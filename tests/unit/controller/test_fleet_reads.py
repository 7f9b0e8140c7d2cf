"""A pass with the fleet's shared reads: Regions the health loop found down are not asked,
a pass that decides the same writes nothing, and the capacity estimate is recomputed only
when it can have moved."""

from __future__ import annotations

import pytest

from tests.unit.controller.test_reconcile import NAME, NS, Harness
from wattscale.controller.memory import (
    ESTIMATE_REFRESH_INTERVALS,
    WarmBudget,
    capacity_estimate,
)
from wattscale.controller.report import status_patch
from wattscale.fleet.snapshot import FleetSnapshot

pytestmark = pytest.mark.unit


def _with_fleet(h: Harness) -> FleetSnapshot:
    fleet = FleetSnapshot(h.directory, clock=h.clock)
    h.reconciler.fleet = fleet
    return fleet


def test_a_region_the_health_loop_found_down_is_not_asked() -> None:
    h = Harness()
    fleet = _with_fleet(h)
    h.serve(9000.0)
    cluster = h.regions["us-east"].cluster
    served = cluster.replicas(NAME)
    assert served > 0
    calls: list[str] = []
    original = cluster.state

    def state(name: str, namespace: str) -> object:
        calls.append(name)
        return original(name, namespace)

    cluster.state = state  # type: ignore[method-assign]
    fleet.mark("us-east", False, "region us-east: connection timed out")
    out = h.step()
    assert calls == []  # no timeout spent on a cluster known to be down
    east = next(r for r in out.status["regions"] if r["name"] == "us-east")
    assert east["available"] is False
    assert "Region health check" in out.status["conditions"][-1]["message"]
    assert cluster.replicas(NAME) == served  # nothing changed there
    fleet.mark("us-east", True)
    h.step()
    assert calls == [f"{NAME}-vllm"]


def test_a_pass_that_decides_the_same_again_writes_nothing() -> None:
    h = Harness()
    h.serve(9000.0, passes=12)
    h.step()  # the scale-down window has passed: settled
    before = dict(h.status)
    out = h.step()
    assert status_patch(before, out.status) == {}
    assert out.status["lastDecision"] == before["lastDecision"]
    h.load.tokens_per_second = 30000.0
    for _ in range(3):
        h.step()
    assert status_patch(before, h.status) != {}
    assert h.status["replicas"] > before["replicas"]


def test_the_capacity_estimate_is_recomputed_only_when_it_can_have_moved() -> None:
    h = Harness()
    h.serve(9000.0, passes=40)  # more windows than the every-window threshold
    mem = h.reconciler._memories._by_key[(NS, NAME)]
    computed = mem.estimate_at
    h.step()  # one more steady window, far from the SLO: the estimate stands
    assert mem.estimate_at == computed
    assert mem.windows_since_estimate >= 1
    h.step(30.0 * ESTIMATE_REFRESH_INTERVALS)
    assert mem.estimate_at == h.clock.now  # due after enough intervals
    h.regions["us-east"].metrics.ttft_p95_seconds = 0.45  # near the 500-ms SLO: news
    h.regions["us-west"].metrics.ttft_p95_seconds = 0.45
    h.regions["eu-central"].metrics.ttft_p95_seconds = 0.45
    h.step()
    assert mem.estimate_at == h.clock.now
    assert capacity_estimate(mem, h.clock.now, 30.0) is mem.estimate


def test_warm_starts_after_a_restart_are_spread_over_intervals() -> None:
    budget = WarmBudget(2, 30.0)
    assert [budget.take(1000.0) for _ in range(3)] == [True, True, False]
    assert budget.take(1031.0)  # the next interval has its own


def test_a_deployment_waiting_for_its_warm_start_still_plans() -> None:
    h = Harness()
    h.reconciler._warm_budget = WarmBudget(0, 30.0)
    h.serve(9000.0)
    mem = h.reconciler._memories._by_key[(NS, NAME)]
    assert not mem.warm
    assert h.status["replicas"] >= 2  # 9,000 tok/s at 6,000 per replica with headroom
