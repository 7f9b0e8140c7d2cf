"""E2E: wattscale safe to install in a cluster many teams share (issue 14), on the real stack.

- the member role docs/install.md documents, applied as written to a member cluster, grants the
  operator exactly what it needs there and nothing more (SubjectAccessReview matrix);
- one operator run, out of cluster under a chart release's ServiceAccount with
  ``operator.watchNamespaces`` (namespaced Roles only), reaching the member cluster with a token
  of that documented member role, never refused anything (no 403 in its log), and:
  - a Region created before its kubeconfig Secret turns Reachable once the Secret appears, with
    no restart (item 10);
  - its kubeconfig Secret rotated to a new token of the same member ServiceAccount, and the old
    token revoked (a legacy token Secret, deleted): the operator keeps reaching the member (the
    Region stays Reachable, and it scales there after the revocation) within a few Region
    rounds, and neither token appears in its log, status, Events or metrics (item 10);
  - a kubeconfig with an ``exec`` plugin makes its Region Reachable=False naming ``exec``, and
    the plugin never runs (item 2);
  - the namespace it creates in the member cluster enforces the "restricted" Pod Security
    Standard, and the vLLM pods of its Deployment are admitted there (item 1);
  - a Deployment of another owner holding a workload name is never adopted, scaled or deleted:
    the InferenceDeployment says Conflict (item 7);
  - markers planted in a kubeconfig, a CSV feed's header and a feed's 401 body appear in none of
    the operator's log, the Regions' and InferenceDeployments' status, the Events and the
    operator's metrics (item 8).
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from chart import (
    CHART,
    access_mismatches,
    documented_member_role,
    helm,
    helm_environment,
    rbac_refusals,
    service_account_kubeconfig,
)
from operator_clock import REGION_INTERVAL_SECONDS, STEP_PASSES, OperatorClock, passes_for
from stack import NOT_YET, REPO, KubectlError, Stack, wait_for

from tests.fakes.feeds import FeedServer, Reply
from tests.fakes.prometheus import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
T = TypeVar("T")

GPU = {
    "product": "NVIDIA-H100-80GB-HBM3",
    "hourlyCost": "2.30",
    "idleWatts": 90,
    "maxWatts": 700,
    "available": 8,
}
MARKERS = {"yaml": "mk-yaml-7f3a9c", "csv": "mk-csv-c0ffee", "body": "mk-body-5eed42"}


@pytest.fixture(scope="module")
def member(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The documented member role in the first region cluster, and a kubeconfig holding a token
    of its ServiceAccount (inline token and CA data: what a Region's Secret may hold)."""
    cluster, suffix = stack.regions[0], uuid.uuid4().hex[:6]
    docs = documented_member_role(suffix)
    stack.kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    account = docs[0]["metadata"]["name"]
    path = tmp_path_factory.mktemp("member") / "member.kubeconfig"
    try:
        service_account_kubeconfig(stack, cluster, "kube-system", account, path)
        yield {"cluster": cluster, "account": f"kube-system:{account}", "kubeconfig": path}
    finally:
        stack.kubectl(
            cluster,
            "delete",
            "-f",
            "-",
            "--wait=false",
            stdin=yaml.safe_dump_all(docs),
            check=False,
        )


