"""Traffic weights on a Gateway API HTTPRoute, end to end (issue 8, item 4).

The hub gets the real standard-channel HTTPRoute CRD (Gateway API v1.6.3, fetched from the Go
module proxy by hack/gateway-api-crds.sh and left installed). A route in the world's namespace
sends to ``llama-us-west``, ``llama-us-east`` and ``llama-eu-central`` (and to a ``canary`` that
is not ours); its parent Gateway need not exist, since only the weights are under test. The
operator must keep the route's weights equal to the status traffic weights, move them only once
the new region's replicas are Ready when the price moves the replicas, touch nothing else in the
route, keep the replicas a route still sends traffic to while its writes are refused, and report
a route that does not exist as a condition without crashing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from operator_clock import STEP_PASSES
from operator_world import World, deployment_manifest, open_world
from stack import REPO, Stack

# Waits are budgeted in operator passes (operator_clock.py); this only stops a hung test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
MOVE_PASSES = 3 * STEP_PASSES
"""The weights follow a make-before-break move: new replicas up and Ready, then the weight."""

REGIONS = ["us-west", "us-east", "eu-central"]
PRICES = {"us-west": 0.20, "us-east": 0.05, "eu-central": 0.30}
ROUTE = "llm"
BACKENDS = [f"llama-{r}" for r in REGIONS]
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"


@pytest.fixture(scope="module")
def gateway_api(stack: Stack) -> None:
    """The standard-channel HTTPRoute CRD on the hub (idempotent; left installed)."""
    proc = subprocess.run(
        [str(REPO / "hack" / "gateway-api-crds.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, f"hack/gateway-api-crds.sh failed:\n{proc.stderr}"
    crd = proc.stdout.strip().splitlines()[-1]
    applied = stack.apply_file(stack.hub, REPO / crd)
    assert applied.returncode == 0, f"the hub refused the HTTPRoute CRD:\n{applied.stderr}"
    stack.wait_condition(stack.hub, f"crd/{HTTPROUTE_CRD}", "Established")


def _route_manifest(namespace: str) -> dict[str, Any]:
    refs: list[dict[str, Any]] = [{"name": b, "port": 8000} for b in BACKENDS]
    refs.insert(1, {"name": "canary", "port": 8000, "weight": 7})
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": ROUTE, "namespace": namespace, "labels": {"team": "ml"}},
        "spec": {
            "parentRefs": [{"name": "inference-gateway", "sectionName": "https"}],
            "hostnames": ["llm.example.internal"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                    "backendRefs": refs,
                },
                {"backendRefs": [{"name": "static-site", "port": 80, "weight": 3}]},
            ],
        },
    }


@pytest.fixture(scope="module")
def world(
    stack: Stack, gateway_api: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    assert stack.regions == REGIONS, f"the stack's regions changed: {stack.regions}"
    with open_world(
        stack, tmp_path_factory.mktemp("route"), PRICES, namespace_prefix="e2e-route"
    ) as w:
        w.total_tokens_per_second = 1500.0
        stack.apply(stack.hub, _route_manifest(w.namespace))
        manifest = deployment_manifest("llama", w.namespace, REGIONS)
        manifest["spec"]["placement"]["httpRoute"] = {"name": ROUTE}
        stack.apply(stack.hub, manifest)
        yield w


def _route(world: World) -> dict[str, Any]:
    return world.stack.get_json(world.stack.hub, "httproute", ROUTE, "-n", world.namespace)


def _weights(route: dict[str, Any]) -> dict[str, int]:
    refs = route["spec"]["rules"][0]["backendRefs"]
    return {r["name"]: r.get("weight", 1) for r in refs if r["name"] in BACKENDS}


def _status_percent(world: World) -> dict[str, int]:
    return {f"llama-{r['name']}": r["trafficWeightPercent"] for r in world.status()["regions"]}


def _without_our_weights(route: dict[str, Any]) -> dict[str, Any]:
    """The route's spec and labels with our backends' weights blanked out."""
    spec = json.loads(json.dumps(route["spec"]))
    for rule in spec["rules"]:
        for ref in rule.get("backendRefs", []):
            if ref["name"] in BACKENDS:
                ref.pop("weight", None)
    return {"spec": spec, "labels": route["metadata"].get("labels")}


def _agrees_with_status(world: World) -> bool:
    """Route (per mille) and status (percent) say the same split, give or take rounding."""
    route, status = _weights(_route(world)), _status_percent(world)
    return sum(route.values()) == 1000 and all(
        abs(route[b] / 10 - status[b]) <= 1 for b in BACKENDS
    )


def test_route_weights_follow_the_status_and_nothing_else_changes(world: World) -> None:
    before = _without_our_weights(_route(world))
    world.wait(
        "us-east (the cheapest) is Ready and holds all the route's weight",
        lambda: (
            world.ready_replicas()["us-east"] >= 1
            and _weights(_route(world))
            == {"llama-us-west": 0, "llama-us-east": 1000, "llama-eu-central": 0}
        ),
        passes=2 * STEP_PASSES,
    )
    world.wait("the route agrees with status", lambda: _agrees_with_status(world), passes=2)
    route = _route(world)
    assert _without_our_weights(route) == before
    canary = route["spec"]["rules"][0]["backendRefs"][1]
    assert canary == {"group": "", "kind": "Service", "name": "canary", "port": 8000, "weight": 7}
    routed = world.condition("TrafficRouted")
    assert (routed.get("status"), routed.get("reason")) == ("True", "WeightsSet"), routed
    assert "TrafficRouted" in [e["reason"] for e in world.events()]


def test_price_jump_moves_the_weights_only_once_the_new_replicas_are_ready(world: World) -> None:
    world.wait(
        "all the weight is on us-east",
        lambda: _weights(_route(world))["llama-us-east"] == 1000,
        passes=STEP_PASSES,
    )
    before = _without_our_weights(_route(world))
    world.board.prices["us-east"] = 1.50  # us-west is now the cheapest
    samples: list[tuple[dict[str, int], dict[str, int], dict[str, int]]] = []

    def moved() -> bool:
        ready_before = world.ready_replicas()
        weights = _weights(_route(world))
        ready_after = world.ready_replicas()
        samples.append((ready_before, weights, ready_after))
        return weights["llama-us-west"] == 1000

    world.wait("the weight moves to us-west", moved, passes=MOVE_PASSES)
    # A region only ever has weight while it has Ready replicas: the old one keeps its weight
    # until the route is patched (before its replicas go); the new one gets weight only for
    # replicas that were Ready when it was patched (so still Ready just after we read it).
    for ready_before, weights, ready_after in samples:
        for backend, weight in weights.items():
            region = backend.removeprefix("llama-")
            assert weight == 0 or ready_before[region] + ready_after[region] > 0, (
                f"{backend} had weight {weight} with no Ready replica: {samples}"
            )
    first_west = next(s for s in samples if s[1]["llama-us-west"] > 0)
    assert first_west[2]["us-west"] >= 1, f"us-west got traffic before it was Ready: {samples}"
    assert samples[0][1]["llama-us-east"] > 0, "the weight left us-east at once"
    world.wait("the route agrees with status", lambda: _agrees_with_status(world), passes=2)
    assert _without_our_weights(_route(world)) == before


def _freeze(world: World, ns: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy refusing every write to our route (403), reads still work."""
    name = f"freeze-{ns}"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["gateway.networking.k8s.io"],
                            "apiVersions": ["*"],
                            "operations": ["UPDATE"],
                            "resources": ["httproutes"],
                            "resourceNames": [ROUTE],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "false",
                        "message": "frozen by the e2e test",
                        "reason": "Forbidden",
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}
                },
            },
        },
    ]


