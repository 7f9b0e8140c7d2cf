"""Scale to zero and back, end to end (issue 17, item 2).

An InferenceDeployment with ``minReplicas: 0`` and a 60 s idle window starts asleep; an emulated
endpoint picker (tests/fakes/gateway_emulator.py, scraped by us-west's real Prometheus only)
reports requests waiting in its flow-control queue, and the operator wakes one replica in the
cheapest region (us-east) within a pass or two, then sizes it by the measured load; once users
stop sending, it goes back to zero after its idle window. Status conditions and Events say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_clock import RATE_WINDOW_SECONDS, STEP_PASSES, passes_for
from operator_world import World, deployment_manifest, open_world
from stack import Stack

from tests.fakes.gateway_emulator import GatewayEmulator, GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REGIONS = ["us-west", "us-east", "eu-central"]
PRICES = {"us-west": 0.20, "us-east": 0.05, "eu-central": 0.30}
IDLE_SECONDS = 60
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    server = GatewayServer(GatewayEmulator(pool="llama", model=MODEL)).start()
    yield server
    server.stop()


def _asleep(world: World) -> bool:
    cond = world.condition("ScaledToZero")
    return cond.get("status") == "True" and sum(world.desired().values()) == 0


def test_sleeps_after_its_idle_window_and_wakes_on_waiting_requests(
    stack: Stack, tmp_path: Path, gateway: GatewayServer
) -> None:
    assert stack.regions == REGIONS, f"the stack's regions changed: {stack.regions}"
    with open_world(stack, tmp_path, PRICES, gateway=gateway) as world:
        manifest = deployment_manifest("llama", world.namespace, REGIONS)
        manifest["spec"]["slo"]["minReplicas"] = 0
        manifest["spec"]["scaleToZero"] = {"idleSeconds": IDLE_SECONDS}
        stack.apply(stack.hub, manifest)
        world.wait("a new deployment starts asleep", lambda: _asleep(world), passes=STEP_PASSES)
        assert world.condition("Ready").get("reason") == "ScaledToZero"

        # Requests queue at the gateway: one replica wakes in the cheapest region.
        world.total_tokens_per_second = 1500.0
        gateway.gateway.set_waiting(4)
        world.wait(
            "woke one replica in us-east (the cheapest region)",
            lambda: world.desired() == {"us-west": 0, "us-east": 1, "eu-central": 0},
            passes=passes_for(4.0) + 2,  # the scrape, then the pass that decides
        )
        cond = world.condition("ScaledToZero")
        assert cond.get("reason") == "WokeUp", cond
        assert "4 requests waiting at the gateway" in cond.get("message", ""), cond
        world.wait(
            "the woken replica serves",
            lambda: world.ready_replicas()["us-east"] >= 1,
            passes=STEP_PASSES,
        )
        gateway.gateway.set_waiting(0)

        # Users stop: after the idle window (and the rate window that measures it) it sleeps.
        world.total_tokens_per_second = 0.0
        world.wait(
            "back at zero after the idle window",
            lambda: _asleep(world),
            passes=passes_for(IDLE_SECONDS + 2 * RATE_WINDOW_SECONDS) + STEP_PASSES,
        )
        reasons = [e.get("reason") for e in world.events()]
        assert "WokeUp" in reasons, reasons
        assert "ScaledToZero" in reasons, reasons
        world.wait(
            "no vLLM pod left anywhere",
            lambda: sum(world.ready_replicas().values()) == 0,
            passes=STEP_PASSES,
        )
        # The dashboards' scale-to-zero panels show this scenario (the operator's scenario
        # proves every other panel: test_operator.py).
        gaps = world.dashboard_gaps("scale-to-zero")
        assert not gaps, "scale-to-zero panels without data:\n" + "\n".join(gaps)
