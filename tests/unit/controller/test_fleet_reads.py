"""A pass with the fleet's shared reads: Regions the health loop found down are not asked,
a pass that decides the same writes nothing, and the capacity estimate is recomputed only
when it can have moved."""

from __future__ import annotations

import pytest

from tests.unit.controller.test_reconcile import NAME, NS, Harness
from wattscale.controller.memory import (
    Memory,
    WarmBudget,
    capacity_estimate,
)
from wattscale.controller.report import status_patch
from wattscale.fleet.snapshot import FleetSnapshot
from wattscale.forecast.holt import ForecastConfig, warm_start
from wattscale.metrics.capacity import CapacityEstimate, CapacityLearner, LatencySlo
from wattscale.metrics.capacity_schedule import ESTIMATE_REFRESH_INTERVALS

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
    computed = mem.estimates.at_seconds
    h.step()  # one more steady window, far from the SLO: the estimate stands
    assert mem.estimates.at_seconds == computed
    assert mem.estimates.windows_since >= 1
    h.step(30.0 * ESTIMATE_REFRESH_INTERVALS)
    assert mem.estimates.at_seconds == h.clock.now  # due after enough intervals
    h.regions["us-east"].metrics.ttft_p95_seconds = 0.45  # near the 500-ms SLO: news
    h.regions["us-west"].metrics.ttft_p95_seconds = 0.45
    h.regions["eu-central"].metrics.ttft_p95_seconds = 0.45
    h.step()
    assert mem.estimates.at_seconds == h.clock.now
    assert capacity_estimate(mem, h.clock.now, 30.0) is mem.estimates.estimate


class _ScriptedLearner(CapacityLearner):
    """A learner whose estimates are given in turn (what its windows would have said)."""

    def __init__(self, estimates: list[CapacityEstimate]) -> None:
        super().__init__(LatencySlo(0.5, None), 2500.0)
        self.estimates = estimates

    def estimate(self, now_seconds: float | None = None) -> CapacityEstimate:
        return self.estimates.pop(0)


def test_a_learned_capacity_is_not_replaced_by_the_prior_when_no_window_is_usable() -> None:
    """Issue 16 (e2e outage scenario): after the member came back every window held was a
    transient for a pass, the estimate fell back to the 2,500 hint from 2,683 learned, and the
    need crossed a replica: us-west 5 -> 4 -> 5. No usable window is no evidence."""
    learned = CapacityEstimate(2683.0, 2400.0, 2900.0, 0.6, "learned", 12)
    prior = CapacityEstimate(2500.0, 1200.0, 5000.0, 0.0, "prior", 0, {"transient": 14})
    relearned = CapacityEstimate(2790.0, 2500.0, 3000.0, 0.7, "learned", 16)
    learner = _ScriptedLearner([learned, prior, relearned])
    mem = Memory(warm_start([], ForecastConfig()), learner)
    assert capacity_estimate(mem, 0.0, 2.0) == learned
    mem.estimates.windows_since = 1
    assert capacity_estimate(mem, 2.0, 2.0) == learned  # all refused for now: it stands
    mem.estimates.windows_since = 1
    assert capacity_estimate(mem, 4.0, 2.0) == relearned  # usable windows speak again
    # A new hint (or SLO) is a new basis: its prior replaces what was learned under the old.
    learner.estimates = [prior]
    learner.hint_tokens_per_second = 2000.0
    assert capacity_estimate(mem, 6.0, 2.0) == prior


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
