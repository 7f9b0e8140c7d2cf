"""The rendered vLLM workload carries the spec faithfully and leaves replicas to /scale."""

from __future__ import annotations

import pytest

from tests.cases.malformed import example
from wattscale.api import InferenceDeployment, parse_object
from wattscale.clusters.client import drift
from wattscale.clusters.render import (
    ANNOTATION_HASH,
    render_deployment,
    render_service,
    workload_name,
)

pytestmark = pytest.mark.unit


def _spec() -> InferenceDeployment:
    obj = parse_object(example("InferenceDeployment"))
    assert isinstance(obj, InferenceDeployment)
    return obj


def test_deployment_requests_gpus_and_selects_the_product() -> None:
    spec = _spec().spec
    dep = render_deployment(name="llama", namespace="ml", region="us-west", spec=spec)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert container["args"][:2] == ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
    assert "--max-model-len=8192" in container["args"]
    assert container["env"][-1] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_replicas_are_left_to_the_scale_subresource() -> None:
    dep = render_deployment(name="llama", namespace="ml", region="us-west", spec=_spec().spec)
    assert "replicas" not in dep["spec"]


def test_startup_probe_covers_the_cold_start() -> None:
    spec = _spec().spec
    probe = render_deployment(name="l", namespace="ml", region="r", spec=spec)["spec"]["template"][
        "spec"
    ]["containers"][0]["startupProbe"]
    allowed_seconds = probe["periodSeconds"] * probe["failureThreshold"]
    assert allowed_seconds >= 2 * spec.placement.coldStartSeconds


def test_model_cache_and_shm_volumes() -> None:
    dep = render_deployment(name="l", namespace="ml", region="r", spec=_spec().spec)
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": "hf-model-cache"}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"


def test_hash_changes_with_the_spec_only() -> None:
    spec = _spec().spec
    a = render_deployment(name="l", namespace="ml", region="r", spec=spec)
    b = render_deployment(name="l", namespace="ml", region="r", spec=spec)
    changed = spec.model_copy(update={"model": "mistralai/Mistral-7B-v0.3"})
    c = render_deployment(name="l", namespace="ml", region="r", spec=changed)
    h = ANNOTATION_HASH
    assert a["metadata"]["annotations"][h] == b["metadata"]["annotations"][h]
    assert a["metadata"]["annotations"][h] != c["metadata"]["annotations"][h]


def test_service_selects_the_pods() -> None:
    dep = render_deployment(name="l", namespace="ml", region="r", spec=_spec().spec)
    svc = render_service(name="l", namespace="ml", region="r", port=8000)
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["metadata"]["name"] == workload_name("l") == dep["metadata"]["name"]


def test_drift_names_the_fields_changed_by_hand() -> None:
    dep = render_deployment(name="l", namespace="ml", region="r", spec=_spec().spec)
    assert drift(dep, dep) == []
    import copy

    live = copy.deepcopy(dep)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:latest"
    assert drift(live, dep) == ["spec.template.spec.containers.0.image"]