def test_the_documented_member_role_is_the_least_the_operator_needs(
    stack: Stack, member: dict[str, Any]
) -> None:
    ns = "ml-serving"
    allowed = [
        f"get deployments.apps {ns}",
        f"create deployments.apps {ns}",
        f"patch deployments.apps {ns}",
        f"delete deployments.apps {ns}",
        f"patch deployments.apps/scale {ns}",
        f"get services {ns}",
        f"create services {ns}",
        f"patch services {ns}",
        f"delete services {ns}",
        "create namespaces",
    ]
    refused = [
        "list deployments.apps",
        f"watch deployments.apps {ns}",
        f"update deployments.apps {ns}",
        f"update deployments.apps/scale {ns}",
        f"list services {ns}",
        "get namespaces",
        "list namespaces",
        "patch namespaces",
        "delete namespaces",
        f"get secrets {ns}",
        f"create pods {ns}",
        "list pods",
        f"create pods/exec {ns}",
        "get nodes",
        "create clusterrolebindings.rbac.authorization.k8s.io",
        f"create rolebindings.rbac.authorization.k8s.io {ns}",
        "create serviceaccounts/token",
    ]
    assert not access_mismatches(stack, "nowhere:nobody", [], ["get namespaces"], member["cluster"])
    wrong = access_mismatches(stack, member["account"], allowed, refused, member["cluster"])
    assert not wrong, f"the documented member role differs from what the operator needs: {wrong}"


# ---- one operator run in a shared cluster ------------------------------------------------------


def _kubeconfig_with_exec(server: str, ran: Path) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [
                {
                    "name": "u",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": "/bin/sh",
                            "args": ["-c", f"touch {ran}"],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def _region(name: str, secret: str, namespace: str, **extra: Any) -> dict[str, Any]:
    ref = {"namespace": namespace, "name": secret, "key": "kubeconfig"}
    return {
        "apiVersion": "wattscale.io/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name, "labels": {"e2e.wattscale.io/shared": "true"}},
        "spec": {"clusterRef": {"kubeconfigSecretRef": ref}, "gpus": [GPU], **extra},
    }


def _deployment(name: str, namespace: str, region: str) -> dict[str, Any]:
    return {
        "apiVersion": "wattscale.io/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": "Qwen/Qwen2.5-0.5B-Instruct",
            "engine": {"gpuProduct": GPU["product"]},
            "slo": {"ttftP95Ms": 500, "tpotP95Ms": 50, "minReplicas": 1, "maxReplicas": 2},
            "placement": {"regions": [region], "coldStartSeconds": 5},
            "capacity": {"tokensPerSecondPerReplica": 5000},
        },
    }


class Run:
    """The operator process and what the test reads from the clusters."""

    def __init__(self, stack: Stack, log_path: Path, proc: subprocess.Popen[bytes]) -> None:
        self.stack, self.log_path, self.proc = stack, log_path, proc

    def output(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float = 120) -> T:
        """What ``probe`` returned once it held (see ``wait_for``)."""

        def alive_probe() -> T | None:
            assert self.proc.poll() is None, f"the operator exited:\n{self.output()}"
            return probe()

        try:
            return wait_for(what, alive_probe, timeout=timeout)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- operator log (tail) ---\n{self.output()}") from None

    def region_condition(self, name: str) -> dict[str, Any]:
        status = self.stack.get_json(self.stack.hub, "region", name).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Reachable"), {})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def _operator(
    stack: Stack, kubeconfig: Path, release_ns: str, watched: str, tmp: Path, metrics_port: int
) -> Iterator[Run]:
    env = dict(stack.env)
    env.update(
        KUBECONFIG=str(kubeconfig),
        WATTSCALE_OPERATOR_NAMESPACE=release_ns,
        WATTSCALE_REGION_INTERVAL_SECONDS="2",
    )
    cmd = [
        sys.executable, "-m", "wattscale.cli", "run", "--standalone", "--namespace", watched,
        "--interval", "2", "--metrics-port", str(metrics_port), "--metrics-address", "127.0.0.1",
        "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
    ]  # fmt: skip
    log_path = tmp / "operator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    run = Run(stack, log_path, proc)
    try:
        yield run
    finally:
        run.stop()


