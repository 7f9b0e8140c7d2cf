"""A member cluster lost in the middle of a make-before-break shift, and its return.

While a region's cluster does not answer, its replicas count as not serving, the loop restores
the capacity elsewhere, and nothing is scaled or deleted there; status keeps the count last set
there (``available: false``). When it answers again, the loop builds on what runs there: the
shift resumes or the surplus is scaled down make-before-break, without a spurious
``ManualScaleReverted`` and without ever dropping Ready below the need.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.fakes.world import FakeCluster, FakeMetrics, Load
from tests.series import direction_changes
from tests.unit.controller.test_reconcile import NAME, NS, Harness
from wattscale.clusters.client import WorkloadState
from wattscale.controller.memory import (
    QUEUE_LAG_WINDOWS,
    Memory,
    queue_trend,
    ready_through_window,
    settling,
)
from wattscale.controller.planning import Demand
from wattscale.fleet.observe import QueueTrend, RegionObservation
from wattscale.forecast.holt import ForecastConfig, forecast, warm_start
from wattscale.metrics import DeploymentTarget
from wattscale.metrics.capacity import CapacityLearner, LatencySlo

pytestmark = pytest.mark.unit

LOAD_TOKENS_PER_SECOND = 12_000.0
REPLICA_TOKENS_PER_SECOND = 6_000.0
"""What one fake replica serves within the SLO (tests/fakes/world.py: Load)."""
SLO_NEEDS = math.ceil(LOAD_TOKENS_PER_SECOND / REPLICA_TOKENS_PER_SECOND)
# eu-central is dear, so that a lost region is replaced in the one region the test expects.
PRICES = {"us-west": 0.20, "us-east": 0.08, "eu-central": 3.00}


class Shift:
    """A harness with replicas that take one pass to become Ready, serving in us-east."""

    def __init__(self) -> None:
        self.h = Harness(
            PRICES, placement__minSavingsPercent=1, placement__scaleDownStabilizationSeconds=0
        )
        for r in self.h.regions.values():
            r.cluster.ready_immediately = False
        self.desired_seen: list[dict[str, int]] = []
        self.ready_seen: list[int] = []
        self.h.load.tokens_per_second = LOAD_TOKENS_PER_SECOND
        self.h.step()
        for _ in range(6):
            self.step()
        assert self.h.replicas()["us-east"] == sum(self.h.replicas().values()) >= SLO_NEEDS

    def cluster(self, region: str) -> FakeCluster:
        return self.h.region(region).cluster

    def cold_start_done(self) -> None:
        """Replicas asked for in the last pass become Ready now (also in a cut-off cluster)."""
        for c in (r.cluster for r in self.h.regions.values()):
            for key, dep in c.deployments.items():
                c.ready[key] = dep["spec"]["replicas"]

    def serving(self) -> int:
        """Ready replicas users can reach (the load balancer cannot reach a lost cluster)."""
        return sum(sum(c.ready.values()) for c in self.h.load.clusters if c.reachable)

    def step(self, cold_start: bool = True) -> None:
        self.h.step()
        self.desired_seen.append(self.desired())
        self.ready_seen.append(self.serving())
        if cold_start:
            self.cold_start_done()

    def desired(self) -> dict[str, int]:
        return {r["name"]: r["desiredReplicas"] for r in self.h.status["regions"]}

    def region_status(self, region: str) -> dict[str, Any]:
        return next(r for r in self.h.status["regions"] if r["name"] == region)

    def start_shift_to_us_west(self) -> None:
        self.desired_seen.clear()  # from here on: what the move and the outage do
        self.ready_seen.clear()
        self.h.region("us-east").price.value = 2.0  # a price spike in the serving region
        self.step(cold_start=False)
        assert self.h.status["shift"]["toRegion"] == "us-west", self.h.status.get("shift")
        assert self.h.status["shift"]["phase"] == "ScalingUpTarget"
        assert self.cluster("us-west").replicas(NAME) > 0
        assert sum(self.cluster("us-west").ready.values()) == 0

    def lose_us_east_mid_shift(self) -> int:
        """Start the shift, cut us-east off, let the loop replace it; us-west's replicas."""
        self.start_shift_to_us_west()
        self.cluster("us-east").reachable = False
        for _ in range(6):
            self.step()
        replaced = self.cluster("us-west").replicas(NAME)
        assert replaced >= SLO_NEEDS
        return replaced


