"""Integration: per-variant readings of one deployment whose two variants serve in one region.

Against a real Prometheus scraping two emulated variants of the same deployment (the first's
pods with no variant label, the other's labelled ``wattscale_io_variant="a100"`` through HTTP
SD, as pod SD + ``labelmap`` makes it): one query per reading grouped by the variant label
gives each variant its own pods, tokens and latency, as the narrowed per-variant queries do,
through the per-deployment reader and the region snapshot alike; and each variant's capacity
learner is taught its own windows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from tests.cases.malformed import example
from tests.fakes.vllm_emulator import ConstantLoad, Emulator, EngineParams
from tests.integration.metrics.live import WINDOW_SECONDS, Stack
from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.clusters.client import WorkloadState
from wattscale.controller.memory import Memories, learn_variants
from wattscale.fleet.observe import RegionObservation, VariantObservation
from wattscale.metrics import DeploymentTarget, ReadingStatus
from wattscale.metrics.queries import QueryBuilder
from wattscale.metrics.snapshot import MetricsSnapshot

pytestmark = pytest.mark.integration

NS, NAME = "team-v", "llama"
# The A100 replica is slower: its step takes twice as long, so its latency is its own.
A100 = EngineParams(base_step_seconds=0.016, per_seq_step_seconds=0.00016)
EXPECTED = {"": 2, "a100": 1}


def _stack(own_stack: Callable[[dict[str, Emulator]], Stack]) -> Stack:
    load = {"prompt_tokens": 500, "output_tokens": 200}
    stack = own_stack(
        {
            "h100": Emulator(
                ConstantLoad(2000.0, **load), replicas=2, namespace=NS, deployment=NAME,
                poisson=False, seed=11,
            ),
            "a100": Emulator(
                ConstantLoad(600.0, **load), replicas=1, namespace=NS, deployment=NAME,
                poisson=False, seed=12, variant="a100", params=A100,
            ),
        }
    )  # fmt: skip
    for name, pods in (("h100", 2), ("a100", 1)):
        stack.wait_for_pods(name, pods)
        stack.wait_for_window(name)
    emu = stack.deployments["h100"].emulator
    stack.prometheus.wait_for(  # a whole window of steady decoding
        f'min(count_over_time(vllm:num_requests_running{{namespace="{NS}"}}[{WINDOW_SECONDS}s]))'
        f" >= {WINDOW_SECONDS}",
        predicate=lambda _: emu.now >= 12.0,
        timeout_seconds=40.0,
    )
    return stack


def test_each_variant_reads_its_own_pods_and_teaches_its_own_learner(
    own_stack: Callable[[dict[str, Emulator]], Stack],
) -> None:
    stack = _stack(own_stack)
    reader = stack.reader()
    target = DeploymentTarget(NS, NAME)
    got = reader.read_variants(target, EXPECTED)
    first, a100 = got[""], got["a100"]
    assert (first.pods_reporting, a100.pods_reporting) == (2, 1)
    for r in (first, a100):
        assert r.generation_tokens_per_second.status is ReadingStatus.OK, r
        assert r.ttft_p95_seconds.usable, r
    assert first.generation_tokens_per_second.value == pytest.approx(2000.0, rel=0.3)
    assert a100.generation_tokens_per_second.value == pytest.approx(600.0, rel=0.3)
    assert a100.tpot_p95_seconds.value > first.tpot_p95_seconds.value  # type: ignore[operator]

    # The grouped query equals the narrowed one per variant (a moment apart: gauges move).
    for variant, pods in EXPECTED.items():
        narrowed = DeploymentTarget(NS, NAME, variant=variant)
        alone = reader.read(narrowed, expected_pods=pods)
        assert alone.pods_reporting == got[variant].pods_reporting
        assert alone.generation_tokens_per_second.value == pytest.approx(
            got[variant].generation_tokens_per_second.value, rel=0.15
        )
    # The region's whole (demand, completeness) still sums every variant's pods.
    whole = reader.read(target, expected_pods=3)
    assert whole.pods_reporting == 3
    assert whole.generation_tokens_per_second.value == pytest.approx(2600.0, rel=0.3)

    # The snapshot: 19 queries as before, 14 more once a deployment with variants reads.
    snapshot = MetricsSnapshot(reader)
    snapshot.refresh()
    assert snapshot.queries == 19
    shared = snapshot.reader_for(target).read_variants(target, EXPECTED)
    assert snapshot.queries == 19 + len(QueryBuilder(reader.config).vllm_reads())
    for variant in EXPECTED:
        assert shared[variant].pods_reporting == got[variant].pods_reporting
        assert shared[variant].generation_tokens_per_second.value == pytest.approx(
            got[variant].generation_tokens_per_second.value, rel=0.15
        )

    # Each variant's learner gets its own window from the same region.
    spec_doc = copy.deepcopy(example("InferenceDeployment")["spec"])
    product = spec_doc["engine"]["gpuProduct"]
    spec_doc["engine"]["variants"] = [
        {"name": "h100", "gpuProduct": product},
        {"name": "a100", "gpuProduct": "NVIDIA-A100-SXM4-80GB"},
    ]
    spec = InferenceDeploymentSpec.model_validate(spec_doc)
    mem = Memories().get(NS, NAME, spec)
    obs = RegionObservation(name="test", runtime=None, available=True)
    obs.workload = WorkloadState(exists=True, readyReplicas=2)
    obs.variants = [VariantObservation("a100", 1, workload=WorkloadState(True, readyReplicas=1))]
    obs.variant_readings = {"h100": first, "a100": a100}
    now_s = first.observed_at.timestamp()
    for t in (now_s - 2 * WINDOW_SECONDS, now_s):  # Ready steady over the window
        assert learn_variants(mem, spec, obs, t, float(WINDOW_SECONDS))
    h100_seen = mem.learner.observations[-1]
    a100_seen = mem.variant_learners["a100"].observations[-1]
    assert h100_seen.replicas == 2
    assert a100_seen.replicas == 1
    assert h100_seen.tokens_per_second_per_replica == pytest.approx(1000.0, rel=0.3)
    assert a100_seen.tokens_per_second_per_replica == pytest.approx(600.0, rel=0.3)
    assert a100_seen.tpot_p95_seconds > h100_seen.tpot_p95_seconds  # type: ignore[operator]
