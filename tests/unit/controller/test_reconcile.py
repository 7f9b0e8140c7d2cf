"""One control-loop pass, end to end, against in-memory regions (no Kubernetes, no network)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cases.malformed import example
from tests.fakes.world import T0, FakeGridEvents, FakeRegion, build_world
from wattscale.controller.reconcile import Outcome, Reconciler
from wattscale.controller.settings import Settings

pytestmark = pytest.mark.unit

NS = "ml-serving"
NAME = "llama"
PRICES = {"us-west": 0.20, "us-east": 0.08, "eu-central": 0.30}


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(example("InferenceDeployment")["spec"])
    spec["placement"].update(
        regions=list(PRICES), homeRegion="us-west", objective="cost", users=[], drainSeconds=0
    )
    spec["placement"].pop("carbonPricePerTonne")
    for path, value in changes.items():
        node = spec
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return spec


class Harness:
    """The reconciler, its fakes and a clock; `step()` runs one pass and keeps the status."""

    def __init__(self, prices: dict[str, float] = PRICES, **spec_changes: Any) -> None:
        self.directory, self.regions, self.load = build_world(prices)
        self.clock = Clock()
        self.reconciler = Reconciler(
            self.directory, Settings(interval_seconds=30), clock=self.clock
        )
        self.spec = _spec(**spec_changes)
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str]] = []

    def step(self, seconds: float = 30.0) -> Outcome:
        self.clock.advance(seconds)
        out = self.reconciler.reconcile(
            name=NAME, namespace=NS, spec=self.spec, status=self.status, generation=1
        )
        self.status = out.status
        self.events += [(e.reason, e.message) for e in out.events]
        return out

    def serve(self, tokens_per_second: float, passes: int = 4) -> None:
        """Start, then let the loop settle on a steady load for a few passes."""
        self.step()
        self.load.tokens_per_second = tokens_per_second
        for _ in range(passes):
            self.step()

    def serve_with_cold_starts(self, tokens_per_second: float, passes: int = 6) -> None:
        """Replicas take a pass to become Ready from now on; settle on a steady load."""
        self.slow_cold_starts()
        self.load.tokens_per_second = tokens_per_second
        self.step()
        for _ in range(passes):
            self.cold_start_done()
            self.step()

    def slow_cold_starts(self) -> None:
        """From now on replicas become Ready only at :meth:`cold_start_done`."""
        for r in self.regions.values():
            r.cluster.ready_immediately = False

    def cold_start_done(self) -> None:
        """Replicas asked for in the last pass become Ready now."""
        for c in (r.cluster for r in self.regions.values()):
            for key, dep in c.deployments.items():
                c.ready[key] = dep["spec"]["replicas"]

    def replicas(self) -> dict[str, int]:
        return {n: r.cluster.replicas(NAME) for n, r in self.regions.items()}

    def ready(self) -> int:
        return sum(sum(r.cluster.ready.values()) for r in self.regions.values())

    def region(self, name: str) -> FakeRegion:
        return self.regions[name]


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_first_pass_starts_min_replicas_in_the_cheapest_region() -> None:
    h = Harness()
    out = h.step()
    assert h.replicas() == {"us-west": 0, "us-east": 1, "eu-central": 0}
    assert out.status["replicas"] == 1
    assert out.status["lastDecision"]["reason"] == "MissingMetricsHold"
    assert "Deployment/llama-vllm" in h.region("us-east").cluster.applied


def test_load_is_served_with_headroom_where_power_is_cheapest() -> None:
    h = Harness()
    h.step()
    h.load.tokens_per_second = 20_000.0  # 6,000 tok/s per replica: need 20k x 1.2 = 24k
    for _ in range(4):
        h.step()
    reps = h.replicas()
    capacity = h.status["capacityTokensPerSecondPerReplica"]
    assert sum(reps.values()) * capacity >= 20_000 * 1.2
    assert reps["us-east"] == sum(reps.values())
    assert _condition(h.status, "Ready")["status"] == "True"
    assert h.status["regionsSummary"].startswith("us-west=0,us-east=")


def test_unknown_region_is_reported_and_nothing_is_touched() -> None:
    h = Harness()
    h.spec["placement"].update(regions=["us-east", "mars-1"], homeRegion="us-east")
    out = h.step()
    assert out.status["lastDecision"]["reason"] == "UnknownRegion"
    assert "no Region named mars-1" in out.status["lastDecision"]["message"]
    assert _condition(out.status, "Degraded")["status"] == "True"
    assert all(not r.cluster.applied for r in h.regions.values())
    assert [e.reason for e in out.events] == ["UnknownRegion"]
    assert h.step().events == []  # the same problem is not posted again every pass


def test_dead_price_feed_holds_and_never_scales_down() -> None:
    h = Harness()
    h.serve(30_000.0)
    before = sum(h.replicas().values())
    for r in h.regions.values():
        r.price.break_with_outage()
    h.load.tokens_per_second = 1_000.0  # load falls while the feed is dead
    for _ in range(20):
        h.step(60)
    assert sum(h.replicas().values()) == before
    fresh = _condition(h.status, "SignalsFresh")
    assert fresh["status"] == "False"
    assert "never scaling down" in fresh["message"]


def test_prometheus_down_is_not_read_as_no_load() -> None:
    h = Harness()
    h.serve(30_000.0)
    before = sum(h.replicas().values())
    for r in h.regions.values():
        r.metrics.down = True
    for _ in range(20):
        h.step(60)
    assert sum(h.replicas().values()) >= before
    assert h.status["lastDecision"]["reason"] == "MissingMetricsHold"


def test_unreachable_region_is_replaced_elsewhere_and_left_alone() -> None:
    h = Harness()
    h.serve(20_000.0)
    east = h.region("us-east").cluster
    running = east.replicas(NAME)
    assert running > 0
    east.reachable = False
    for _ in range(3):
        h.step()
    elsewhere = h.replicas()["us-west"] + h.replicas()["eu-central"]
    assert elsewhere * 6000 >= 20_000
    assert east.replicas(NAME) == running  # nothing was deleted or scaled there
    assert _condition(h.status, "Degraded")["status"] == "True"
    region = next(r for r in h.status["regions"] if r["name"] == "us-east")
    assert region["available"] is False


def test_manual_scale_is_reverted_and_reported() -> None:
    h = Harness()
    h.serve(10_000.0, passes=3)
    east = h.region("us-east").cluster
    want = east.replicas(NAME)
    east.deployments[(NS, "llama-vllm")]["spec"]["replicas"] = want + 5
    out = h.step()
    assert east.replicas(NAME) == want
    assert any(e.reason == "ManualScaleReverted" for e in out.events)


def test_drift_by_hand_is_reverted_and_reported() -> None:
    h = Harness()
    h.step()
    east = h.region("us-east").cluster
    dep = east.deployments[(NS, "llama-vllm")]
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:latest"
    out = h.step()
    live = east.deployments[(NS, "llama-vllm")]
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.11.0"
    assert any(e.reason == "DriftReverted" for e in out.events)


def test_dry_run_decides_but_touches_nothing() -> None:
    h = Harness(mode="DryRun")
    out = h.step()
    assert out.status["replicas"] == 1
    assert out.status["lastDecision"]["message"].startswith("DryRun")
    assert all(not r.cluster.applied and not r.cluster.scale_calls for r in h.regions.values())


def test_paused_freezes_replicas() -> None:
    h = Harness()
    h.step()
    h.spec["mode"] = "Paused"
    h.load.tokens_per_second = 50_000.0
    out = h.step()
    assert sum(h.replicas().values()) == 1
    assert out.status["lastDecision"]["reason"] == "Paused"


def test_status_reports_money_power_carbon_and_savings() -> None:
    h = Harness()
    h.serve(20_000.0, passes=16)  # past the 300 s scale-down window, so the count has settled
    s = h.status
    assert s["currency"] == "USD"
    assert float(s["costPerHour"]) > 0
    assert s["powerWatts"] > 0
    assert s["carbonGramsPerHour"] > 0
    # All in us-west (home, 0.20/kWh) costs more than all in us-east (0.08/kWh).
    assert float(s["counterfactualCostPerHour"]) > float(s["costPerHour"])
    assert float(s["savingsPercent"]) > 0
    assert s["explanation"]["chosen"]["replicas"]["us-east"] == h.replicas()["us-east"]


def test_restart_does_not_scale_down_at_once() -> None:
    h = Harness()
    h.serve(30_000.0)
    before = sum(h.replicas().values())
    # A new operator process: fresh memory, same status and clusters.
    h.reconciler = Reconciler(h.directory, Settings(interval_seconds=30), clock=h.clock)
    h.load.tokens_per_second = 2_000.0
    h.step()
    assert sum(h.replicas().values()) == before


def _restart_after_a_dip(history: bool) -> tuple[int, list[int]]:
    """Serve 20k tok/s, restart the operator, let the reading dip and recover (12k climbing
    back to 20k over four minutes: users moving between regions, a rate window after pod
    churn): the fleet's size before the restart and after each pass. With ``history``, the
    serving region's Prometheus holds the 20k of the passes before."""
    h = Harness()
    h.serve(20_000.0)
    before = sum(h.replicas().values())
    serving = max(h.replicas(), key=lambda r: h.replicas()[r])
    if history:
        h.region(serving).metrics.history = [(h.clock.now - 30 * k, 20_000.0) for k in range(60)]
    h.reconciler = Reconciler(h.directory, Settings(interval_seconds=30), clock=h.clock)
    sizes = []
    for load in [12_000.0 + 1_000.0 * k for k in range(9)] + [20_000.0] * 2:
        h.load.tokens_per_second = load
        h.step()
        sizes.append(sum(h.replicas().values()))
    return before, sizes