def test_source_lost_mid_shift_is_replaced_and_left_alone_then_drained_on_return() -> None:
    s = Shift()
    east = s.cluster("us-east")
    running = east.replicas(NAME)
    s.start_shift_to_us_west()
    east.reachable = False
    calls = len(east.scale_calls)
    for _ in range(6):
        s.step()
    # Capacity is restored where users can reach it, and nothing was done in the lost region.
    assert s.serving() >= SLO_NEEDS
    assert s.cluster("us-west").replicas(NAME) >= SLO_NEEDS
    assert east.replicas(NAME) == running
    assert len(east.scale_calls) == calls
    lost = s.region_status("us-east")
    assert lost["available"] is False
    assert lost["desiredReplicas"] == running  # what was last set there, not a made-up 0
    assert lost["readyReplicas"] == 0
    assert s.h.status["readyReplicas"] == s.serving()
    assert "us-east unreachable" in s.h.status["lastDecision"]["message"]
    problems = [m for reason, m in s.h.events if reason == "RegionProblem" and "us-east" in m]
    assert len(problems) == 1, "the same problem is posted once, not every pass"

    east.reachable = True
    back = len(s.ready_seen)
    for _ in range(8):
        s.step()
    reasons = [reason for reason, _ in s.h.events]
    assert "ManualScaleReverted" not in reasons, "the count we left there is not a hand edit"
    assert east.replicas(NAME) == 0, "the surplus in the returned region is scaled down"
    assert s.cluster("us-west").replicas(NAME) >= SLO_NEEDS
    assert s.desired() == s.h.replicas()
    assert s.region_status("us-east")["available"] is True
    assert "shift" not in s.h.status
    # The lost replicas could not serve until their replacements were Ready; from its return
    # on, Ready never drops below the need.
    assert min(s.ready_seen[back:]) >= SLO_NEEDS, s.ready_seen
    for region in PRICES:
        series = [d[region] for d in s.desired_seen]
        assert direction_changes(series) == 0, (region, series)


def test_source_back_before_the_target_is_ready_is_not_dropped() -> None:
    s = Shift()
    east = s.cluster("us-east")
    running = east.replicas(NAME)
    s.start_shift_to_us_west()
    east.reachable = False
    s.step(cold_start=False)  # a short outage: us-west's replicas are still starting
    east.reachable = True
    s.step(cold_start=False)
    assert east.replicas(NAME) == running, "the old replicas went before the new ones were Ready"
    assert s.serving() >= SLO_NEEDS
    for _ in range(8):
        s.step()
        assert s.serving() >= SLO_NEEDS
    assert east.replicas(NAME) == 0
    assert s.cluster("us-west").replicas(NAME) >= SLO_NEEDS


def test_target_lost_mid_shift_rolls_back_then_resumes_on_return() -> None:
    s = Shift()
    east = s.cluster("us-east")
    west = s.cluster("us-west")
    running = east.replicas(NAME)
    s.start_shift_to_us_west()
    started = west.replicas(NAME)
    west.reachable = False
    calls = len(west.scale_calls)
    for _ in range(4):
        s.step()
    # The move cannot finish: it is dropped (not wedged), the source keeps serving.
    assert "shift" not in s.h.status
    assert east.replicas(NAME) == running
    assert s.serving() >= SLO_NEEDS
    assert len(west.scale_calls) == calls
    assert west.replicas(NAME) == started
    assert s.region_status("us-west")["desiredReplicas"] == started

    west.reachable = True
    # The last source replica goes once us-west's new replicas are in the demand readings (one
    # 120-s rate window: until then an under-read may move replicas but not shrink the fleet).
    for _ in range(12):
        s.step()
    assert "ManualScaleReverted" not in [reason for reason, _ in s.h.events]
    assert west.replicas(NAME) >= SLO_NEEDS
    assert east.replicas(NAME) == 0
    assert s.desired() == s.h.replicas()
    assert min(s.ready_seen) >= SLO_NEEDS
    west_series = [d["us-west"] for d in s.desired_seen]
    assert west_series == sorted(west_series), f"us-west flapped: {west_series}"


