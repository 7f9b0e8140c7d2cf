"""Region health: what the loop writes to each Region's status, and that one bad Region cannot
stop the others (fake clusters and feeds from tests/fakes/world.py, a recording status writer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.fakes.world import T0, build_world
from wattscale.controller.region_health import RegionHealthLoop
from wattscale.telemetry.metrics import OperatorMetrics

pytestmark = pytest.mark.unit

PRICES = {"us-west": 0.20, "us-east": 0.08}


class Writer:
    """Records what would be patched; Regions in ``gone`` answer 404."""

    def __init__(self) -> None:
        self.written: dict[str, dict[str, Any]] = {}
        self.gone: set[str] = set()
        self.broken: set[str] = set()

    def __call__(self, name: str, status: dict[str, Any]) -> bool:
        if name in self.broken:
            raise RuntimeError("apiserver said 500")
        if name in self.gone:
            return False
        self.written[name] = status
        return True


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def _loop() -> tuple[RegionHealthLoop, Writer, Any, list[Any]]:
    directory, regions, _ = build_world(PRICES)
    writer = Writer()
    clock = [T0]
    loop = RegionHealthLoop(directory, writer, OperatorMetrics(), 30.0, clock=lambda: clock[0])
    return loop, writer, regions, clock


def test_reachable_region_with_fresh_feeds() -> None:
    loop, writer, _, _ = _loop()
    loop.check_all()
    status = writer.written["us-east"]
    assert status["reachable"] is True
    assert status["pricePerKwh"] == "0.08"
    assert {s["kind"] for s in status["signals"]} == {"price", "carbon"}
    assert all(None not in s.values() for s in status["signals"])  # absent, never null
    conditions = _conditions(status)
    assert conditions["Reachable"]["status"] == "True"
    assert conditions["SignalsFresh"]["status"] == "True"


def test_unreachable_cluster_and_dead_feed_are_conditions_with_the_cause() -> None:
    loop, writer, regions, clock = _loop()
    loop.check_all()
    first = _conditions(writer.written["us-west"])["Reachable"]["lastTransitionTime"]
    regions["us-west"].cluster.reachable = False
    regions["us-west"].price.break_with_outage()
    clock[0] = T0 + timedelta(minutes=1)
    loop.check_all()
    status = writer.written["us-west"]
    conditions = _conditions(status)
    assert status["reachable"] is False
    assert conditions["Reachable"]["status"] == "False"
    assert conditions["Reachable"]["reason"] == "ClusterUnreachable"
    assert "connection refused" in conditions["Reachable"]["message"]
    assert conditions["Reachable"]["lastTransitionTime"] != first
    assert conditions["SignalsFresh"]["status"] == "False"
    assert "price" in conditions["SignalsFresh"]["message"]
    assert _conditions(writer.written["us-east"])["Reachable"]["status"] == "True"


def test_transition_times_carry_over_from_what_the_server_holds() -> None:
    loop, writer, _, clock = _loop()
    loop.check_all()
    held = writer.written["us-east"]
    restarted = RegionHealthLoop(
        loop.directory, writer, OperatorMetrics(), 30.0, clock=lambda: clock[0]
    )
    restarted.seen("us-east", held)
    clock[0] = T0 + timedelta(hours=1)
    restarted.check("us-east")
    after = _conditions(writer.written["us-east"])["Reachable"]
    assert after["lastTransitionTime"] == _conditions(held)["Reachable"]["lastTransitionTime"]


def test_a_failing_region_does_not_stop_the_others() -> None:
    loop, writer, _, _ = _loop()
    writer.broken.add("us-east")
    writer.gone.add("us-west")
    loop.check_all()  # no exception
    assert writer.written == {}
    writer.broken.clear()
    writer.gone.clear()
    loop.check_all()
    assert set(writer.written) == set(PRICES)