def test_restarted_operator_remembers_recent_demand_from_prometheus() -> None:
    """A restarted planner's memory of recent demand is what Prometheus measured over the last
    passes: a reading recovering from a dip to the level served before is no surge. Without it,
    every recovering reading is a new high, extrapolated as a ramp (the e2e restart test saw
    6 -> 7 -> 6 replicas so)."""
    before, blind = _restart_after_a_dip(history=False)
    assert max(blind) > before, f"without history no ramp was read, the test shows nothing: {blind}"
    before, seeded = _restart_after_a_dip(history=True)
    assert seeded == [before] * len(seeded), f"{before} -> {seeded}"


def test_price_jump_moves_replicas_make_before_break() -> None:
    h = Harness(placement__minSavingsPercent=1, placement__scaleDownStabilizationSeconds=0)
    h.serve_with_cold_starts(12_000.0)
    needed = h.replicas()["us-east"]
    assert needed == sum(h.replicas().values()) > 0
    h.region("us-east").price.value = 2.0  # a price spike in the cheap region
    min_ready = needed
    phases = []
    for _ in range(8):
        h.step()
        min_ready = min(min_ready, h.ready())
        phases.append(h.status.get("shift", {}).get("phase"))
        h.cold_start_done()
    assert h.replicas()["us-east"] == 0
    assert h.replicas()["us-west"] >= needed
    assert min_ready >= needed  # never fewer Ready replicas than the SLO needed
    assert phases[0] == "ScalingUpTarget"
    shifts = [reason for reason, _ in h.events if reason.startswith("Shift")]
    assert shifts[0] == "ShiftStarted"
    assert shifts[-1] == "ShiftCompleted"


