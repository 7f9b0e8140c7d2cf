"""E2E: the Helm chart lints, renders, and installs into the hub of the local stack.

- `helm lint --strict` and `helm template` pass with the default values and every ci/ file;
- what `helm template` renders is accepted by a real kube-apiserver (server-side dry run,
  including Regions from values against the CRD's schema and CEL rules);
- `helm install` into the hub succeeds: CRDs, ServiceAccount, RBAC, Deployment, Service, dashboard
  ConfigMaps and a Region from values exist, shaped as intended;
- the hub's RBAC authorizer grants the chart's ServiceAccount what the operator needs and refuses
  what it does not (kubectl auth can-i --as the ServiceAccount);
- `helm upgrade` and `helm uninstall` work and uninstall leaves no cluster-scoped leftovers;
- `wattscale run`, out of cluster under the ServiceAccount's token, serves vLLM on the cluster
  it runs against without a single Forbidden.

The whole operator scenario under that identity, and every dashboard query against the
Prometheus that scraped it, are in tests/e2e/test_operator.py (see operator_world.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart import (
    CHART,
    access_mismatches,
    can_i,
    helm,
    helm_environment,
    rbac_refusals,
    service_account_kubeconfig,
)
from operator_clock import INTERVAL_SECONDS, START_UP_SECONDS, STEP_PASSES, OperatorClock
from stack import API_WAIT_SECONDS, REPO, Stack, wait_for

from tests.fakes.prometheus import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CI_FILES = sorted((CHART / "ci").glob("*.yaml"))
VALUE_SETS = [None, *CI_FILES]
# Kinds the hub cannot know (no prometheus-operator CRDs there): rendered, not dry-run applied.
FOREIGN_KINDS = {"ServiceMonitor"}


def _ids(value: Path | None) -> str:
    return "defaults" if value is None else value.name


@pytest.fixture(scope="module")
def helm_env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm: our bin dir on PATH, helm's own state in a throw-away dir."""
    return helm_environment(stack, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def kube_version(stack: Stack) -> str:
    """The hub's Kubernetes version, for `helm template` (which has no cluster to ask)."""
    out = stack.kubectl(stack.hub, "get", "--raw", "/version").stdout
    return str(yaml.safe_load(out)["gitVersion"])


def values_args(values: Path | None) -> list[str]:
    return [] if values is None else ["-f", str(values)]


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


# ---- lint and template ---------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS, ids=_ids)
def test_helm_lint(stack: Stack, helm_env: dict[str, str], values: Path | None) -> None:
    out = helm(stack, helm_env, "lint", "--strict", str(CHART), *values_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_plain_offline_helm_template_renders(stack: Stack, tmp_path: Path) -> None:
    """What GitOps users run: `helm template t helm/wattscale`, with no cluster to ask and no
    --kube-version, so helm assumes the Kubernetes version of the client-go it was built with
    (v1.36 for helm v4.2.3; a helm v3 says so only if it is stamped as a release build). The
    chart's minimum (kubeVersion) must still refuse what is older."""
    env = helm_environment(stack, tmp_path / "helm-home")
    env["KUBECONFIG"] = str(tmp_path / "no-such.kubeconfig")  # offline: nothing to ask
    out = helm(stack, env, "template", "t", str(CHART))
    kinds = {d["kind"] for d in docs(out)}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "Service"} <= kinds, kinds
    minimum = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    old = subprocess.run(
        [str(stack.bin_dir / "helm"), "template", "t", str(CHART), "--kube-version", "1.26.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=API_WAIT_SECONDS,
        check=False,
    )
    assert old.returncode != 0, f"rendered for Kubernetes 1.26 despite kubeVersion {minimum}"
    assert "kubeVersion" in old.stderr, old.stderr


@pytest.fixture(scope="module")
def hub_crds(stack: Stack) -> None:
    """The chart's CRDs on the hub (as hack/dev-up.sh leaves them), so Regions can be checked."""
    for crd in sorted((CHART / "crds").glob("*.yaml")):
        stack.kubectl(
            stack.hub,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=wattscale-dev-up",
            "-f",
            str(crd),
        )
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        stack.wait_condition(stack.hub, f"crd/{name}", "Established")


@pytest.mark.parametrize("values", VALUE_SETS, ids=_ids)
@pytest.mark.usefixtures("hub_crds")
def test_helm_template_renders_and_the_apiserver_accepts_it(
    stack: Stack, helm_env: dict[str, str], kube_version: str, values: Path | None
) -> None:
    namespace = f"e2e-helm-tpl-{uuid.uuid4().hex[:6]}"
    out = helm(
        stack,
        helm_env,
        "template",
        "ws",
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        "--kube-version",
        kube_version,
        *values_args(values),
    )
    rendered = docs(out)
    kinds = {d["kind"] for d in rendered}
    assert {"CustomResourceDefinition", "Deployment", "Service", "ClusterRole", "Role"} <= kinds
    overrides = yaml.safe_load(values.read_text()) if values else {}
    overrides = overrides or {}
    if overrides.get("metrics", {}).get("serviceMonitor", {}).get("enabled"):
        monitor = next(d for d in rendered if d["kind"] == "ServiceMonitor")
        assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    for region in overrides.get("regions", []):
        assert any(
            d["kind"] == "Region" and d["metadata"]["name"] == region["name"] for d in rendered
        )
    # Everything but the CRDs (already on the hub) and foreign kinds, validated by the apiserver.
    # Objects bound for another namespace (e.g. dashboards for a monitoring namespace) go to ours.
    checkable = []
    for doc in rendered:
        if doc["kind"] in FOREIGN_KINDS or doc["kind"] == "CustomResourceDefinition":
            continue
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
        checkable.append(doc)
    stack.kubectl(stack.hub, "create", "namespace", namespace)
    try:
        stack.kubectl(
            stack.hub,
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(checkable),
        )
    finally:
        stack.kubectl(stack.hub, "delete", "namespace", namespace, "--wait=false", check=False)


def test_schema_refuses_an_unknown_value(
    stack: Stack, helm_env: dict[str, str], kube_version: str
) -> None:
    out = subprocess.run(
        [
            str(stack.bin_dir / "helm"),
            "template",
            "ws",
            str(CHART),
            "--kube-version",
            kube_version,
            "--set",
            "metrics.prot=1",
        ],
        capture_output=True,
        text=True,
        env=helm_env,
        timeout=API_WAIT_SECONDS,
        check=False,
    )
    assert out.returncode != 0
    assert "prot" in out.stderr


# ---- install into the hub ------------------------------------------------------------------------


def _gpu_offer() -> dict[str, Any]:
    return {
        "product": "NVIDIA-H100-80GB-HBM3",
        "hourlyCost": "2.30",
        "idleWatts": 90,
        "maxWatts": 700,
        "available": 8,
    }


WATTSCALE_CRDS = ("inferencedeployments.wattscale.io", "regions.wattscale.io")


@contextlib.contextmanager
def installed(
    stack: Stack, helm_env: dict[str, str], cluster: str, workdir: Path
) -> Iterator[dict[str, str]]:
    """A release of the chart in a fresh namespace of ``cluster``, with two Regions from values.

    ``region`` is that cluster itself (no clusterRef); ``member`` is the first region cluster,
    reached through a copy of its kubeconfig Secret in the release namespace (the only namespace
    whose Secrets the chart lets the operator read). The namespace enforces the "restricted" Pod
    Security Standard, so the operator pod must pass it. CRDs that helm had to install are
    deleted afterwards (helm itself never deletes CRDs).
    """
    suffix = uuid.uuid4().hex[:6]
    info = {
        "cluster": cluster,
        "name": f"ws-{suffix}",
        "namespace": f"e2e-helm-{suffix}",
        "region": f"e2e-helm-{suffix}",
        "member": f"e2e-helm-{suffix}-member",
        "member_cluster": stack.regions[0],
    }
    info["fullname"] = f"{info['name']}-wattscale"
    secret_name = f"region-{info['member_cluster']}-kubeconfig"
    values = workdir / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "rbac": {"httpRoutes": True},
                "regions": [
                    {
                        "name": info["region"],
                        "spec": {
                            "energy": {"currency": "EUR", "pue": "1.15"},
                            "gpus": [_gpu_offer()],
                        },
                    },
                    {
                        "name": info["member"],
                        "labels": {"e2e.wattscale.io/member": "true"},
                        "spec": {
                            "clusterRef": {
                                "kubeconfigSecretRef": {
                                    "namespace": info["namespace"],
                                    "name": secret_name,
                                    "key": "kubeconfig",
                                }
                            },
                            "gpus": [_gpu_offer()],
                        },
                    },
                ],
            }
        )
    )
    env = {**helm_env, "KUBECONFIG": str(stack.kubeconfig(cluster))}
    had_crds = stack.kubectl(cluster, "get", "crd", *WATTSCALE_CRDS, check=False).returncode == 0
    stack.kubectl(cluster, "create", "namespace", info["namespace"])
    try:
        stack.kubectl(
            cluster,
            "label",
            "namespace",
            info["namespace"],
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        )
        kubeconfig = stack.kubeconfig(info["member_cluster"]).read_text()
        stack.kubectl(
            cluster,
            "create",
            "secret",
            "generic",
            secret_name,
            "-n",
            info["namespace"],
            "--from-literal",
            f"kubeconfig={kubeconfig}",
        )
        helm(
            stack,
            env,
            "install",
            info["name"],
            str(CHART),
            "--namespace",
            info["namespace"],
            "-f",
            str(values),
            "--timeout",
            "2m",
        )
        yield info
    finally:
        helm(stack, env, "uninstall", info["name"], "-n", info["namespace"], check=False)
        stack.kubectl(
            cluster, "delete", "namespace", info["namespace"], "--wait=false", check=False
        )
        if not had_crds:
            stack.kubectl(cluster, "delete", "crd", *WATTSCALE_CRDS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(
    stack: Stack, helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The chart installed on the hub (see :func:`installed`).

    Its two Regions are cluster-scoped objects on the shared hub: an operator world of another
    test session (operator_world.py) would see them and be refused their kubeconfig Secret,
    which lives in this release's namespace. So the release holds the hub's Regions as a world
    does (``Stack.regions_owned``) for as long as it exists.
    """
    with (
        stack.regions_owned(),
        installed(stack, helm_env, stack.hub, tmp_path_factory.mktemp("hub-release")) as info,
    ):
        yield info


@pytest.fixture(scope="module")
def isolated_release(
    stack: Stack, helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The chart installed on the last region cluster, used as a hub of its own.

    Region objects are cluster-scoped, so an operator on the shared hub would see (and report on)
    every other test session's Regions. On this cluster it sees only the release's two.
    """
    cluster = stack.regions[-1]
    with installed(stack, helm_env, cluster, tmp_path_factory.mktemp("own-release")) as info:
        yield info


def test_install_creates_crds_and_the_operator(stack: Stack, release: dict[str, str]) -> None:
    ns, full = release["namespace"], release["fullname"]
    for crd in ("inferencedeployments.wattscale.io", "regions.wattscale.io"):
        stack.get_json(stack.hub, "crd", crd)
    sa = stack.get_json(stack.hub, "serviceaccount", full, "-n", ns)
    assert sa["metadata"]["labels"]["app.kubernetes.io/part-of"] == "wattscale"
    dep = stack.get_json(stack.hub, "deployment", full, "-n", ns)
    spec = dep["spec"]
    assert spec["replicas"] == 1  # one replica: no shards, no Leases
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == full
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    assert container["command"] == ["wattscale"]
    assert container["args"][:3] == ["run", "--all-namespaces", "--standalone"]
    assert "--shards" not in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "readinessProbe" in container
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == 9464
    svc = stack.get_json(stack.hub, "service", f"{full}-metrics", "-n", ns)
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("metrics", 9464)]
    cms = stack.get_json(stack.hub, "configmap", "-n", ns, "-l", "grafana_dashboard=1")
    keys = sorted(k for cm in cms["items"] for k in cm["data"])
    assert keys == [
        "wattscale-deployment.json",
        "wattscale-fleet-overview.json",
        "wattscale-operator-health.json",
    ]
    region = stack.get_json(stack.hub, "region", release["region"])
    assert region["spec"]["energy"]["currency"] == "EUR"


def test_the_operator_pod_is_admitted_under_the_restricted_pod_security_standard(
    stack: Stack, release: dict[str, str]
) -> None:
    # The hub has no nodes for it (and no image to run), so the pod stays Pending; what matters
    # is that the ReplicaSet could create it in a namespace enforcing "restricted".
    selector = f"app.kubernetes.io/instance={release['name']},app.kubernetes.io/name=wattscale"

    def pods() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = stack.get_json(
            stack.hub, "pods", "-n", release["namespace"], "-l", selector
        )["items"]
        return items or None

    try:
        found = wait_for("the operator pod to be created", pods)
    except AssertionError:
        events = stack.kubectl(
            stack.hub, "get", "events", "-n", release["namespace"], "-o", "wide", check=False
        ).stdout
        raise AssertionError(f"no operator pod; events in the namespace:\n{events}") from None
    assert len(found) == 1


def test_install_brings_the_crds_to_a_cluster_without_them(
    stack: Stack, isolated_release: dict[str, str]
) -> None:
    cluster = isolated_release["cluster"]
    for crd in WATTSCALE_CRDS:
        stack.wait_condition(cluster, f"crd/{crd}", "Established")
    for region in (isolated_release["region"], isolated_release["member"]):
        stack.get_json(cluster, "region", region)


def test_rbac_objects_exist(stack: Stack, release: dict[str, str]) -> None:
    ns, full = release["namespace"], release["fullname"]
    for name in (full, f"{full}-hub-workloads", f"{full}-httproutes", f"{full}-view"):
        stack.get_json(stack.hub, "clusterrole", name)
    for name in (full, f"{full}-hub-workloads", f"{full}-httproutes"):
        binding = stack.get_json(stack.hub, "clusterrolebinding", name)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": full, "namespace": ns}]
    role = stack.get_json(stack.hub, "role", f"{full}-secrets", "-n", ns)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    stack.get_json(stack.hub, "rolebinding", f"{full}-secrets", "-n", ns)


def test_the_service_account_may_do_what_the_operator_needs(
    stack: Stack, release: dict[str, str]
) -> None:
    ns = release["namespace"]
    sa = f"{ns}:{release['fullname']}"
    # The hub must enforce RBAC, or every "no" below would be vacuous.
    assert not can_i(stack, "nowhere:nobody", "get secrets")
    allowed = [
        "watch inferencedeployments.wattscale.io",
        "list regions.wattscale.io",
        "patch inferencedeployments.wattscale.io ml-serving",
        "patch inferencedeployments.wattscale.io/status ml-serving",
        "patch regions.wattscale.io/status",
        "create events ml-serving",
        "patch events.events.k8s.io ml-serving",
        "list customresourcedefinitions.apiextensions.k8s.io",
        "watch namespaces",
        f"get secrets {ns}",
        "get deployments.apps ml-serving",
        "create deployments.apps ml-serving",
        "patch deployments.apps ml-serving",
        "delete deployments.apps ml-serving",
        "patch deployments.apps/scale ml-serving",
        "get services ml-serving",
        "patch services ml-serving",
        "create namespaces",
        "get httproutes.gateway.networking.k8s.io ml-serving",
        "patch httproutes.gateway.networking.k8s.io ml-serving",
    ]
    refused = [
        "get secrets kube-system",
        f"list secrets {ns}",
        "get secrets",
        "create inferencedeployments.wattscale.io ml-serving",
        "delete regions.wattscale.io",
        "update inferencedeployments.wattscale.io ml-serving",
        "create pods ml-serving",
        "delete namespaces",
        "update deployments.apps ml-serving",
        "list deployments.apps",
        "watch deployments.apps ml-serving",
        "update deployments.apps/scale ml-serving",
        "list services ml-serving",
        "get namespaces",
        "create clusterroles.rbac.authorization.k8s.io",
        "delete httproutes.gateway.networking.k8s.io ml-serving",
        "update httproutes.gateway.networking.k8s.io ml-serving",
        "list httproutes.gateway.networking.k8s.io",
        "patch httproutes.gateway.networking.k8s.io/status ml-serving",
        "create customresourcedefinitions.apiextensions.k8s.io",
        f"create leases.coordination.k8s.io {ns}",  # one replica: no shard Leases
    ]
    wrong = access_mismatches(stack, sa, allowed, refused)
    assert not wrong, f"RBAC of {sa} differs from what the operator needs: {wrong}"


CLUSTER_SCOPED = {"regions", "regions/status", "customresourcedefinitions"}


def _render_in_system_namespace(
    stack: Stack, helm_env: dict[str, str], kube_version: str, values: str
) -> list[dict[str, Any]]:
    """The chart rendered offline as release ``ws`` in wattscale-system with ``--set values``."""
    out = helm(
        stack,
        helm_env,
        *("template", "ws", str(CHART), "--namespace", "wattscale-system"),
        *("--kube-version", kube_version, "--set", values),
    )
    return docs(out)


def test_with_watch_namespaces_only_cluster_scoped_kinds_are_granted_cluster_wide(
    stack: Stack, helm_env: dict[str, str], kube_version: str
) -> None:
    rendered = _render_in_system_namespace(
        stack, helm_env, kube_version, "operator.watchNamespaces={ml-a,ml-b},rbac.httpRoutes=true"
    )
    bound = {
        d["roleRef"]["name"]
        for d in rendered
        if d["kind"] == "ClusterRoleBinding"
        and any(s.get("kind") == "ServiceAccount" for s in d["subjects"])
    }
    cluster_roles = [
        d for d in rendered if d["kind"] == "ClusterRole" and d["metadata"]["name"] in bound
    ]
    granted = {r for role in cluster_roles for rule in role["rules"] for r in rule["resources"]}
    assert granted == CLUSTER_SCOPED, f"cluster-wide grants beyond cluster-scoped kinds: {granted}"
    roles = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in rendered if d["kind"] == "Role"
    }
    for ns in ("ml-a", "ml-b"):
        for name in ("ws-wattscale", "ws-wattscale-hub-workloads", "ws-wattscale-httproutes"):
            assert (ns, name) in roles


