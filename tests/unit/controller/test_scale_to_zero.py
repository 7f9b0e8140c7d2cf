"""Scale to zero and back, one pass at a time against fake regions: the controller's wake path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.controller.test_reconcile import Harness
from wattscale.api.inference import DEFAULT_WAKE_QUERY
from wattscale.cli_operator import explain_text

pytestmark = pytest.mark.unit

IDLE_SECONDS = 300


def _harness() -> Harness:
    h = Harness(slo__minReplicas=0)
    h.spec["scaleToZero"] = {"idleSeconds": IDLE_SECONDS}
    for r in h.regions.values():
        r.metrics.gateway_waiting = 0.0
    return h


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _serving(h: Harness) -> Harness:
    """Woken by a waiting request, then serving 20,000 tok/s for a few passes."""
    h.region("us-west").metrics.gateway_waiting = 5.0
    h.step()
    h.region("us-west").metrics.gateway_waiting = 0.0
    h.load.tokens_per_second = 20_000.0
    for _ in range(4):
        h.step()
    assert sum(h.replicas().values()) >= 4
    return h


def _asleep(h: Harness) -> Harness:
    """Serve a while, then no demand until the idle window has passed."""
    _serving(h)
    h.load.tokens_per_second = 0.0
    for _ in range(40):
        h.step()
        if sum(h.replicas().values()) == 0:
            break
    return h


def test_a_new_deployment_with_min_replicas_zero_waits_for_a_request() -> None:
    h = _harness()
    out = h.step()
    assert sum(h.replicas().values()) == 0
    assert out.status["lastDecision"]["reason"] == "ScaledToZero"
    assert _condition(out.status, "Ready")["reason"] == "ScaledToZero"


def test_idle_for_the_window_it_sleeps_and_says_so() -> None:
    h = _serving(_harness())
    went_idle = h.clock.now  # the last pass that measured demand
    h.load.tokens_per_second = 0.0
    h.step()
    while sum(h.replicas().values()) > 0:
        assert h.clock.now - went_idle < IDLE_SECONDS + 600, "never slept"
        h.step()
    # Not before the idle window: the last replica stayed until it had passed.
    assert h.clock.now - went_idle >= IDLE_SECONDS
    cond = _condition(h.status, "ScaledToZero")
    assert cond["status"] == "True"
    assert cond["reason"] == "ScaledToZero"
    assert "300 s" in cond["message"]
    assert "cold start" in cond["message"]
    assert ("ScaledToZero", h.status["lastDecision"]["message"]) in h.events
    text = explain_text({"metadata": {"name": "llama"}, "spec": h.spec, "status": h.status})
    assert "scale to zero: asleep since" in text
    # Asleep, nothing waiting: it stays at zero and says nothing new.
    before = len(h.events)
    for _ in range(5):
        h.step()
    assert sum(h.replicas().values()) == 0
    assert len(h.events) == before


def test_a_waiting_request_wakes_the_cheapest_region_within_one_pass() -> None:
    h = _asleep(_harness())
    assert sum(h.replicas().values()) == 0
    h.region("us-west").metrics.gateway_waiting = 3.0  # the gateway is scraped in one region
    out = h.step()
    assert h.replicas() == {"us-west": 0, "us-east": 1, "eu-central": 0}  # us-east is cheapest
    assert out.status["lastDecision"]["reason"] == "WokeUp"
    assert any(reason == "WokeUp" for reason, _ in out_events(out))
    cond = _condition(out.status, "ScaledToZero")
    assert cond["status"] == "False"
    assert cond["reason"] == "WokeUp"
    assert "3 requests waiting at the gateway" in cond["message"]
    waiting = h.reconciler.metrics.registry.get_sample_value(
        "wattscale_gateway_waiting_requests", {"namespace": "ml-serving", "deployment": "llama"}
    )
    assert waiting == 3.0
    # Once the replica reports demand, the ordinary sizing takes over.
    h.region("us-west").metrics.gateway_waiting = 0.0
    h.load.tokens_per_second = 20_000.0
    for _ in range(4):
        h.step()
    assert sum(h.replicas().values()) >= 4
    assert _condition(h.status, "ScaledToZero")["reason"] == "WokeUp"


def test_an_unreadable_gateway_wakes_it_and_keeps_it_awake() -> None:
    h = _asleep(_harness())
    h.region("eu-central").metrics.down = True
    out = h.step()
    assert sum(h.replicas().values()) == 1
    assert out.status["lastDecision"]["reason"] == "WokeUp"
    assert any("wake query failed" in n for n in out.status["explanation"]["notes"])


def test_the_default_wake_query_names_this_deployment() -> None:
    h = _harness()
    del h.spec["scaleToZero"]
    h.step()
    query = h.region("us-east").metrics.queries[-1]
    assert query == DEFAULT_WAKE_QUERY.replace("$name", "llama").replace("$model", h.spec["model"])
    assert 'inference_pool="llama"' in query


def test_without_min_replicas_zero_the_gateway_is_not_read() -> None:
    h = Harness()
    h.serve(20_000.0)
    assert all(not r.metrics.queries for r in h.regions.values())
    assert all(c["type"] != "ScaledToZero" for c in h.status["conditions"])


def out_events(out: Any) -> list[tuple[str, str]]:
    return [(e.reason, e.message) for e in out.events]


def test_asleep_with_nobody_waiting_the_forecaster_learns_zero_demand() -> None:
    h = _asleep(_harness())
    mem = h.reconciler._memories.get("ml-serving", "llama", _spec_model(h))
    before = (mem.forecaster.updates, mem.forecaster.open_count)
    for _ in range(6):
        h.step()
    assert (mem.forecaster.updates, mem.forecaster.open_count) != before
    assert mem.forecaster.last_value == 0.0
    # Not while a request waits (the wake pass): demand is unknown then.
    h.region("us-west").metrics.gateway_waiting = 2.0
    before = (mem.forecaster.updates, mem.forecaster.open_count)
    h.step()
    assert (mem.forecaster.updates, mem.forecaster.open_count) == before


def _spec_model(h: Harness) -> Any:
    from wattscale.api.inference import InferenceDeploymentSpec

    return InferenceDeploymentSpec.model_validate(h.spec)