def test_announced_grid_event_moves_out_before_it_begins_make_before_break() -> None:
    """Demand response announced 3 minutes ahead (the example's cold start is 4 minutes): the
    replacements start at once elsewhere, the region keeps serving until they are Ready, and it
    is empty before the event begins; Ready never dips below what was serving."""
    h = Harness(placement__scaleDownStabilizationSeconds=0)
    h.serve_with_cold_starts(12_000.0)
    serving = h.replicas()["us-east"]
    assert serving == sum(h.replicas().values()) > 0
    feed = FakeGridEvents()
    h.directory.get("us-east").signals.grid_events = feed  # type: ignore[union-attr]
    begins = datetime.fromtimestamp(h.clock.now + 180, UTC)
    feed.events = [(begins, begins + timedelta(hours=1), 0.0)]
    h.step()
    assert h.replicas()["us-east"] == serving, "cut before the replacements were Ready"
    assert sum(h.replicas().values()) > serving, "no replacement started"
    min_ready = h.ready()
    for _ in range(4):  # 2 minutes: still before the event
        h.cold_start_done()
        h.step()
        min_ready = min(min_ready, h.ready())
    assert h.clock.now < begins.timestamp()
    assert h.replicas()["us-east"] == 0
    assert min_ready >= serving


def test_restart_warm_starts_the_forecaster_from_prometheus_history() -> None:
    h = Harness()
    now = h.clock.now + 30  # the time of the first pass

    def daily(t: float) -> float:
        """A daily peak of 30k tok/s in the hour that starts now; 5k otherwise."""
        return 30_000.0 if 0 <= (t - now) % 86400 < 3600 else 5_000.0

    h.region("us-east").metrics.history = [
        (now - 60 * k, daily(now - 60 * k)) for k in range(1, 3 * 1440)
    ]
    h.serve(5_000.0, passes=1)
    forecast = h.status["explanation"]["forecastTokensPerSecond"]
    assert forecast > 15_000, "the forecaster forgot the daily peak that three days of history show"
