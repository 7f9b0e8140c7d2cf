"""E2E: the local multi-region stack behaves like the real thing our operator will meet.

- every region has fake GPU nodes, and the hub holds a working kubeconfig Secret per region;
- a Deployment asking for one GPU becomes Ready on a fake GPU node (scheduler + KWOK);
- one asking for more GPUs than any node has stays Pending, visibly Unschedulable;
- our CRDs are accepted by a real kube-apiserver and `kubectl explain` shows their descriptions;
- every example in examples/ passes the real API server's validation (server-side dry run);
- every malformed object of tests/cases/malformed.py is refused with the message a person needs;
- what a killed test session left (a namespace, an InferenceDeployment whose finalizer no operator
  will remove) is swept by the next session that finds itself alone.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack import API_WAIT_SECONDS, REPO, Stack, wait_for

from tests.cases.malformed import CASES, Case

# The session fixture may build the stack inside the first test; allow for a slow, cold start.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GPU = "nvidia.com/gpu"
GPUS_PER_NODE = 8  # hack/dev-up.sh's default
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))
EXAMPLE_FILES = sorted((REPO / "examples").glob("*.yaml"))


def gpu_deployment(name: str, namespace: str, gpus: int) -> dict[str, Any]:
    """A vLLM-shaped Deployment asking for `gpus` GPUs. KWOK never pulls or runs the image."""
    resources = {GPU: str(gpus), "cpu": "1", "memory": "4Gi"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.6.3",
                            "resources": {"requests": resources, "limits": {GPU: str(gpus)}},
                        }
                    ],
                },
            },
        },
    }


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            found: dict[str, Any] = cond
            return found
    return None


def condition_status(obj: dict[str, Any], kind: str) -> str | None:
    cond = condition(obj, kind)
    return None if cond is None else str(cond.get("status"))


def squash(text: str) -> str:
    """Collapse whitespace, so text wrapped by kubectl compares equal to the original."""
    return " ".join(text.split())


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ---- the stack itself ---------------------------------------------------------------------------


def test_every_region_has_ready_fake_gpu_nodes(stack: Stack) -> None:
    for region in stack.regions:
        nodes = stack.get_json(region, "nodes", "-l", "nvidia.com/gpu.product")["items"]
        assert nodes, f"no GPU nodes in {region}"
        for node in nodes:
            name, labels = node["metadata"]["name"], node["metadata"]["labels"]
            assert node["status"]["allocatable"][GPU] == str(GPUS_PER_NODE), name
            assert node["status"]["capacity"][GPU] == str(GPUS_PER_NODE), name
            assert labels["topology.kubernetes.io/region"] == region, name
            assert labels["topology.kubernetes.io/zone"].startswith(f"{region}-"), name
            assert labels["nvidia.com/gpu.product"].startswith("NVIDIA-"), name
            assert condition_status(node, "Ready") == "True", f"{name} not Ready"


def test_hub_holds_a_working_kubeconfig_secret_per_region(stack: Stack, tmp_path: Path) -> None:
    for region in stack.regions:
        secret = stack.get_json(
            stack.hub, "secret", "-n", "wattscale-system", f"region-{region}-kubeconfig"
        )
        kubeconfig = base64.b64decode(secret["data"]["kubeconfig"])
        assert b"server: https://127.0.0.1:" in kubeconfig
        # Self-contained: it must work from the host with nothing but the Secret's content.
        path = tmp_path / f"{region}.kubeconfig"
        path.write_bytes(kubeconfig)
        nodes = stack.kubectl(region, "get", "nodes", "-o", "name", kubeconfig=path).stdout
        assert f"node/{region}-gpu-0" in nodes.split()


# ---- scheduling on fake GPUs ------------------------------------------------------------------


def test_one_gpu_deployment_becomes_ready_on_a_fake_gpu_node(
    stack: Stack, region: str, namespace: str
) -> None:
    stack.apply(region, gpu_deployment("one-gpu", namespace, gpus=1))
    stack.kubectl(
        region,
        *("rollout", "status", "deployment/one-gpu", "-n", namespace),
        f"--timeout={API_WAIT_SECONDS:.0f}s",
        timeout=API_WAIT_SECONDS + 10,
    )

    pods = stack.get_json(region, "pods", "-n", namespace, "-l", "app=one-gpu")["items"]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    assert condition_status(pod, "Ready") == "True"
    node = stack.get_json(region, "node", pod["spec"]["nodeName"])
    assert node["status"]["allocatable"][GPU] == str(GPUS_PER_NODE)
    assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == region


def test_deployment_wanting_more_gpus_than_any_node_has_stays_pending(
    stack: Stack, region: str, namespace: str
) -> None:
    stack.apply(region, gpu_deployment("too-many-gpus", namespace, gpus=GPUS_PER_NODE + 1))

    def unschedulable_pod() -> tuple[dict[str, Any], dict[str, Any]] | None:
        pods = stack.get_json(region, "pods", "-n", namespace, "-l", "app=too-many-gpus")
        for pod in pods["items"]:
            scheduled = condition(pod, "PodScheduled")
            if scheduled and scheduled["status"] == "False":
                return pod, scheduled
        return None

    pod, scheduled = wait_for("the scheduler to give up on the pod", unschedulable_pod)
    assert scheduled["reason"] == "Unschedulable"
    assert f"Insufficient {GPU}" in scheduled["message"]
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")

    # Visible to a person too: a FailedScheduling event, and no available replica.
    def failed_scheduling_event() -> str | None:
        events = stack.kubectl(
            region,
            *("get", "events", "-n", namespace, "--field-selector", "reason=FailedScheduling"),
            "-o=jsonpath={.items[*].message}",
        ).stdout
        return events or None

    assert f"Insufficient {GPU}" in wait_for("a FailedScheduling event", failed_scheduling_event)
    deployment = stack.get_json(region, "deployment", "too-many-gpus", "-n", namespace)
    assert not deployment["status"].get("availableReplicas")


# ---- our CRDs on a real API server ------------------------------------------------------------

needs_crds = pytest.mark.skipif(not CRD_FILES, reason="no crds/*.yaml in the repo yet")


@needs_crds
def test_our_crds_are_accepted_and_established_on_the_hub(stack: Stack) -> None:
    # The `stack` fixture applied them (server-side) and kept the API server's errors.
    rejected = stack.crd_rejections
    assert not rejected, "the API server rejected our CRDs:\n" + "\n".join(
        f"--- {name}:\n{message}" for name, message in rejected.items()
    )
    for path in CRD_FILES:
        for crd in load_yaml_docs(path):
            name = crd["metadata"]["name"]
            live = stack.get_json(stack.hub, "crd", name)
            for kind in ("Established", "NamesAccepted"):
                assert condition_status(live, kind) == "True", f"{name}: {condition(live, kind)}"
            # A non-structural schema is accepted but flagged; ours must be structural.
            assert condition(live, "NonStructuralSchema") is None, name


def skip_if_crds_rejected(stack: Stack) -> None:
    """Tests that need our CRDs on the hub: one root cause, one failure (the test above)."""
    if stack.crd_rejections:
        pytest.skip(
            "the hub rejected crds/"
            + ", crds/".join(stack.crd_rejections)
            + ": see test_our_crds_are_accepted_and_established_on_the_hub"
        )


def _inferencedeployment_spec_schema() -> dict[str, Any] | None:
    for path in CRD_FILES:
        for crd in load_yaml_docs(path):
            if crd["spec"]["names"]["plural"] != "inferencedeployments":
                continue
            version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
            spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
            return spec
    return None


@needs_crds
def test_kubectl_explain_shows_our_field_descriptions(stack: Stack) -> None:
    skip_if_crds_rejected(stack)
    spec = _inferencedeployment_spec_schema()
    if spec is None:
        pytest.skip("no InferenceDeployment CRD in crds/ yet")
    out = stack.kubectl(stack.hub, "explain", "inferencedeployments.spec").stdout
    text = squash(out)
    if spec.get("description"):
        assert squash(spec["description"]) in text
    described = {k: v["description"] for k, v in spec["properties"].items() if "description" in v}
    assert described, "the CRD's spec fields have no descriptions"
    for field_name, description in described.items():
        assert field_name in out
        assert squash(description) in text, f"description of spec.{field_name} not in explain"


@pytest.mark.skipif(not EXAMPLE_FILES, reason="no examples/*.yaml in the repo yet")
@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_passes_api_server_validation(stack: Stack, example: Path) -> None:
    skip_if_crds_rejected(stack)
    ensure_namespaces(stack, load_yaml_docs(example))
    # Server-side dry run: the full admission and CEL validation, nothing persisted.
    proc = stack.kubectl(stack.hub, "apply", "--dry-run=server", "-f", str(example), check=False)
    assert proc.returncode == 0, f"{example.name} rejected by the API server:\n{proc.stderr}"


def ensure_namespaces(stack: Stack, docs: list[dict[str, Any]]) -> None:
    """Create the namespaces the documents live in, as a user would have."""
    for doc in docs:
        namespace = doc.get("metadata", {}).get("namespace")
        if namespace:
            manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            stack.apply(stack.hub, manifest)


@needs_crds
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_object_is_refused_with_a_readable_message(stack: Stack, case: Case) -> None:
    skip_if_crds_rejected(stack)
    ensure_namespaces(stack, [case.doc])
    proc = stack.kubectl(
        stack.hub, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(case.doc), check=False
    )
    assert proc.returncode != 0, f"the API server accepted the malformed object {case.name}"
    assert case.server_says in proc.stderr, (
        f"{case.name}: expected the API server to say {case.server_says!r}, it said:\n{proc.stderr}"
    )


def test_a_killed_sessions_namespaces_are_swept_finalizers_and_all(stack: Stack) -> None:
    prefix = f"e2e-leftover-{uuid.uuid4().hex[:6]}"  # only this test's namespaces are swept
    namespace = f"{prefix}-a"
    for cluster in (stack.hub, stack.regions[0]):
        stack.kubectl(cluster, "create", "namespace", namespace)
    doc = load_yaml_docs(EXAMPLE_FILES[0])[0]
    assert doc["kind"] == "InferenceDeployment", EXAMPLE_FILES[0]
    doc["metadata"] = {"name": "left", "namespace": namespace, "finalizers": ["wattscale.io/x"]}
    stack.apply(stack.hub, doc)

    swept = stack.sweep_leftovers(prefixes=(prefix,))

    assert sorted(swept) == sorted([f"{stack.hub}/{namespace}", f"{stack.regions[0]}/{namespace}"])

    def gone() -> bool:
        listed = (stack.kubectl(c, "get", "namespaces", "-o", "name").stdout for c in clusters)
        return all(namespace not in names for names in listed)

    clusters = (stack.hub, stack.regions[0])
    wait_for(f"namespace {namespace} gone from {' and '.join(clusters)}", gone)
