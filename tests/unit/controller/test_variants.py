"""The controller and spec.engine.variants: one variant runs (as the workload <name>-vllm);
more than one is refused with a clear condition until the controller plans them."""

from __future__ import annotations

import pytest

from tests.unit.controller.test_reconcile import Harness, _condition

pytestmark = pytest.mark.unit

H100 = "NVIDIA-H100-80GB-HBM3"


def test_two_variants_are_refused_and_nothing_is_touched() -> None:
    h = Harness()
    h.spec["engine"]["variants"] = [
        {"name": "h100", "gpuProduct": H100},
        {"name": "a100", "gpuProduct": "NVIDIA-A100-SXM4-80GB"},
    ]
    out = h.step()
    assert out.status["lastDecision"]["reason"] == "Unsupported"
    assert "plans one variant per deployment" in out.status["lastDecision"]["message"]
    assert _condition(out.status, "Ready")["status"] == "False"
    assert all(not r.cluster.applied for r in h.regions.values())


def test_one_variant_runs_as_the_deployment_did_with_its_gpus_and_args() -> None:
    h = Harness()
    h.spec["engine"]["variants"] = [
        {"name": "h100-tp2", "gpuProduct": H100, "gpusPerReplica": 2, "args": ["--enforce-eager"]}
    ]
    h.serve(20_000.0)
    assert sum(h.replicas().values()) > 0
    deployments = [d for r in h.regions.values() for d in r.cluster.deployments.values()]
    assert deployments
    for dep in deployments:
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert dep["metadata"]["name"] == "llama-vllm"
        assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
        assert container["args"][-1] == "--enforce-eager"
