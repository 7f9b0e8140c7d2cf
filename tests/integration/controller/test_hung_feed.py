"""A hung price feed costs a full reconcile pass nothing (issue 14 item 5), over real HTTP.

Three Regions read price and carbon as CSV from a local HTTP server on 127.0.0.1 that publishes a
rolling window of 15-minute rows around the operator's clock. The operator's own wiring is used:
a :class:`FleetSnapshot` that refreshes feeds in the background (one refresher per source) and
the :class:`Reconciler`, with the fake member clusters and metrics of tests/fakes/world.py.

Midway, us-east's price URL starts to accept requests and never answer. Its ``timeoutSeconds``
is the largest the API allows (300 s), longer than this test may run (``pytest.mark.timeout``),
so a pass or a Region health round that waited on the feed would fail the test, never hang it.
While the request hangs, passes return and write status, the healthy Regions are planned and
acted on, us-east keeps serving its last published prices until they are older than its
``maxAgeSeconds``, then it is reported stale (SignalsFresh False on the deployment and on the
Region) and the fleet is held: never scaled below what the SLO needs.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.feeds import FeedServer, Reply, Route, Seen
from tests.fakes.world import build_world, region_doc
from tests.unit.controller.test_reconcile import NAME, NS, Clock, _spec
from tests.unit.controller.test_region_health import Writer, _conditions
from wattscale.api.region import RegionSpec
from wattscale.controller.reconcile import Outcome, Reconciler
from wattscale.controller.region_health import RegionHealthLoop
from wattscale.controller.settings import Settings
from wattscale.fleet.snapshot import FleetSnapshot
from wattscale.signals.region import RegionSignals
from wattscale.telemetry.metrics import OperatorMetrics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PRICES_PER_MWH = {"us-west": 200.0, "us-east": 80.0, "eu-central": 300.0}
HUNG = "us-east"
STEP = timedelta(minutes=15)
MAX_AGE_SECONDS = 600
GENEROUS = 60.0
"""Seconds to wait for a background refresher to catch up; only a bug takes this long, and the
test's own timeout (120 s) bounds the whole run. Nothing here asserts how long anything took."""
SLO_TOKENS_PER_SECOND_PER_REPLICA = 6000.0
"""What one fake replica serves within the SLO (tests/fakes/world.py's Load)."""