def test_an_operator_confined_to_one_namespace_in_a_shared_cluster(
    stack: Stack, member: dict[str, Any], tmp_path: Path
) -> None:
    hub, member_cluster = stack.hub, member["cluster"]
    suffix = uuid.uuid4().hex[:6]
    release_ns, ml = f"e2e-sec-{suffix}", f"e2e-sec-ml-{suffix}"
    names = {k: f"e2e-sec-{suffix}-{k}" for k in ("member", "broken", "exec")}
    ran = tmp_path / "exec-plugin-ran"
    feeds = FeedServer(
        {
            "/prices.csv": Reply(body=f"{MARKERS['csv']},when\n1,2\n"),
            "/carbon.csv": Reply(status=401, body=f"invalid token {MARKERS['body']}"),
        }
    )
    env = helm_environment(stack, tmp_path / "helm-home")
    member_server = yaml.safe_load(member["kubeconfig"].read_text())["clusters"][0]["cluster"]
    legacy = f"e2e-sec-{suffix}-first-token"
    with stack.regions_owned(), feeds:
        for ns in (release_ns, ml):
            stack.kubectl(hub, "create", "namespace", ns)
        release = f"ws-sec-{suffix}"
        helm(
            stack, env, "install", release, str(CHART), "-n", release_ns, "--skip-crds",
            "--set", f"operator.replicas=0,operator.watchNamespaces={{{ml}}}",
        )  # fmt: skip
        try:
            # The Region's first token is a legacy token Secret's: deleting it revokes it.
            first = _with_token(member["kubeconfig"], _legacy_token(stack, member, legacy))
            sa_kubeconfig = service_account_kubeconfig(
                stack, hub, release_ns, f"{release}-wattscale", tmp_path / "sa.kubeconfig"
            )
            broken = f"apiVersion: v1\nusers:\n- name: u\n  user: {{token: {MARKERS['yaml']}: x}}\n"
            for secret, text in (
                ("broken", broken),
                ("exec", _kubeconfig_with_exec(member_server["server"], ran)),
            ):
                stack.kubectl(
                    hub, "create", "secret", "generic", secret, "-n", release_ns,
                    "--from-literal", f"kubeconfig={text}",
                )  # fmt: skip
            energy = {
                "price": {"type": "csv", "url": f"{feeds.url}/prices.csv", "maxRetries": 0},
                "carbon": {"type": "csv", "url": f"{feeds.url}/carbon.csv", "maxRetries": 0},
            }
            # The member Region first, its Secret later: it must heal by itself.
            stack.apply(hub, _region(names["member"], "member", release_ns, energy=energy))
            stack.apply(hub, _region(names["broken"], "broken", release_ns))
            stack.apply(hub, _region(names["exec"], "exec", release_ns))
            metrics_port = free_port()
            with _operator(stack, sa_kubeconfig, release_ns, ml, tmp_path, metrics_port) as run:
                _check_regions(run, names, first, release_ns, ran)
                _check_pod_security_and_conflict(run, member_cluster, ml, names["member"])
                _check_nothing_echoed(run, ml, release_ns, names, metrics_port)
                clock = OperatorClock(f"http://127.0.0.1:{metrics_port}/metrics", ml, "llm")
                _check_rotation(run, clock, member, release_ns, ml, names, legacy)
                _check_cleanup(run, member_cluster, ml)
            refusals = rbac_refusals(run.log_path.read_text(errors="replace"))
            assert not refusals, "the operator hit RBAC refusals:\n" + "\n".join(refusals[:20])
        finally:
            stack.kubectl(hub, "delete", "inferencedeployments", "--all", "-n", ml,
                          "--timeout=30s", check=False)  # fmt: skip
            for name in names.values():
                stack.kubectl(hub, "delete", "region", name, "--wait=false", check=False)
            helm(stack, env, "uninstall", release, "-n", release_ns, check=False)
            for ns in (release_ns, ml):
                stack.kubectl(hub, "delete", "namespace", ns, "--wait=false", check=False)
            stack.kubectl(member_cluster, "delete", "namespace", ml, "--wait=false", check=False)
            stack.kubectl(member_cluster, "delete", "secret", legacy, "-n", "kube-system",
                          "--wait=false", check=False)  # fmt: skip


