"""Variants render as one workload each: the first as before variants, the others beside it."""

from __future__ import annotations

import pytest

from tests.cases.malformed import example
from wattscale.api import InferenceDeployment, parse_object
from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.clusters.render import (
    ANNOTATION_HASH,
    LABEL_VARIANT,
    render_deployment,
    render_service,
    workload_name,
)

pytestmark = pytest.mark.unit

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"


def _spec(variants: list[dict[str, object]] | None = None) -> InferenceDeploymentSpec:
    doc = example("InferenceDeployment")
    if variants is not None:
        doc["spec"]["engine"]["variants"] = variants
    obj = parse_object(doc)
    assert isinstance(obj, InferenceDeployment)
    return obj.spec


TWO = [
    {"name": "h100", "gpuProduct": H100},
    {"name": "a100-tp2", "gpuProduct": A100, "gpusPerReplica": 2, "args": ["--quantization=fp8"]},
]


def test_names_first_variant_as_before_others_beside_it() -> None:
    assert workload_name("llama") == "llama-vllm"
    assert workload_name("llama", "a100-tp2") == "llama-a100-tp2-vllm"
    long = "l" * 60
    name = workload_name(long, "a100-tp2")
    assert len(name) <= 63
    assert name != workload_name(long)
    assert name.endswith("-vllm")


def test_an_object_without_variants_renders_exactly_as_before() -> None:
    plain = _spec()
    one = _spec([{"name": "h100", "gpuProduct": H100}])
    a = render_deployment(name="llama", namespace="ml", region="r", spec=plain)
    b = render_deployment(name="llama", namespace="ml", region="r", spec=one)
    assert (
        a["metadata"]["annotations"][ANNOTATION_HASH]
        == b["metadata"]["annotations"][ANNOTATION_HASH]
    )
    assert LABEL_VARIANT not in a["spec"]["selector"]["matchLabels"]


def test_a_second_variant_has_its_product_gpus_args_and_selector() -> None:
    spec = _spec(TWO)
    dep = render_deployment(name="llama", namespace="ml", region="r", spec=spec, variant=1)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert dep["metadata"]["name"] == "llama-a100-tp2-vllm"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": A100}
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    assert container["args"][-1] == "--quantization=fp8"  # after engine.args
    assert "--max-model-len=8192" in container["args"]
    assert dep["spec"]["selector"]["matchLabels"][LABEL_VARIANT] == "a100-tp2"
    svc = render_service(name="llama", namespace="ml", region="r", port=8000, variant="a100-tp2")
    assert svc["metadata"]["name"] == dep["metadata"]["name"]
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_resolved_variants_take_the_deployment_hint_unless_their_own() -> None:
    spec = _spec([{**TWO[0], "tokensPerSecondPerReplica": 7000}, TWO[1]])
    first, second = spec.engine.resolved_variants(3000)
    assert (first.capacity_hint, second.capacity_hint) == (7000, 3000)
    (implicit,) = _spec().engine.resolved_variants(3000)
    assert (implicit.name, implicit.gpu_product, implicit.capacity_hint) == ("", H100, 3000)