class Publisher:
    """The CSV feeds: 15-minute rows from 30 min before to 30 min after the operator's clock;
    ``hang`` makes one URL accept requests and never answer until ``release``."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.hang = threading.Event()
        self.release = threading.Event()
        self.waiting = 0
        """Requests held unanswered right now."""
        self._lock = threading.Lock()

    def _rows(self, column: str, value: str) -> str:
        now = datetime.fromtimestamp(self.clock(), UTC)
        first = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) - 2 * STEP
        stamps = [(first + k * STEP).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(5)]
        return "".join([f"timestamp_utc,{column}\n", *(f"{t},{value}\n" for t in stamps)])

    def price(self, per_mwh: float, can_hang: bool = False) -> Route:
        def answer(_: Seen) -> Reply:
            if can_hang and self.hang.is_set():
                with self._lock:
                    self.waiting += 1
                self.release.wait()  # accepted, read, never answered (until the test ends)
                with self._lock:
                    self.waiting -= 1
            return Reply(200, self._rows("price_per_mwh,currency", f"{per_mwh},USD"))

        return answer

    def carbon(self, g_per_kwh: float) -> Route:
        return lambda _: Reply(200, self._rows("gco2_per_kwh", f"{g_per_kwh}"))


def _energy(url: str, name: str, hung: bool) -> dict[str, Any]:
    common = {"resolutionSeconds": 900, "refreshSeconds": 60, "maxRetries": 0}
    return {
        "currency": "USD",
        "pue": "1.2",
        "price": {
            "type": "csv",
            "url": f"{url}/{name}/price.csv",
            "maxAgeSeconds": MAX_AGE_SECONDS,
            "timeoutSeconds": 300 if hung else 5,
            **common,
        },
        "carbon": {"type": "csv", "url": f"{url}/{name}/carbon.csv", **common},
    }


class World:
    """Regions whose feeds are real HTTP, the reconciler and the fleet snapshot as wired in the
    operator (handlers.py: feeds refreshed in the background)."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.clock = clock
        self.directory, self.regions, self.load = build_world(
            {n: p / 1000 for n, p in PRICES_PER_MWH.items()}
        )
        for name in self.regions:
            runtime = self.directory.get(name)
            assert runtime is not None
            doc = copy.deepcopy(region_doc(name))
            doc["energy"] = _energy(url, name, name == HUNG)
            runtime.signals = RegionSignals(RegionSpec.model_validate(doc).energy)
        self.fleet = FleetSnapshot(self.directory, clock=clock, feeds_period_seconds=0.05)
        self.reconciler = Reconciler(
            self.directory, Settings(interval_seconds=30), clock=clock, fleet=self.fleet
        )
        self.spec = _spec(
            placement__minSavingsPercent=1, placement__scaleDownStabilizationSeconds=0
        )
        self.status: dict[str, Any] = {}
        self.writer = Writer()
        self.health = RegionHealthLoop(
            self.directory, self.writer, OperatorMetrics(), 30.0, clock=self.now
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def step(self, seconds: float = 120.0) -> Outcome:
        self.clock.advance(seconds)
        self.fleet.refresh()  # what the operator's fleet loop does every interval
        self.wait_for(lambda: self.fresh(set(self.regions) - {HUNG}), "healthy feeds refreshed")
        out = self.reconciler.reconcile(
            name=NAME, namespace=NS, spec=self.spec, status=self.status, generation=1
        )
        self.status = out.status
        return out

    def fresh(self, names: set[str]) -> bool:
        """Whether these Regions' feeds were read at the current clock and answered well."""
        for name in names:
            runtime = self.directory.get(name)
            assert runtime is not None
            assert runtime.signals is not None
            snap = runtime.signals.read(self.now())
            for reading in (snap.price, snap.carbon):
                if reading is None or reading.error is not None or reading.series is None:
                    return False
                if reading.series.fetched_at < self.now():
                    return False
        return True

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        done = threading.Event()
        for _ in range(int(GENEROUS / 0.01)):
            if condition():
                return
            done.wait(0.01)
        raise AssertionError(f"never: {what}")

    def replicas(self) -> dict[str, int]:
        return {n: r.cluster.replicas(NAME) for n, r in self.regions.items()}

    def stop(self) -> None:
        for name in self.regions:
            runtime = self.directory.get(name)
            if runtime is not None and runtime.signals is not None:
                runtime.signals.stop()


@pytest.fixture
def world() -> Iterator[tuple[World, Publisher]]:
    clock = Clock()
    pub = Publisher(clock)
    routes: dict[str, Route] = {}
    for name, per_mwh in PRICES_PER_MWH.items():
        routes[f"/{name}/price.csv"] = pub.price(per_mwh, can_hang=name == HUNG)
        routes[f"/{name}/carbon.csv"] = pub.carbon(300.0)
    with FeedServer(routes) as srv:
        w = World(srv.url, clock)
        try:
            yield w, pub
        finally:
            pub.release.set()  # answer the held requests so the server can shut down
            w.stop()


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _slo_replicas(tokens_per_second: float) -> int:
    return math.ceil(tokens_per_second / SLO_TOKENS_PER_SECOND_PER_REPLICA)


def _check_pass(w: World, pub: Publisher, out: Outcome) -> None:
    """The pass returned while the hung request was held, wrote status, and acted on every
    reachable region as it decided; the fleet serves the load within the SLO."""
    assert pub.waiting > 0, "the hung request was answered: the test no longer proves anything"
    assert {r["name"] for r in out.status["regions"]} == set(PRICES_PER_MWH)
    for row in out.status["regions"]:
        assert w.replicas()[row["name"]] == row["desiredReplicas"], row
    assert sum(w.replicas().values()) >= _slo_replicas(w.load.tokens_per_second), w.replicas()


def test_a_hung_feed_stalls_no_pass_and_the_region_is_reported_stale(
    world: tuple[World, Publisher],
) -> None:
    w, pub = world
    w.step()
    w.wait_for(lambda: w.fresh(set(PRICES_PER_MWH)), "every feed read once")
    w.load.tokens_per_second = 20_000.0
    for _ in range(4):
        w.step()
    assert w.replicas()[HUNG] >= _slo_replicas(20_000.0), w.replicas()  # the cheapest
    assert _condition(w.status, "SignalsFresh")["status"] == "True"

    # us-east's price server now accepts and never answers; the refresher's next read (its
    # cached rows are older than refreshSeconds) is held there.
    pub.hang.set()
    w.step()
    w.wait_for(lambda: pub.waiting > 0, "the refresher's read is held by the hung server")

    # While the request hangs: passes complete; us-east keeps its last published prices until
    # they are older than maxAgeSeconds, then its signals are stale and the fleet is held.
    w.load.tokens_per_second = 30_000.0
    stale: list[Outcome] = []
    for _ in range(30):
        out = w.step()
        _check_pass(w, pub, out)
        if _condition(out.status, "SignalsFresh")["status"] == "False":
            stale.append(out)
        if len(stale) >= 2:
            break
    assert stale, "us-east's signals were never reported stale while its feed hung"
    fresh = _condition(stale[-1].status, "SignalsFresh")
    assert HUNG in fresh["message"], fresh
    assert not any(n in fresh["message"] for n in set(PRICES_PER_MWH) - {HUNG}), fresh
    assert stale[-1].status["lastDecision"]["reason"] == "StaleSignalsHold", stale[-1].status

    # Load falls while us-east is stale: nothing is scaled down (hold); then it rises past what
    # is running: the fleet grows in the regions whose prices are known.
    held = w.replicas()
    w.load.tokens_per_second = 3_000.0
    for _ in range(3):
        _check_pass(w, pub, w.step())
        assert all(w.replicas()[n] >= held[n] for n in held), (held, w.replicas())
    w.load.tokens_per_second = SLO_TOKENS_PER_SECOND_PER_REPLICA * (sum(held.values()) + 1)
    for _ in range(4):
        _check_pass(w, pub, w.step())
    grown = {n: w.replicas()[n] - held[n] for n in held}
    assert sum(grown.values()) >= 1, (held, w.replicas())
    assert any(grown[n] > 0 for n in set(PRICES_PER_MWH) - {HUNG}), (held, w.replicas())

    # The Region health round completes too, and says which Region's feed is the problem.
    w.health.check_all()
    assert pub.waiting > 0
    assert set(w.writer.written) == set(PRICES_PER_MWH)
    for name, status in w.writer.written.items():
        signals_fresh = _conditions(status)["SignalsFresh"]
        assert signals_fresh["status"] == ("False" if name == HUNG else "True"), (name, status)
    hung_price = next(s for s in w.writer.written[HUNG]["signals"] if s["kind"] == "price")
    assert hung_price["fresh"] is False
    assert "pricePerKwh" not in w.writer.written[HUNG]  # unknown, not the last value
    assert w.writer.written["us-west"]["pricePerKwh"] == "0.2"
