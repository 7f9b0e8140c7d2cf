"""Two GPU variants of one model, end to end (issue 17, item 3).

An InferenceDeployment names two variants: ``h100`` (the H100 nodes every region's cluster has)
and ``a100`` (NVIDIA-A100-SXM4-80GB). us-east offers H100s only, us-west A100s only: this test
adds A100 nodes to us-west's cluster (KWOK) and its Region offers them at 1.50 an hour against
the H100's 2.50. The emulator serves one performance model per region, so us-west's engine is an
A100's (every step 1 / 0.6 as long: ~1,260 tok/s per replica within the SLO, against ~2,945 for
the H100; its pods are labelled with their variant, as Prometheus' pod SD + labelmap label real
ones, so each variant's learner is taught its own readings), and the balancer weighs each region
by what its replicas serve.

Power is dear where the A100s are (8.00 a kWh against 0.20), so an A100 replica costs more than
an H100 one, even idle, and the replicas come up as the ``h100`` variant in us-east (no A100 even
for a remainder: a mix would only pay if an A100 were cheaper than another H100). Then the
prices swap: every A100 replica now costs less than any H100 one, and the load moves to the
``a100`` variant make-before-break (the capacity that serves it never drops below the load);
status and the variant metric say which variant runs where, and the dashboard's variant panel
has data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from operator_clock import (
    SCALE_DOWN_STABILIZATION_SECONDS,
    SETTLE_PASSES,
    STEP_PASSES,
    passes_for,
)
from operator_world import (
    EMULATED_CAPACITY_TOKENS_PER_SECOND,
    H100_OFFER,
    PRODUCT,
    World,
    deployment_manifest,
    open_world,
)
from stack import Stack

from tests.fakes.vllm_emulator import EngineParams

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REGIONS = ["us-west", "us-east", "eu-central"]
PLACED = ["us-east", "us-west"]
PRICES = {"us-west": 8.00, "us-east": 0.20, "eu-central": 0.30}
LOAD_TOKENS_PER_SECOND = 2000.0
A100 = "NVIDIA-A100-SXM4-80GB"
A100_NODES = 2
A100_SPEED = 0.6
"""The A100 engine's speed relative to the H100's (sim/variants.py derives 0.61 from memory
bandwidth for decoding an 8B model)."""
A100_ENGINE = EngineParams(
    base_step_seconds=EngineParams.base_step_seconds / A100_SPEED,
    per_seq_step_seconds=EngineParams.per_seq_step_seconds / A100_SPEED,
    prefill_seconds_per_token=EngineParams.prefill_seconds_per_token / A100_SPEED,
    gpu_product="NVIDIA A100-SXM4-80GB",
    idle_watts=60.0,
    max_watts=400.0,
)
A100_OFFER = {
    "product": A100,
    "hourlyCost": "1.50",
    "idleWatts": 60,
    "maxWatts": 400,
    "hostWattsPerGpu": 100,
    "available": 8 * A100_NODES,
}
MOVE_PASSES = 3 * STEP_PASSES + passes_for(SCALE_DOWN_STABILIZATION_SECONDS)
"""Up to three make-before-break steps, and the scale-down window the source waits out."""


def _a100_nodes() -> list[dict[str, Any]]:
    """KWOK nodes with 8 A100s each, like hack/dev-up.sh's H100 ones."""
    nodes = []
    for i in range(A100_NODES):
        name = f"us-west-a100-{i}"
        resources = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "nvidia.com/gpu.product": A100,
                        "nvidia.com/gpu.count": "8",
                        "topology.kubernetes.io/region": "us-west",
                        "topology.kubernetes.io/zone": f"us-west-{'ab'[i % 2]}",
                    },
                },
                "status": {"allocatable": resources, "capacity": resources},
            }
        )
    return nodes


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    assert stack.regions == REGIONS, f"the stack's regions changed: {stack.regions}"
    nodes = _a100_nodes()
    for node in nodes:
        stack.apply("us-west", node)
    try:
        with open_world(
            stack,
            tmp_path_factory.mktemp("variants"),
            PRICES,
            namespace_prefix="e2e-var",
            engines={"us-west": A100_ENGINE},
            variants={"us-west": "a100"},
            offers={"us-east": [H100_OFFER], "us-west": [A100_OFFER], "eu-central": [H100_OFFER]},
        ) as w:
            w.total_tokens_per_second = LOAD_TOKENS_PER_SECOND
            manifest = deployment_manifest(w.name, w.namespace, PLACED)
            manifest["spec"]["engine"]["variants"] = [
                {"name": "h100", "gpuProduct": PRODUCT},
                {"name": "a100", "gpuProduct": A100, "tokensPerSecondPerReplica": 1200},
            ]
            stack.apply(stack.hub, manifest)
            yield w
    finally:
        for node in nodes:
            name = node["metadata"]["name"]
            stack.kubectl("us-west", "delete", "node", name, "--ignore-not-found", check=False)