def _check_regions(
    run: Run, names: dict[str, str], kubeconfig: str, release_ns: str, ran: Path
) -> None:
    stack = run.stack

    def says(name: str, status: str, text: str) -> bool:
        c = run.region_condition(name)
        return c.get("status") == status and text in c.get("message", "")

    run.wait(
        "the Region without its Secret to be unreachable",
        lambda: says(names["member"], "False", "cannot read the kubeconfig Secret"),
    )
    run.wait(
        "the exec kubeconfig to be refused by name",
        lambda: says(names["exec"], "False", ".user.exec is refused"),
    )
    run.wait(
        "the broken kubeconfig to be reported by line",
        lambda: says(names["broken"], "False", "not valid YAML (line 4"),
    )
    assert not ran.exists(), "the exec plugin of a Region's kubeconfig ran"
    stack.kubectl(stack.hub, "create", "-f", "-", stdin=_secret(release_ns, kubeconfig))
    run.wait(
        "the Region to heal once its Secret exists (no restart)",
        lambda: says(names["member"], "True", ""),
        timeout=60,
    )


def _check_pod_security_and_conflict(run: Run, cluster: str, ml: str, region: str) -> None:
    stack = run.stack
    assert stack.kubectl(cluster, "get", "namespace", ml, check=False).returncode != 0
    stack.apply(stack.hub, _deployment("llm", ml, region))

    def labels() -> dict[str, str] | None:
        got = stack.kubectl(cluster, "get", "namespace", ml, "-o", "json", check=False)
        return json.loads(got.stdout)["metadata"].get("labels") if got.returncode == 0 else None

    created = run.wait("the operator to create the member namespace", labels)
    assert created["pod-security.kubernetes.io/enforce"] == "restricted"

    def pods() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = stack.get_json(
            cluster, "pods", "-n", ml, "-l", "wattscale.io/deployment=llm"
        )["items"]
        return items

    run.wait("a vLLM pod admitted under restricted", pods)
    # Control: the namespace really enforces it (a plain pod is refused).
    plain = stack.kubectl(
        cluster, "run", "plain", "--image=busybox", "-n", ml, "--dry-run=server", check=False
    )
    assert plain.returncode != 0
    assert "violates PodSecurity" in plain.stderr

    # Someone else's Deployment holds the name the next InferenceDeployment would use.
    stack.kubectl(cluster, "create", "deployment", "clash-vllm", "--image=busybox", "-n", ml,
                  "--replicas=0")  # fmt: skip

    def synced() -> dict[str, Any] | None:
        """The Deployment once its controller has synced it (it annotates the revision then):
        what the operator must leave as it is."""
        dep = stack.get_json(cluster, "deployment", "clash-vllm", "-n", ml)
        observed = (dep.get("status") or {}).get("observedGeneration")
        return dep if observed == dep["metadata"]["generation"] else None

    before = run.wait("the deployment controller to sync clash-vllm", synced)
    stack.apply(stack.hub, _deployment("clash", ml, region))

    def conflict() -> dict[str, Any] | None:
        obj = stack.get_json(stack.hub, "inferencedeployment", "clash", "-n", ml)
        found = [c for c in (obj.get("status") or {}).get("conditions", [])
                 if c["type"] == "Conflict" and c["status"] == "True"]  # fmt: skip
        return found[0] if found else None

    found = run.wait("the Conflict condition", conflict)
    assert "clash-vllm exists and was not created" in found["message"]
    after = stack.get_json(cluster, "deployment", "clash-vllm", "-n", ml)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")