def test_lost_replicas_are_replaced_at_once_when_nothing_else_is_ready() -> None:
    s = Shift()
    east = s.cluster("us-east")
    running = east.replicas(NAME)
    east.reachable = False
    s.step(cold_start=False)  # nothing is Ready elsewhere, so demand cannot be measured
    assert s.h.status["lastDecision"]["reason"] == "MissingMetricsHold"
    # Holding only what the answering regions run (none) would start minReplicas, and wait a
    # whole cold start before measuring demand and starting the rest.
    assert s.cluster("us-west").replicas(NAME) == running


RATE_WINDOW_SECONDS = 120.0
PASS_SECONDS = 30.0
"""The harness's rate window and interval (tests/unit/controller/test_reconcile.py)."""


@pytest.mark.parametrize("ttft_p95_seconds", [2.0, 90.0])
def test_an_overload_after_failover_lifts_the_plan_once_per_span_not_every_pass(
    ttft_p95_seconds: float,
) -> None:
    s = Shift()
    east = s.cluster("us-east")
    west = s.h.region("us-west")
    east.reachable = False
    s.step()  # the lost replicas are replaced in us-west, and become Ready
    replaced = west.cluster.replicas(NAME)
    # The users failed over onto those replicas and the latency stays over the SLO (a window
    # that still remembers the overload, then an overload that persists: requests wait).
    west.metrics.ttft_p95_seconds = ttft_p95_seconds
    west.metrics.waiting_requests = 50.0
    counts = []
    for _ in range(10):
        s.step()
        counts.append(west.cluster.replicas(NAME))
    # The latency readings describe the rate window and, before it, the p95 TTFT (a slow first
    # token was asked for that long ago); the queue's trend, a window and a little before it.
    # While either span still holds passes with fewer replicas, the breach is not blamed on
    # the replicas added since: no lift on top of a lift on every pass, however long the
    # backlog the failover left takes to drain.
    latency_span = RATE_WINDOW_SECONDS + ttft_p95_seconds
    queue_span = (1 + QUEUE_LAG_WINDOWS) * RATE_WINDOW_SECONDS
    held = math.ceil(max(latency_span, queue_span) / PASS_SECONDS)
    assert counts[:held] == [replaced] * held, counts
    # Once the span describes only the replicas now serving, a breach that persists is real.
    lifted = counts[held]
    assert lifted > replaced, counts
    assert counts[held:] == [lifted] * (len(counts) - held), (
        f"the same span lifted it again: {counts}"
    )


def test_a_backlog_draining_after_a_failover_does_not_lift_the_replacements() -> None:
    """Issue 16's last e2e flap (us-west 6 -> 8 -> 5 -> 4 when the member came back): the
    failover left a backlog in the queues of the replicas Ready at the time, the replacements
    came up and took new requests only, and the p95 TTFT stayed over the SLO for minutes while
    the old queues drained, long after the latency span held no pass with fewer replicas. The
    breach floor took every replica as saturated. A queue that falls is a backlog draining:
    users ask what the region serves, and the replacements are enough."""
    s = Shift()
    west = s.h.region("us-west")
    s.start_shift_to_us_west()
    s.cluster("us-east").reachable = False
    west.metrics.ttft_p95_seconds = 30.0  # over the SLO from here on
    for queue in (200.0, 400.0, 600.0):  # the backlog builds while replacements start
        west.metrics.waiting_requests = queue
        s.step()
    replaced = west.cluster.replicas(NAME)
    assert replaced >= SLO_NEEDS
    counts = []
    for queue in range(560, 0, -40):  # then drains, for many latency spans
        west.metrics.waiting_requests = float(queue)
        s.step()
        counts.append(west.cluster.replicas(NAME))
    assert max(counts) == replaced, f"a draining backlog lifted the replacements: {counts}"
    notes = s.h.status["explanation"]["notes"]
    assert any("us-west is over the SLO; its queue is falling" in n for n in notes), notes
    # The same breach with a queue that does not fall is users asking more: it lifts.
    west.metrics.waiting_requests = 600.0
    for _ in range(8):
        s.step()
    assert west.cluster.replicas(NAME) > replaced
    notes = s.h.status["explanation"]["notes"]
    assert any("us-west is over the SLO; its queue is holding (600 waiting)" in n for n in notes)


