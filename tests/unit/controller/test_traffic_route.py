"""The control loop publishes its traffic weights on the HTTPRoute the spec names (fake hub).

Every test runs real passes of the Reconciler against in-memory regions and an in-memory
HTTPRoute store that applies the JSON patches for real (tests/fakes/world.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.cases.malformed import example
from tests.fakes.world import T0, FakeRoutes, build_world
from wattscale.controller.reconcile import Outcome, Reconciler
from wattscale.controller.settings import Settings

pytestmark = pytest.mark.unit

NS = "ml-serving"
NAME = "llama"
PRICES = {"us-west": 0.20, "us-east": 0.08, "eu-central": 0.30}
BACKENDS = [f"{NAME}-{r}" for r in PRICES]


class Loop:
    """The reconciler over fake regions and fake hub routes; ``step()`` is one pass."""

    def __init__(self, mode: str = "Active", route: dict[str, Any] | None = None) -> None:
        self.directory, self.regions, self.load = build_world(PRICES)
        self.routes = FakeRoutes()
        self.now = T0.timestamp()
        self.reconciler = Reconciler(
            self.directory,
            Settings(interval_seconds=30),
            clock=lambda: self.now,
            routes=self.routes,
        )
        spec = copy.deepcopy(example("InferenceDeployment")["spec"])
        spec["placement"].update(
            regions=list(PRICES),
            homeRegion="us-west",
            objective="cost",
            users=[],
            drainSeconds=0,
            minSavingsPercent=1,
            scaleDownStabilizationSeconds=0,
            httpRoute=route if route is not None else {"name": "llm"},
        )
        spec["placement"].pop("carbonPricePerTonne")
        spec["mode"] = mode
        self.spec = spec
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []

    def step(self) -> Outcome:
        self.now += 30
        out = self.reconciler.reconcile(
            name=NAME, namespace=NS, spec=self.spec, status=self.status, generation=1
        )
        self.status = out.status
        self.events += [(e.type, e.reason, e.message) for e in out.events]
        return out

    def condition(self) -> dict[str, Any]:
        found = [c for c in self.status["conditions"] if c["type"] == "TrafficRouted"]
        assert len(found) == 1, self.status["conditions"]
        return found[0]

    def status_weights(self) -> dict[str, int]:
        """status.regions[].trafficWeightPercent, keyed by backend name."""
        return {f"{NAME}-{r['name']}": r["trafficWeightPercent"] for r in self.status["regions"]}

    def ready(self) -> dict[str, int]:
        return {n: sum(r.cluster.ready.values()) for n, r in self.regions.items()}

    def cold_start_done(self) -> None:
        """Replicas asked for in the last pass become Ready now."""
        for region in self.regions.values():
            c = region.cluster
            for key, dep in c.deployments.items():
                c.ready[key] = dep["spec"]["replicas"]


def _close_to_status(route: dict[str, int], status: dict[str, int]) -> bool:
    """Per mille on the route, percent in status: the same split, give or take rounding."""
    return all(abs(route[b] / 10 - status[b]) <= 1 for b in BACKENDS)


def test_route_weights_follow_the_status_and_nothing_else_changes() -> None:
    loop = Loop()
    original = loop.routes.add(NS, "llm", [*BACKENDS, "canary"], hostnames=["llm.example"])
    loop.step()
    weights = loop.routes.weights(NS, "llm")
    assert weights == {
        "llama-us-west": 0,
        "llama-us-east": 1000,
        "llama-eu-central": 0,
        "canary": 1,
    }
    assert _close_to_status(weights, loop.status_weights())
    assert loop.condition()["status"] == "True"
    assert loop.condition()["reason"] == "WeightsSet"
    after = loop.routes.routes[(NS, "llm")]
    for i, ref in enumerate(after["spec"]["rules"][0]["backendRefs"]):
        assert {k: v for k, v in ref.items() if k != "weight"} == {
            k: v for k, v in original["spec"]["rules"][0]["backendRefs"][i].items() if k != "weight"
        }
    assert after["spec"]["hostnames"] == ["llm.example"]
    assert after["spec"]["parentRefs"] == original["spec"]["parentRefs"]
    routed = [e for e in loop.events if e[1] == "TrafficRouted"]
    assert routed == [
        (
            "Normal",
            "TrafficRouted",
            "HTTPRoute ml-serving/llm: llama-eu-central 1->0, llama-us-east 1->1000, "
            "llama-us-west 1->0",
        )
    ]


def test_unchanged_weights_are_not_patched_again() -> None:
    loop = Loop()
    loop.routes.add(NS, "llm", BACKENDS)
    loop.step()
    patches = len(loop.routes.patches)
    for _ in range(3):
        loop.step()
    assert len(loop.routes.patches) == patches == 1
    assert [e for e in loop.events if e[1] == "TrafficRouted"][1:] == []


def test_weights_move_only_once_the_new_replicas_are_ready() -> None:
    loop = Loop()
    loop.routes.add(NS, "llm", BACKENDS)
    for region in loop.regions.values():
        region.cluster.ready_immediately = False
    loop.load.tokens_per_second = 12_000.0
    loop.step()
    for _ in range(6):
        loop.cold_start_done()
        loop.step()
    assert loop.routes.weights(NS, "llm")["llama-us-east"] == 1000
    loop.regions["us-east"].price.value = 2.0  # us-west is now the cheapest
    seen: list[tuple[dict[str, int], dict[str, int]]] = []
    for _ in range(8):
        loop.step()
        seen.append((loop.ready(), loop.routes.weights(NS, "llm")))
        assert _close_to_status(loop.routes.weights(NS, "llm"), loop.status_weights())
        loop.cold_start_done()
    for ready, weights in seen:
        for backend, weight in weights.items():
            region = backend.removeprefix(f"{NAME}-")
            assert weight == 0 or ready[region] > 0, f"traffic to {region} before it was Ready"
    assert seen[0][1]["llama-us-east"] == 1000, "traffic left us-east before us-west was Ready"
    assert loop.routes.weights(NS, "llm") == {
        "llama-us-west": 1000,
        "llama-us-east": 0,
        "llama-eu-central": 0,
    }


def test_dry_run_reads_the_route_and_says_what_it_would_set() -> None:
    loop = Loop(mode="DryRun")
    loop.routes.add(NS, "llm", BACKENDS)
    loop.step()
    assert loop.routes.patches == []
    assert loop.routes.weights(NS, "llm") == dict.fromkeys(BACKENDS, 1)
    cond = loop.condition()
    assert (cond["status"], cond["reason"]) == ("False", "DryRun")
    assert "would set" in cond["message"]
    assert "llama-us-east 1->1000" in cond["message"]


def test_a_missing_route_is_a_condition_and_one_warning_not_one_per_pass() -> None:
    loop = Loop(route={"name": "nope"})
    for _ in range(3):
        loop.step()
    cond = loop.condition()
    assert (cond["status"], cond["reason"]) == ("False", "RouteNotFound")
    assert "ml-serving/nope does not exist" in cond["message"]
    assert [e[:2] for e in loop.events if e[1] == "RouteNotFound"] == [("Warning", "RouteNotFound")]
    assert loop.status["replicas"] >= 1  # the deployment itself carries on
    loop.routes.add(NS, "nope", BACKENDS)  # the user creates it: routed on the next pass
    loop.step()
    assert loop.condition()["status"] == "True"
    assert loop.routes.weights(NS, "nope")["llama-us-east"] == 1000


def test_a_hub_without_the_gateway_api_is_a_condition() -> None:
    loop = Loop()
    loop.routes.served_api = False
    loop.step()
    assert loop.condition()["reason"] == "GatewayAPIMissing"
    no_store = Loop()
    no_store.reconciler = Reconciler(
        no_store.directory, Settings(interval_seconds=30), clock=lambda: no_store.now
    )
    no_store.step()
    assert no_store.condition()["reason"] == "GatewayAPIMissing"


def test_no_matching_backend_is_reported_and_the_route_is_untouched() -> None:
    loop = Loop()
    loop.routes.add(NS, "llm", ["llama", "llama-vllm"])
    loop.step()
    cond = loop.condition()
    assert (cond["status"], cond["reason"]) == ("False", "NoMatchingBackend")
    assert "llama-us-east" in cond["message"]
    assert loop.routes.patches == []


def test_forbidden_says_which_rbac_is_missing() -> None:
    loop = Loop()
    loop.routes.add(NS, "llm", BACKENDS)
    loop.routes.forbidden = True
    loop.step()
    cond = loop.condition()
    assert (cond["status"], cond["reason"]) == ("False", "Forbidden")
    assert "rbac.httpRoutes=true" in cond["message"]


def test_a_route_in_another_namespace_is_refused() -> None:
    loop = Loop(route={"name": "llm", "namespace": "team-b"})
    loop.routes.add("team-b", "llm", BACKENDS)
    loop.step()
    assert loop.condition()["reason"] == "CrossNamespaceRoute"
    assert loop.routes.patches == []


def test_a_concurrent_edit_fails_the_patch_safely_and_is_redone_on_the_new_route() -> None:
    loop = Loop()
    loop.routes.add(NS, "llm", BACKENDS)

    def someone_inserts_a_backend_first() -> None:
        refs = loop.routes.routes[(NS, "llm")]["spec"]["rules"][0]["backendRefs"]
        refs.insert(0, {"name": "canary", "port": 8000, "weight": 9})

    loop.routes.before_patch.append(someone_inserts_a_backend_first)
    loop.step()
    weights = loop.routes.weights(NS, "llm")
    assert weights == {
        "canary": 9,
        "llama-us-west": 0,
        "llama-us-east": 1000,
        "llama-eu-central": 0,
    }
    assert len(loop.routes.patches) == 1  # the first patch was refused whole
    assert loop.condition()["status"] == "True"


def test_without_an_http_route_there_is_no_condition_and_no_call() -> None:
    loop = Loop()
    del loop.spec["placement"]["httpRoute"]
    loop.step()
    assert all(c["type"] != "TrafficRouted" for c in loop.status["conditions"])
    assert loop.routes.discoveries == 0


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "RouteError"), (403, "Forbidden"), (409, "RouteError"), (422, "PatchRejected")],
)
def test_a_failed_route_write_never_removes_replicas_the_route_still_sends_traffic_to(
    status: int, reason: str
) -> None:
    """Issue 14 item 3: with the route stuck at us-east 1000, us-east keeps its replicas."""
    from wattscale.clusters.routes import RouteError

    loop = Loop()
    loop.routes.add(NS, "llm", BACKENDS)
    loop.load.tokens_per_second = 12_000.0
    for _ in range(4):
        loop.step()
        loop.cold_start_done()
    assert loop.routes.weights(NS, "llm")["llama-us-east"] == 1000
    before = loop.ready()["us-east"]
    assert before >= 2
    loop.routes.patch_error = RouteError(f"the server said {status}", status)
    loop.regions["us-east"].price.value = 2.0  # us-west is now far cheaper: move everything
    for _ in range(10):
        loop.step()
        loop.cold_start_done()
        assert loop.routes.weights(NS, "llm")["llama-us-east"] == 1000
        assert loop.regions["us-east"].cluster.replicas(NAME) >= before, (
            "replicas removed from the region the route still sends all traffic to"
        )
    assert loop.ready()["us-west"] >= 1, "the new region may still be built up"
    assert (loop.condition()["status"], loop.condition()["reason"]) == ("False", reason)
    assert (
        "us-east kept: the HTTPRoute still sends traffic there"
        in (loop.status["lastDecision"]["message"])
    )
    loop.routes.patch_error = None  # the write goes through: now the move may complete
    for _ in range(10):
        loop.step()
        loop.cold_start_done()
    assert loop.routes.weights(NS, "llm")["llama-us-east"] == 0
    assert loop.regions["us-east"].cluster.replicas(NAME) == 0


def test_an_unreadable_route_holds_every_region() -> None:
    loop = Loop()
    loop.routes.add(NS, "llm", BACKENDS)
    loop.load.tokens_per_second = 12_000.0
    for _ in range(4):
        loop.step()
        loop.cold_start_done()
    before = loop.ready()
    loop.routes.forbidden = True  # get and patch both refused: the weights are unknown
    loop.load.tokens_per_second = 1_000.0  # less demand: the plan would scale down
    for _ in range(6):
        loop.step()
        loop.cold_start_done()
        for region, ready in before.items():
            assert loop.regions[region].cluster.replicas(NAME) >= ready