def _serves(world: World, ready: dict[str, int]) -> float:
    """Output tokens/s the Ready replicas serve within the SLO (each region's engine)."""
    return sum(n * world.rigs[r].capacity_tokens_per_second for r, n in ready.items())


def _serving(world: World, region: str) -> set[str]:
    """The deployment's workloads with Ready replicas in one region."""
    return {name for name, ready in world.ready_workloads(region).items() if ready}


def _variants(world: World) -> dict[str, dict[str, int]]:
    """status.regions[].variants: replicas set per variant, by region."""
    rows = world.status().get("regions") or []
    return {row["name"]: row.get("variants") or {} for row in rows}


def _wait_for_variants(world: World, expected: dict[str, tuple[str, bool]], least: int = 1) -> None:
    """Wait until status.regions[].variants says, per region, that the variant runs (at least
    ``least`` replicas) or does not (0). The status is written at the end of the pass that
    acted, so right after the cluster shows a move it may still describe the pass before."""

    def holds() -> bool:
        variants = _variants(world)
        return all(
            (variants[region].get(variant, 0) >= least)
            if runs
            else variants[region].get(variant, 0) == 0
            for region, (variant, runs) in expected.items()
        )

    world.wait(f"the status reports the variants {expected}", holds, passes=STEP_PASSES)


def test_the_engines_differ_as_the_scenario_says(world: World) -> None:
    a100 = world.rigs["us-west"].capacity_tokens_per_second
    h100 = world.rigs["us-east"].capacity_tokens_per_second
    assert h100 == EMULATED_CAPACITY_TOKENS_PER_SECOND
    # One H100 replica serves the load; the A100s need two: the variants differ in capacity as
    # well as in price and power.
    assert math.ceil(LOAD_TOKENS_PER_SECOND / h100) == 1, h100
    assert math.ceil(LOAD_TOKENS_PER_SECOND / a100) == 2, a100


def test_replicas_come_up_as_the_cheaper_variant(world: World) -> None:
    world.wait(
        "the h100 variant alone serves the load, in us-east",
        lambda: (
            (ready := world.ready_replicas())["us-west"] == 0
            and _serves(world, ready) >= LOAD_TOKENS_PER_SECOND
            and world.condition("Ready").get("status") == "True"
        ),
        passes=4 * STEP_PASSES + SETTLE_PASSES,
    )
    assert _serving(world, "us-east") == {f"{world.name}-vllm"}
    a100s = [r["us-west"] for _, r in world.ready_history if r["us-west"]]
    assert not a100s, f"an A100 replica ran while every one cost more than an H100: {a100s}"
    _wait_for_variants(world, {"us-east": ("h100", True), "us-west": ("a100", False)})


def test_when_prices_swap_the_load_moves_to_the_other_variant_make_before_break(
    world: World,
) -> None:
    mark = len(world.ready_history)
    world.board.prices.update({"us-east": 8.00, "us-west": 0.20})
    world.wait(
        "the load moves to the a100 variant in us-west",
        lambda: (
            (ready := world.ready_replicas())["us-east"] == 0
            and _serves(world, ready) >= LOAD_TOKENS_PER_SECOND
        ),
        passes=MOVE_PASSES,
    )
    during = [r for _, r in world.ready_history[mark:]]
    short = [r for r in during if _serves(world, r) < LOAD_TOKENS_PER_SECOND]
    assert not short, f"the Ready replicas served less than the load in the move: {short}"
    assert any(r["us-east"] and r["us-west"] for r in during), (
        "the a100 replicas never ran beside the h100 ones (break before make)"
    )
    assert _serving(world, "us-west") == {f"{world.name}-a100-vllm"}
    _wait_for_variants(world, {"us-west": ("a100", True), "us-east": ("h100", False)}, least=2)


def test_the_variant_panel_shows_the_scenario(world: World) -> None:
    # The operator's Prometheus scrapes every second; the panel's rate-free gauge has data as
    # soon as one scrape saw it (the move above took many passes).
    gaps = world.dashboard_gaps("variants")
    assert not gaps, "variant panels without data:\n" + "\n".join(gaps)