def test_a_backlog_in_the_returned_member_does_not_lift_the_replacements() -> None:
    """Issue 16's last e2e flap (us-west 4 -> 6 -> 4 after the member came back): the returned
    member's p95 TTFT was over the SLO (requests it had queued through the outage) and the
    breach's demand floor counted every Ready replica of the fleet as saturated, the
    replacements in us-west too, whose latency met the SLO. A region within its SLO serves what
    it is sent; a breach lifts only the breaching region's share."""
    s = Shift()
    east = s.cluster("us-east")
    replaced = s.lose_us_east_mid_shift()
    back = len(s.desired_seen)
    east.reachable = True
    s.h.region("us-east").metrics.ttft_p95_seconds = 20.0
    for _ in range(8):
        s.step()
    series = [d["us-west"] for d in s.desired_seen[back - 1 :]]
    assert max(series) == replaced, f"us-west lifted for another region's backlog: {series}"
    assert direction_changes(series) == 0, series
    assert east.replicas(NAME) == 0
    assert min(s.ready_seen[back:]) >= SLO_NEEDS, s.ready_seen[back:]


def test_demand_read_just_after_a_failover_does_not_scale_the_replacements_down() -> None:
    s = Shift()  # no scale-down window: only the loop's own rule can hold
    east = s.cluster("us-east")
    west = s.cluster("us-west")
    east.reachable = False
    s.step()
    replaced = west.replicas(NAME)
    assert replaced >= SLO_NEEDS
    # The readings' rate window still holds the time before the users moved: they under-read.
    s.h.load.tokens_per_second = LOAD_TOKENS_PER_SECOND / 4
    for _ in range(3):  # the rest of one 120-s window
        s.step()
        assert west.replicas(NAME) == replaced
    assert "demand readings still describe" in " ".join(s.h.status["explanation"]["notes"])


def test_one_under_read_after_the_member_returns_does_not_flap_the_replacements() -> None:
    """Issue 16's flap: once the lost member answered again and its hold had passed, one pass
    read less than the users send (a rate window still missing the returned replicas' share),
    and the loop shrank us-west to that reading, then grew it again a pass later. Shrink in one
    step only to what the settled demand needs, never below what it needs a minute later."""
    s = Shift()
    east = s.cluster("us-east")
    west = s.cluster("us-west")
    s.lose_us_east_mid_shift()
    east.reachable = True
    # The readings settle for one rate window (120 s: four passes) after the member returns.
    for _ in range(4):
        s.step()
    back = len(s.desired_seen)
    # For one minute the readings sum half of what users send (e2e read 5,640 of 7,500 tok/s
    # with finer replicas), then the true load again.
    s.h.load.tokens_per_second = LOAD_TOKENS_PER_SECOND * 0.5
    for _ in range(2):
        s.step()
    s.h.load.tokens_per_second = LOAD_TOKENS_PER_SECOND
    for _ in range(6):
        s.step()
    after = s.desired_seen[back - 1 :]  # from the last pass before the under-read
    for region in PRICES:
        series = [d[region] for d in after]
        assert direction_changes(series) == 0, (region, series)
    # Never below what the users' real load needs once the readings are true again: shrunk
    # in one step to the settled count, not below it and back.
    settled = west.replicas(NAME)
    assert settled >= SLO_NEEDS
    assert min(d["us-west"] for d in after) == settled, after
    assert min(s.ready_seen[back:]) >= SLO_NEEDS, s.ready_seen[back:]
    assert east.replicas(NAME) == 0


