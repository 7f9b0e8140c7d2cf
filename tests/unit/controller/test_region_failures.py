"""Any failure of one region's client is that region's problem, reported, never the pass's.

Issue 14 item 6: an HTML page a proxy answered with 200 made the kubernetes client raise
pydantic's ValidationError; it aborted the whole pass (no region scaled, no status written) and
the Region health loop stopped. Here one region's client raises exactly that, at every call the
controller makes, and the other regions carry on while the broken one is reported. The real
client is checked too, against a loopback server that answers every request with an HTML page.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from pydantic import TypeAdapter, ValidationError

from tests.unit.controller.test_reconcile import Harness
from tests.unit.controller.test_region_health import Writer, _conditions, _loop
from wattscale.clusters.client import ClusterUnreachableError, RegionCluster
from wattscale.controller.memory import Memory
from wattscale.controller.report import Outcome, decision_events
from wattscale.fleet.observe import RegionObservation, unreachable
from wattscale.forecast.holt import ForecastConfig, warm_start
from wattscale.metrics.capacity import CapacityLearner, LatencySlo

pytestmark = pytest.mark.unit

HTML = b"<html><body>Please log in to the corporate proxy SECRET-MARKER</body></html>"


def html_validation_error() -> ValidationError:
    """The very error the kubernetes client raises for an HTML body (a str, not an object)."""
    try:
        TypeAdapter(dict[str, Any]).validate_python(HTML.decode())
    except ValidationError as err:
        return err
    raise AssertionError("unreachable")


def _row(status: dict[str, Any], region: str) -> dict[str, Any]:
    return next(r for r in status["regions"] if r["name"] == region)


@pytest.mark.parametrize("call", ["state", "scale", "apply", "read_deployment", "every call"])
def test_one_regions_client_raising_validation_error_does_not_abort_the_pass(call: str) -> None:
    h = Harness(placement__minSavingsPercent=1, placement__scaleDownStabilizationSeconds=0)
    h.serve(12_000.0)
    before = dict(h.replicas())
    assert before["us-east"] >= 2
    broken = h.region("us-east").cluster
    broken.fault = html_validation_error()
    broken.fault_on = None if call == "every call" else {call}
    # Work that makes the pass call the broken client: more load (us-east, the cheapest, would
    # grow); for the other calls also a move to us-west and a new argument to apply.
    h.load.tokens_per_second = 20_000.0
    if call != "scale":
        h.region("us-east").price.value = 2.0
        h.spec["engine"]["args"] = [*h.spec["engine"].get("args", []), "--max-num-seqs=128"]
    reported: list[str] = []
    for _ in range(6):
        out = h.step()  # returns: the pass was not aborted
        assert out.status["regions"], "no status written"
        assert "SECRET-MARKER" not in str(out.status), "the body of the answer was echoed"
        for row in out.status["regions"]:
            if row["name"] != "us-east":  # every healthy region carries what was decided
                assert h.replicas()[row["name"]] == row["desiredReplicas"], row
        degraded = next(c for c in out.status["conditions"] if c["type"] == "Degraded")
        if _row(out.status, "us-east")["available"] is False:
            assert degraded["status"] == "True"
            reported.append(degraded["message"])
    assert reported, "the broken region was never reported"
    assert all("us-east" in m and "ValidationError" in m for m in reported), reported
    if call != "scale":
        assert h.replicas()["us-west"] >= 1, "the healthy region was not acted on"
    assert h.replicas()["us-east"] == before["us-east"], "the broken region was changed"


def test_region_health_reports_the_broken_region_and_checks_the_others() -> None:
    loop, writer, regions, _ = _loop()
    regions["us-east"].cluster.fault = html_validation_error()
    loop.check_all()
    assert set(writer.written) == {"us-west", "us-east"}
    reachable = _conditions(writer.written["us-east"])["Reachable"]
    assert reachable["status"] == "False"
    assert "health check failed (ValidationError)" in reachable["message"]
    assert _conditions(writer.written["us-west"])["Reachable"]["status"] == "True"


def test_the_region_health_loop_never_stops() -> None:
    loop, writer, _regions, _ = _loop()
    rounds: list[int] = []
    real_names = loop.directory.names

    def names() -> list[str]:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("the directory broke once")
        return real_names()

    loop.directory.names = names  # type: ignore[method-assign]
    loop.interval_seconds = 0.01

    async def run_until_two_rounds_wrote() -> None:
        task = asyncio.create_task(loop.run())
        try:
            # Wait for the condition, bounded by many intervals (a busy machine is slow).
            for _ in range(10_000):
                if len(rounds) >= 2 and writer.written:
                    return
                assert not task.done(), "the loop stopped"
                await asyncio.sleep(loop.interval_seconds)
            raise AssertionError("the loop never ran a second round")
        finally:
            task.cancel()

    asyncio.run(run_until_two_rounds_wrote())
    assert set(writer.written) == {"us-west", "us-east"}
    assert isinstance(writer, Writer)


class _HtmlProxy(http.server.BaseHTTPRequestHandler):
    """Answers every request with 200 and an HTML page, as a captive proxy does."""

    def _html(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(HTML)))
        self.end_headers()
        self.wfile.write(HTML)

    do_GET = do_PATCH = do_POST = do_DELETE = _html

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def html_proxy() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_client_turns_an_html_200_into_an_unreachable_region(html_proxy: str) -> None:
    configuration = client.Configuration()
    configuration.host = html_proxy
    cluster = RegionCluster("us-east", client.ApiClient(configuration))
    calls = {
        "check": cluster.check,
        "state": lambda: cluster.state("llama-vllm", "ml-serving"),
        "scale": lambda: cluster.scale("llama-vllm", "ml-serving", 2),
    }
    for what, call in calls.items():
        with pytest.raises(ClusterUnreachableError) as caught:
            call()
        message = str(caught.value)
        assert "the answer could not be read (ValidationError)" in message, what
        assert "SECRET-MARKER" not in message
    cluster.close()


def test_an_outage_is_one_warning_however_each_pass_found_it() -> None:
    # The first pass after a member stops finds it by its own read (connection refused); the
    # next ones are told by the Region health loop. Same outage: one RegionProblem, until the
    # region answers again; a new outage later is posted again.
    mem = Memory(warm_start([], ForecastConfig()), CapacityLearner(LatencySlo(None, None), None))
    outcome = Outcome(
        {"lastDecision": {"reason": "NoChange", "message": "m"}, "regionsSummary": ""}
    )

    def problems(*found: str) -> list[str]:
        obs = RegionObservation("us-east", None, errors=list(found))
        return [e.message for e in decision_events(mem, outcome, [obs]) if e.type == "Warning"]

    first = problems(unreachable("us-east", "read deployment: Connection refused"))
    later = problems(unreachable("us-east", "Region health check: timed out"))
    assert len(first) == 1
    assert "Connection refused" in first[0]
    assert later == []
    assert problems() == []
    assert len(problems(unreachable("us-east", "Region health check: timed out"))) == 1