def _route_write_refused(world: World) -> bool:
    proc = world.stack.kubectl(
        world.stack.hub,
        *("patch", "httproute", ROUTE, "-n", world.namespace, "--type=merge"),
        *("--dry-run=server", "-p", json.dumps({"metadata": {"labels": {"probe": "1"}}})),
        check=False,
    )
    return proc.returncode != 0 and "frozen by the e2e test" in proc.stderr


def test_a_refused_route_write_keeps_the_replicas_the_route_still_sends_traffic_to(
    world: World,
) -> None:
    """Issue 14 item 3, against a real API server: the route's writes are refused (403 from an
    admission policy) while the plan would move everything away from the region it weighs."""
    world.wait(
        "all the weight is on us-west",
        lambda: _weights(_route(world))["llama-us-west"] == 1000,
        passes=STEP_PASSES,
    )
    policy = _freeze(world, world.namespace)
    for doc in policy:
        world.stack.apply(world.stack.hub, doc)
    try:
        world.wait(
            "the admission policy refuses route writes",
            lambda: _route_write_refused(world),
            passes=2,
        )
        # The route as the policy froze it (a write may have landed between the wait for 1000
        # and the policy taking effect): from here on it must not change.
        frozen = _weights(_route(world))
        ready_before = world.ready_replicas()["us-west"]
        assert ready_before >= 1
        assert frozen["llama-us-west"] > 0, frozen
        world.board.prices["us-east"] = 0.05  # us-east is the cheapest again: move everything
        world.wait(
            "TrafficRouted turns False: the write was refused",
            lambda: (
                world.condition("TrafficRouted").get("reason") in ("Forbidden", "PatchRejected")
            ),
            passes=STEP_PASSES,
        )
        seen: list[tuple[dict[str, int], dict[str, int]]] = []
        world.let_pass(
            MOVE_PASSES,
            lambda: seen.append((_weights(_route(world)), world.ready_replicas())),
        )
        assert seen, "nothing sampled"
        for weights, ready in seen:
            assert weights == frozen, f"the route changed while frozen at {frozen}: {seen}"
            assert ready["us-west"] >= ready_before, f"us-west lost replicas it serves: {seen}"
    finally:
        for doc in reversed(policy):
            world.stack.kubectl(
                world.stack.hub,
                *("delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found"),
                check=False,
            )
    world.wait(
        "once writes are allowed, the route follows the status again",
        lambda: (
            world.condition("TrafficRouted").get("status") == "True" and _agrees_with_status(world)
        ),
        passes=MOVE_PASSES,
    )