def test_a_region_drained_to_zero_holds_the_demand_reading_for_one_window() -> None:
    # A move emptied us-east: its users go to us-west, whose rate window still describes the
    # old split, so the summed demand under-reads for one window. It is not fresh meanwhile
    # (the plan holds, the forecaster does not learn the dip); fresh again after the window.
    mem = Memory(warm_start([], ForecastConfig()), CapacityLearner(LatencySlo(None, None), None))
    reading = Demand(7_500.0, False, True)

    def regions(east: int) -> list[RegionObservation]:
        return [
            RegionObservation(n, None, available=True, workload=WorkloadState(True, r, r))
            for n, r in (("us-west", 5), ("us-east", east))
        ]

    assert settling(mem, regions(4), reading, 0.0, 8.0).fresh
    assert settling(mem, regions(1), reading, 2.0, 8.0).fresh  # fewer, still serving
    assert not settling(mem, regions(0), reading, 4.0, 8.0).fresh  # its last replica went
    assert not settling(mem, regions(0), reading, 10.0, 8.0).fresh
    assert settling(mem, regions(0), reading, 12.0, 8.0).fresh


@pytest.mark.parametrize(
    ("queue", "trend", "replicas"),
    [
        ([(0.0, 40.0), (8.0, 30.0)], QueueTrend.FALLING, None),  # fell over one window
        ([(0.0, 40.0), (8.0, 38.0)], QueueTrend.HOLDING, 4),  # a steady queue's noise
        ([(0.0, 0.5), (8.0, 0.0)], QueueTrend.EMPTY, None),  # nothing waits: not censored
        ([(0.0, 0.0), (4.0, 3.0), (8.0, 0.0)], QueueTrend.EMPTY, None),  # 3 waited, none now
        ([(0.0, 30.0), (8.0, 40.0)], QueueTrend.HOLDING, 4),  # grew: users ask more than served
        ([(0.0, 40.0), (4.0, 30.0)], QueueTrend.HOLDING, 0),  # the log does not reach back yet
        ([(0.0, 40.0), (30.0, 10.0)], QueueTrend.HOLDING, 0),  # a gap: no reading a window ago
        ([(0.0, 40.0), (4.0, 50.0), (8.0, 20.0), (12.0, 30.0)], QueueTrend.FALLING, None),
        # Grew while replacements came up (1 Ready when it was read a window ago): the backlog
        # was built by that one, not by the 4 Ready now (issue 16's e2e flap).
        ([(0.0, 10.0, 1), (4.0, 60.0, 4), (8.0, 50.0, 4)], QueueTrend.HOLDING, 1),
        ([(0.0, 10.0, 4), (4.0, 60.0, 4), (8.0, 50.0, 4)], QueueTrend.HOLDING, 4),
        # 4 Ready since 2 s before the reading a window ago: a queue read then still showed
        # what the one before had built (a reading lags its scrape).
        ([(-2.0, 10.0, 1), (0.0, 10.0, 4), (8.0, 50.0, 4)], QueueTrend.HOLDING, 1),
        ([(0.0, 40.0), (8.0, math.nan)], QueueTrend.UNREAD, None),
    ],
)
def test_a_queue_trend_counts_the_replicas_ready_all_along(
    queue: list[tuple[float, ...]], trend: QueueTrend, replicas: int | None
) -> None:
    cluster = FakeCluster("us-west")
    metrics = FakeMetrics(cluster, Load([cluster], 10_000.0))
    mem = Memory(warm_start([], ForecastConfig()), CapacityLearner(LatencySlo(None, None), None))
    # The Ready count of the first reading, a window before it (a log that reaches back).
    first = int(queue[0][2]) if len(queue[0]) > 2 else 4
    prelude = RegionObservation(
        "us-west", None, available=True, workload=WorkloadState(True, first, first)
    )
    ready_through_window(mem, prelude, queue[0][0] - 8.0, 8.0)
    seen = []
    for t, waiting, *ready in queue:
        n = int(ready[0]) if ready else 4
        metrics.waiting_requests = waiting
        cluster.ready[("ns", NAME)] = n
        obs = RegionObservation(
            "us-west",
            None,
            available=True,
            workload=WorkloadState(True, n, n),
            readings=metrics.read(DeploymentTarget("ns", NAME), expected_pods=n),
        )
        ready_through_window(mem, obs, t, 8.0)
        seen.append(queue_trend(mem, obs, t, 8.0))
    assert seen[-1] == (trend, replicas), seen