def _check_nothing_echoed(
    run: Run, ml: str, release_ns: str, names: dict[str, str], metrics_port: int
) -> None:
    stack = run.stack

    def feeds_failed() -> bool:
        status = stack.get_json(stack.hub, "region", names["member"]).get("status") or {}
        errors = {s["kind"]: s.get("error", "") for s in status.get("signals", [])}
        return "401" in errors.get("carbon", "") and bool(errors.get("price"))

    run.wait("both marker feeds to have been read and refused", feeds_failed)
    seen = _operator_output(run, names, ml, f"http://127.0.0.1:{metrics_port}/metrics")
    leaks = [f"{where}: {path} marker" for where, text in seen.items()
             for path, marker in MARKERS.items() if marker in text]  # fmt: skip
    assert not leaks, leaks


def _operator_output(run: Run, names: dict[str, str], ml: str, metrics_url: str) -> dict[str, str]:
    """Everything the operator wrote where people look: its log, the Regions and
    InferenceDeployments it writes status to, Events, and its /metrics."""
    stack = run.stack
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        metrics = resp.read().decode()
    return {
        "operator log": run.log_path.read_text(errors="replace"),
        "Regions": stack.kubectl(stack.hub, "get", "regions", *names.values(), "-o", "json").stdout,
        "InferenceDeployments": stack.kubectl(
            stack.hub, "get", "inferencedeployments", "-n", ml, "-o", "json"
        ).stdout,
        "Events": stack.kubectl(stack.hub, "get", "events", "-A", "-o", "json").stdout,
        "metrics": metrics,
    }


def _check_cleanup(run: Run, cluster: str, ml: str) -> None:
    stack = run.stack
    stack.kubectl(stack.hub, "delete", "inferencedeployment", "llm", "clash", "-n", ml,
                  "--wait=false")  # fmt: skip
    run.wait(
        "both InferenceDeployments to be cleaned up and released",
        lambda: (
            stack.kubectl(
                stack.hub, "get", "inferencedeployments", "-n", ml, "-o", "name"
            ).stdout.strip()
            == ""
        ),
    )
    run.wait(
        "our vLLM Deployment to be deleted",
        lambda: (
            stack.kubectl(
                cluster, "get", "deployment", "llm-vllm", "-n", ml, check=False
            ).returncode
            != 0
        ),
    )
    # The other owner's Deployment survives the deletion of the InferenceDeployment named like it.
    stack.get_json(cluster, "deployment", "clash-vllm", "-n", ml)


# ---- credential rotation (item 10) -------------------------------------------------------------

ROTATION_PASSES = passes_for(3 * REGION_INTERVAL_SECONDS) + STEP_PASSES
"""Budget for the operator to act in the member after a rotation: the Region round that re-reads
the Secret comes within one Region interval (three allowed: the round in progress, the next, and
one for a slow machine), then one step of the plan (the pass that scales, the one that sees it)."""