def test_several_replicas_shard_through_leases_in_the_release_namespace(
    stack: Stack, helm_env: dict[str, str], kube_version: str
) -> None:
    """operator.replicas > 1: every replica runs with --shards and its pod name, pods may
    overlap (a rolling update), and the ServiceAccount may use Leases in its own namespace only."""
    rendered = _render_in_system_namespace(stack, helm_env, kube_version, "operator.replicas=3")
    dep = next(d for d in rendered if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["args"][:4] == ["run", "--all-namespaces", "--standalone", "--shards"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    leases = [
        d
        for d in rendered
        if d["kind"] == "Role" and any("leases" in r["resources"] for r in d["rules"])
    ]
    assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in leases] == [
        ("wattscale-system", "ws-wattscale-leases")
    ]
    assert leases[0]["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "create", "update", "delete"],
        }
    ]
    cluster_wide = {
        r
        for d in rendered
        if d["kind"] == "ClusterRole"
        for rule in d["rules"]
        for r in rule["resources"]
    }
    assert "leases" not in cluster_wide


def test_with_watch_namespaces_the_service_account_may_act_in_those_namespaces_only(
    stack: Stack, helm_env: dict[str, str]
) -> None:
    """The SubjectAccessReview matrix for a release with operator.watchNamespaces."""
    suffix = uuid.uuid4().hex[:6]
    name, ns, watched = f"ws-w-{suffix}", f"e2e-helm-w-{suffix}", f"e2e-helm-ml-{suffix}"
    stack.kubectl(stack.hub, "create", "namespace", watched)
    helm(
        stack,
        helm_env,
        "install",
        name,
        str(CHART),
        "-n",
        ns,
        "--create-namespace",
        "--skip-crds",
        "--set",
        f"operator.replicas=0,rbac.httpRoutes=true,operator.watchNamespaces={{{watched}}}",
    )
    try:
        sa = f"{ns}:{name}-wattscale"
        in_watched = [
            "watch inferencedeployments.wattscale.io",
            "patch inferencedeployments.wattscale.io",
            "patch inferencedeployments.wattscale.io/status",
            "create events",
            "patch events.events.k8s.io",
            "get deployments.apps",
            "create deployments.apps",
            "patch deployments.apps",
            "delete deployments.apps",
            "patch deployments.apps/scale",
            "get services",
            "create services",
            "patch services",
            "get httproutes.gateway.networking.k8s.io",
            "patch httproutes.gateway.networking.k8s.io",
        ]
        allowed = [f"{a} {watched}" for a in in_watched] + [
            "list regions.wattscale.io",
            "watch regions.wattscale.io",
            "patch regions.wattscale.io/status",
            "watch customresourcedefinitions.apiextensions.k8s.io",
            f"get secrets {ns}",
        ]
        refused = [f"{a} ml-elsewhere" for a in in_watched] + [
            # cluster-wide (no namespace) and what no namespace grants
            *(
                "list inferencedeployments.wattscale.io",
                "watch inferencedeployments.wattscale.io",
                "create events",
                "get deployments.apps",
                "patch deployments.apps",
                "create namespaces",
                "get namespaces",
                "list namespaces",
                f"list deployments.apps {watched}",
                f"update deployments.apps/scale {watched}",
                f"create pods {watched}",
                f"get secrets {watched}",
                "get secrets",
            ),
        ]
        wrong = access_mismatches(stack, sa, allowed, refused)
        assert not wrong, f"RBAC of {sa} with watchNamespaces: {wrong}"
    finally:
        helm(stack, helm_env, "uninstall", name, "-n", ns, check=False)
        for namespace in (ns, watched):
            stack.kubectl(stack.hub, "delete", "namespace", namespace, "--wait=false", check=False)