def test_a_restarted_operator_counts_no_replica_as_queueing_until_its_log_reaches_back() -> None:
    """A restarted operator's logs are empty: a breach it saw at once lifted the plan on every
    Ready replica (issue 16's e2e flap after the restart, 6 -> 8 -> 7). It knows what they
    served, not that they queued; a window and a bit later, it does."""
    cluster = FakeCluster("us-west")
    cluster.ready[("ns", NAME)] = 4
    metrics = FakeMetrics(cluster, Load([cluster], 10_000.0))
    metrics.waiting_requests = 40.0
    mem = Memory(warm_start([], ForecastConfig()), CapacityLearner(LatencySlo(None, None), None))
    seen = []
    for t in range(0, 20, 2):
        obs = RegionObservation(
            "us-west",
            None,
            available=True,
            workload=WorkloadState(True, 4, 4),
            readings=metrics.read(DeploymentTarget("ns", NAME), expected_pods=4),
        )
        ready_through_window(mem, obs, float(t), 8.0)
        seen.append((t, *queue_trend(mem, obs, float(t), 8.0)))
    assert {n for t, _, n in seen if t < 12} == {0}, seen  # 1 + QUEUE_LAG_WINDOWS windows
    assert {n for t, _, n in seen if t >= 12} == {4}, seen


def test_what_the_replacements_serve_during_an_outage_is_not_learned_as_demand() -> None:
    """The e2e outage's flap (CI on dba6ef6: us-west 6 -> 4 -> 5 once the member was back):
    while the member was lost, the replacements served less than users sent (they came up one
    by one, over the SLO), and the forecaster learned those readings as a fall in demand. Back,
    its forecast still carried the fall (the need 5,406 tok/s for a load of 7,892): the loop
    shrank us-west below what the load needs and grew it again as the forecast caught up. With
    a region that served lost, a reading is a floor for demand, not demand: the forecaster
    waits for the whole fleet again."""
    s = Shift()
    s.lose_us_east_mid_shift()  # its hold of one rate window has passed: readings are fresh
    mem = s.h.reconciler._memories._by_key[(NS, NAME)]
    learned = (mem.forecaster.updates, mem.forecaster.open_count)
    s.h.load.tokens_per_second = LOAD_TOKENS_PER_SECOND * 0.3
    for _ in range(8):
        s.step()
    assert (mem.forecaster.updates, mem.forecaster.open_count) == learned
    assert s.h.status["explanation"]["demandTokensPerSecond"] == pytest.approx(
        LOAD_TOKENS_PER_SECOND * 0.3, rel=0.01
    ), "the under-read was fresh, so it was the forecaster that had to refuse it"
    s.h.load.tokens_per_second = LOAD_TOKENS_PER_SECOND
    s.cluster("us-east").reachable = True
    while (mem.forecaster.updates, mem.forecaster.open_count) == learned:
        s.step()
    # The next buckets' mean, not the bucket of the first whole reading: the level learned.
    ahead = forecast(mem.forecaster, 3)
    assert min(ahead) >= 0.9 * LOAD_TOKENS_PER_SECOND, ahead