def _name_route(world: World, route: str) -> None:
    """Point the InferenceDeployment's spec.placement.httpRoute at ``route``."""
    patch = {"spec": {"placement": {"httpRoute": {"name": route}}}}
    world.stack.kubectl(
        world.stack.hub,
        "patch",
        "infd",
        "llama",
        "-n",
        world.namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


def test_a_route_that_does_not_exist_is_a_condition_not_a_crash(world: World) -> None:
    _name_route(world, "no-such-route")
    world.wait(
        "TrafficRouted turns False with RouteNotFound",
        lambda: world.condition("TrafficRouted").get("reason") == "RouteNotFound",
        passes=STEP_PASSES,
    )
    assert "no-such-route does not exist" in world.condition("TrafficRouted")["message"]
    warnings = [e for e in world.events() if e["reason"] == "RouteNotFound"]
    assert [e["type"] for e in warnings] == ["Warning"]
    assert world.operator is not None
    assert world.operator.poll() is None, "the operator died"
    world.wait(
        "the deployment carries on deciding",
        lambda: world.condition("Ready").get("status") == "True",
        passes=STEP_PASSES,
    )
    _name_route(world, ROUTE)
    world.wait(
        "routed again once the spec names the route",
        lambda: world.condition("TrafficRouted").get("status") == "True",
        passes=STEP_PASSES,
    )