def _secret(namespace: str, kubeconfig: str) -> str:
    """The Region's kubeconfig Secret, as JSON for kubectl's stdin (never on a command line)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "member", "namespace": namespace},
            "type": "Opaque",
            "stringData": {"kubeconfig": kubeconfig},
        }
    )


def _with_token(kubeconfig: Path, token: str) -> str:
    """The member kubeconfig with another token of the same ServiceAccount."""
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["users"][0]["user"] = {"token": token}
    return str(yaml.safe_dump(doc))


def _legacy_token(stack: Stack, member: dict[str, Any], name: str) -> str:
    """A token of the member ServiceAccount held in a ``kubernetes.io/service-account-token``
    Secret of the member cluster (the token controller fills it in); deleting it revokes it."""
    namespace, account = member["account"].split(":")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"kubernetes.io/service-account.name": account},
        },
    }
    stack.kubectl(member["cluster"], "create", "-f", "-", stdin=json.dumps(secret))

    def token() -> str | None:
        data = stack.get_json(member["cluster"], "secret", name, "-n", namespace).get("data")
        return base64.b64decode(data["token"]).decode() if data and data.get("token") else None

    return wait_for("the token controller to fill in the legacy token", token)


def _whoami(stack: Stack, member: dict[str, Any], token: str) -> str | None:
    """Who the member's API server says ``token`` is (``kubectl auth whoami``); None when it
    refuses the token (401). The token goes to kubectl in a temporary kubeconfig."""
    endpoint = yaml.safe_load(member["kubeconfig"].read_text())["clusters"][0]["cluster"]
    with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig") as f:
        f.write(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "m", "cluster": endpoint}],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [{"name": "x", "context": {"cluster": "m", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        f.flush()
        kubectl = [str(stack.bin_dir / "kubectl"), "--kubeconfig", f.name]
        got = subprocess.run(
            [*kubectl, "auth", "whoami", "-o", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    if got.returncode != 0 and "Unauthorized" in got.stderr:
        return None
    if got.returncode != 0:
        raise KubectlError(f"kubectl auth whoami failed: {got.stderr[-300:]}")
    username: str = json.loads(got.stdout)["status"]["userInfo"]["username"]
    return username


def _check_rotation(
    run: Run,
    clock: OperatorClock,
    member: dict[str, Any],
    release_ns: str,
    ml: str,
    names: dict[str, str],
    legacy: str,
) -> None:
    """Rotate the member Region's Secret to a new token, revoke the old one, and prove the
    operator keeps reaching the member without a restart and never shows either token."""
    stack, cluster, region = run.stack, member["cluster"], names["member"]
    old = base64.b64decode(
        stack.get_json(cluster, "secret", legacy, "-n", "kube-system")["data"]["token"]
    ).decode()
    assert run.region_condition(region).get("status") == "True"
    namespace, account = member["account"].split(":")
    new = stack.kubectl(
        cluster, "create", "token", account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    assert new
    assert new != old
    account_user = f"system:serviceaccount:{namespace}:{account}"
    assert _whoami(stack, member, old) == account_user  # valid until revoked
    reachable: list[str] = []

    def watch_reachable() -> None:
        reachable.append(run.region_condition(region).get("status", ""))

    stack.kubectl(stack.hub, "replace", "-f", "-", stdin=_secret(release_ns, _with_token(
        member["kubeconfig"], new)))  # fmt: skip
    stack.kubectl(cluster, "delete", "secret", legacy, "-n", "kube-system")

    # The API server caches a good token's verdict for a few seconds: wait until it refuses.
    def old_refused() -> bool:
        with contextlib.suppress(*NOT_YET):
            watch_reachable()
        return _whoami(stack, member, old) is None

    wait_for("the old token to be refused by the member", old_refused)
    assert _whoami(stack, member, new) == account_user  # the same ServiceAccount

    # Work only a valid token can do, asked for after the old token is dead: one more replica.
    before = stack.get_json(cluster, "deployment", "llm-vllm", "-n", ml)["spec"]["replicas"]
    slo = {"minReplicas": before + 1, "maxReplicas": max(2, before + 1)}
    stack.kubectl(stack.hub, "patch", "inferencedeployment", "llm", "-n", ml, "--type=merge",
                  "-p", json.dumps({"spec": {"slo": slo}}))  # fmt: skip

    def scaled() -> bool:
        with contextlib.suppress(*NOT_YET):
            watch_reachable()
        got = stack.get_json(cluster, "deployment", "llm-vllm", "-n", ml)["spec"]["replicas"]
        return bool(got == before + 1)

    clock.wait(
        "the operator to scale in the member with the rotated token",
        scaled,
        ROTATION_PASSES,
        describe=run.output,
    )
    clock.let_pass(passes_for(2 * REGION_INTERVAL_SECONDS), each=watch_reachable)
    assert reachable, "the Region's Reachable condition was never read"
    assert set(reachable) == {"True"}, f"Reachable went {reachable} across the rotation"

    seen = _operator_output(run, names, ml, clock.metrics_url)
    leaks = [f"{where}: the {which} token" for where, text in seen.items()
             for which, token in (("old", old), ("new", new)) if token in text]  # fmt: skip
    assert not leaks, leaks