def test_upgrade_then_uninstall_leaves_nothing_behind(
    stack: Stack, helm_env: dict[str, str], tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    name, ns = f"ws-up-{suffix}", f"e2e-helm-up-{suffix}"
    full = f"{name}-wattscale"
    helm(stack, helm_env, "install", name, str(CHART), "-n", ns, "--create-namespace")
    try:
        helm(
            stack,
            helm_env,
            "upgrade",
            name,
            str(CHART),
            "-n",
            ns,
            "--set",
            "rbac.hubWorkloads=false,operator.intervalSeconds=10",
        )
        dep = stack.get_json(stack.hub, "deployment", full, "-n", ns)
        env = {
            e["name"]: e.get("value")
            for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["WATTSCALE_INTERVAL_SECONDS"] == "10"
        gone = stack.kubectl(stack.hub, "get", "clusterrole", f"{full}-hub-workloads", check=False)
        assert gone.returncode != 0, (
            "the hub-workloads ClusterRole survived rbac.hubWorkloads=false"
        )
    finally:
        helm(stack, helm_env, "uninstall", name, "-n", ns, check=False)
    left = stack.kubectl(
        stack.hub,
        "get",
        "clusterroles,clusterrolebindings",
        "-l",
        f"app.kubernetes.io/instance={name}",
        "-o",
        "name",
    )
    assert left.stdout.strip() == ""
    stack.kubectl(stack.hub, "delete", "namespace", ns, "--wait=false", check=False)


# ---- the operator itself, under the chart's ServiceAccount ---------------------------------------


def _http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)


def test_the_operator_runs_under_the_service_account(
    stack: Stack, isolated_release: dict[str, str], tmp_path: Path
) -> None:
    """The chart's RBAC is not too little for vLLM on the hub itself: `wattscale run` out of
    cluster with the ServiceAccount's token reconciles a Region without clusterRef and one with
    a kubeconfig Secret, and an InferenceDeployment served by that cluster (finalizer, status,
    vLLM Deployment, Event), then cleans up on deletion, never Forbidden.

    Every operator world (tests/e2e/operator_world.py, e.g. the scenario of test_operator.py)
    also runs under the chart's ServiceAccount, but its Regions are all member clusters, reached
    with their own kubeconfigs: only this test exercises the ``rbac.hubWorkloads`` rules. It runs
    on a cluster of its own (see ``isolated_release``), installed into a namespace enforcing the
    "restricted" Pod Security Standard, and watches only its own namespace, so that it cannot
    disturb other tests' objects.
    """
    release = isolated_release
    cluster = release["cluster"]
    ns = f"e2e-helm-op-{uuid.uuid4().hex[:6]}"
    stack.kubectl(cluster, "create", "namespace", ns)
    kubeconfig = service_account_kubeconfig(
        stack, cluster, release["namespace"], release["fullname"], tmp_path / "sa.kubeconfig"
    )
    health_port, metrics_port = free_port(), free_port()
    env = dict(stack.env)
    env.update(
        KUBECONFIG=str(kubeconfig),
        WATTSCALE_OPERATOR_NAMESPACE=release["namespace"],
        WATTSCALE_REGION_INTERVAL_SECONDS="2",
    )
    log_path = tmp_path / "operator.log"
    cmd = [
        sys.executable,
        "-m",
        "wattscale.cli",
        "run",
        "--standalone",
        "--namespace",
        ns,
        "--interval",
        f"{INTERVAL_SECONDS:g}",
        "--metrics-port",
        str(metrics_port),
        "--metrics-address",
        "127.0.0.1",
        "--liveness",
        f"http://127.0.0.1:{health_port}/healthz",
    ]
    name = "tiny"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def output() -> str:
        return log_path.read_text(errors="replace")[-6000:]

    def alive() -> None:
        assert proc.poll() is None, f"the operator exited ({proc.returncode}):\n{output()}"

    def wait(what: str, probe: Callable[[], object], timeout: float = API_WAIT_SECONDS) -> None:
        try:
            wait_for(what, probe, timeout=timeout)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- operator log (tail) ---\n{output()}") from None

    clock = OperatorClock(f"http://127.0.0.1:{metrics_port}/metrics", ns, name)

    def wait_passes(what: str, check: Callable[[], bool]) -> None:
        """What the operator does for ``name``: one step of its passes (operator_clock.py)."""
        clock.wait(
            what, check, STEP_PASSES, alive=alive, describe=lambda: f"operator log:\n{output()}"
        )

    try:
        wait(
            "kopf's /healthz",
            lambda: _http_get(f"http://127.0.0.1:{health_port}/healthz")[0] == 200,
            timeout=START_UP_SECONDS,
        )

        def reachable(region: str) -> bool:
            alive()
            status = stack.get_json(cluster, "region", region).get("status") or {}
            return status.get("reachable") is True

        wait(
            "the Region of the cluster itself to be reported reachable",
            lambda: reachable(release["region"]),
        )
        wait(
            "the member Region (kubeconfig Secret) to be reachable",
            lambda: reachable(release["member"]),
        )

        stack.apply(
            cluster,
            {
                "apiVersion": "wattscale.io/v1alpha1",
                "kind": "InferenceDeployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "model": "Qwen/Qwen2.5-0.5B-Instruct",
                    "engine": {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "gpusPerReplica": 1},
                    "slo": {"ttftP95Ms": 500, "tpotP95Ms": 50, "minReplicas": 1, "maxReplicas": 2},
                    "placement": {"regions": [release["region"]], "coldStartSeconds": 5},
                    "capacity": {"tokensPerSecondPerReplica": 5000},
                },
            },
        )

        def handled() -> bool:
            obj = stack.get_json(cluster, "inferencedeployment", name, "-n", ns)
            done = "wattscale.io/cleanup" in (obj["metadata"].get("finalizers") or [])
            return done and (obj.get("status") or {}).get("observedGeneration") is not None

        wait_passes("finalizer and status on the InferenceDeployment", handled)
        wait_passes(
            "the vLLM Deployment on the cluster itself",
            lambda: (
                stack.kubectl(
                    cluster, "get", "deployment", f"{name}-vllm", "-n", ns, check=False
                ).returncode
                == 0
            ),
        )

        def posted_event() -> bool:
            events = stack.get_json(cluster, "events", "-n", ns)["items"]
            return any(e["involvedObject"].get("name") == name for e in events)

        wait_passes("an Event on the InferenceDeployment", posted_event)
        code, body = _http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert code == 200
        assert f'wattscale_region_available{{region="{release["member"]}"}} 1.0' in body

        stack.kubectl(cluster, "delete", "inferencedeployment", name, "-n", ns, "--wait=false")
        wait(
            "the finalizer to remove the vLLM Deployment and let the object go",
            lambda: (
                stack.kubectl(
                    cluster, "get", "inferencedeployment,deployment", "-n", ns, "-o", "name"
                ).stdout.strip()
                == ""
            ),
        )
        alive()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        stack.kubectl(cluster, "delete", "namespace", ns, "--wait=false", check=False)
    forbidden = rbac_refusals(log_path.read_text(errors="replace"))
    assert not forbidden, "the operator hit RBAC refusals:\n" + "\n".join(forbidden[:20])
