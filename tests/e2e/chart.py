"""The Helm chart as the e2e suite uses it: helm, the chart's identity, its dashboards' queries.

Shared by tests/e2e/test_helm.py (the chart itself) and tests/e2e/operator_world.py (every
operator world runs ``wattscale run`` out of cluster under the chart's ServiceAccount):

- :func:`helm` runs the helm we built, with its state in a throw-away dir
  (:func:`helm_environment`);
- :func:`operator_identity` installs the chart with ``operator.replicas=0`` (RBAC, ServiceAccount,
  no in-cluster operator) and yields a kubeconfig holding a bound token of its ServiceAccount
  (:func:`service_account_kubeconfig`);
- :func:`member_identities` applies docs/install.md's member-cluster role in every region and
  stores, on the hub, a kubeconfig Secret per region holding that ServiceAccount's token: what
  the worlds' Regions point at, so the operator acts in the members only as the docs grant;
- :func:`rbac_refusals` finds the lines of an operator log where the API server said Forbidden;
- :func:`dashboard_queries` lists every PromQL expression of every dashboard panel, template
  variable and annotation, and :func:`dashboard_gaps` runs them against a real Prometheus.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from stack import REPO, Stack

from tests.fakes.prometheus import PrometheusServer

CHART = REPO / "helm" / "wattscale"


def helm_environment(stack: Stack, home: Path, cluster: str | None = None) -> dict[str, str]:
    """Environment for helm: our bin dir on PATH, helm's own state under ``home``."""
    env = dict(stack.env)
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=str(stack.kubeconfig(cluster or stack.hub)),
    )
    return env


def helm(stack: Stack, env: dict[str, str], *args: str, check: bool = True) -> str:
    """Run the helm we built; fail with its output on error; return stdout."""
    proc = subprocess.run(
        [str(stack.bin_dir / "helm"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"`helm {' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def service_account_kubeconfig(
    stack: Stack,
    cluster: str,
    namespace: str,
    account: str,
    path: Path,
    duration: str = "1h",
) -> Path:
    """A kubeconfig for ``cluster`` authenticating as ``namespace/account`` (a bound token)."""
    admin = yaml.safe_load(stack.kubeconfig(cluster).read_text())
    endpoint = admin["clusters"][0]["cluster"]
    token = stack.kubectl(
        cluster, "create", "token", account, "-n", namespace, f"--duration={duration}"
    ).stdout.strip()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": cluster, "cluster": endpoint}],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster, "user": account}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Identity:
    """A release of the chart whose ServiceAccount an out-of-cluster operator runs as."""

    release: str
    namespace: str
    service_account: str
    kubeconfig: Path


@contextlib.contextmanager
def operator_identity(
    stack: Stack, namespace: str, workdir: Path, duration: str = "12h"
) -> Iterator[Identity]:
    """The chart installed on the hub into ``namespace`` (which exists), without its operator pod.

    ``operator.replicas=0`` leaves out the operator pod (the hub has no nodes; on a KWOK cluster
    it would only look Running) and ``rbac.httpRoutes`` is on, so everything else is the chart's
    defaults: the ServiceAccount, the RBAC, the metrics Service, the dashboards. The release name
    is unique, so its cluster-scoped RBAC never meets another release's. CRDs are skipped: the
    stack applied ``crds/`` before any test ran (and helm never deletes CRDs). On exit the
    release is uninstalled, which deletes the ServiceAccount and so invalidates its token.
    """
    release = f"ws-e2e-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True, exist_ok=True)
    env = helm_environment(stack, workdir / "helm-home")
    helm(
        stack,
        env,
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--skip-crds",
        "--set",
        "operator.replicas=0,rbac.httpRoutes=true",
        "--timeout",
        "2m",
    )
    try:
        account = f"{release}-wattscale"
        kubeconfig = service_account_kubeconfig(
            stack,
            stack.hub,
            namespace,
            account,
            workdir / f"{release}.kubeconfig",
            duration=duration,
        )
        yield Identity(release, namespace, account, kubeconfig)
    finally:
        helm(stack, env, "uninstall", release, "--namespace", namespace, check=False)


def documented_member_role(suffix: str) -> list[dict[str, Any]]:
    """The member-cluster RBAC block of docs/install.md, its names made unique."""
    text = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# apply in each REGION cluster.*?)```", text, re.DOTALL)
    assert block, "docs/install.md lost its member-cluster RBAC block"
    docs = [d for d in yaml.safe_load_all(block.group(1)) if d]
    renames = {"wattscale-hub": f"wattscale-hub-{suffix}", "wattscale-member": f"ws-mb-{suffix}"}
    for doc in docs:
        doc["metadata"]["name"] = renames[doc["metadata"]["name"]]
        if "roleRef" in doc:
            doc["roleRef"]["name"] = renames[doc["roleRef"]["name"]]
            for subject in doc["subjects"]:
                subject["name"] = renames[subject["name"]]
    return docs


@contextlib.contextmanager
def member_identities(
    stack: Stack, regions: list[str], secret_namespace: str, workdir: Path, duration: str = "12h"
) -> Iterator[dict[str, str]]:
    """docs/install.md's member role in every region cluster (unique names), and in the hub's
    ``secret_namespace`` one Secret per region (key ``kubeconfig``) holding a bound token of its
    ServiceAccount; yields region -> Secret name. On exit the Secrets and the RBAC go."""
    suffix = uuid.uuid4().hex[:6]
    docs = documented_member_role(suffix)
    manifest = yaml.safe_dump_all(docs)
    account = next(d["metadata"] for d in docs if d["kind"] == "ServiceAccount")
    workdir.mkdir(parents=True, exist_ok=True)
    secrets: dict[str, str] = {}
    applied: list[str] = []
    try:
        for region in regions:
            applied.append(region)
            stack.kubectl(region, "apply", "-f", "-", stdin=manifest)
            path = service_account_kubeconfig(
                stack, region, account["namespace"], account["name"],
                workdir / f"{region}-{suffix}.kubeconfig", duration=duration,
            )  # fmt: skip
            name = secrets[region] = f"region-{region}-member-{suffix}"
            stack.kubectl(
                stack.hub, "create", "secret", "generic", name, "-n", secret_namespace,
                f"--from-file=kubeconfig={path}",
            )  # fmt: skip
        yield secrets
    finally:
        for name in secrets.values():
            stack.kubectl(
                stack.hub, "delete", "secret", name, "-n", secret_namespace, "--wait=false",
                check=False,
            )  # fmt: skip
        for region in applied:
            stack.kubectl(region, "delete", "-f", "-", "--wait=false", stdin=manifest, check=False)


# ---- what an identity may do ---------------------------------------------------------------------


def can_i(stack: Stack, account: str, access: str, cluster: str | None = None) -> bool:
    """Whether ServiceAccount ``namespace:name`` may do ``access`` on ``cluster`` (the hub by
    default), asked as a SubjectAccessReview.

    ``access`` reads "VERB RESOURCE[.GROUP][/SUBRESOURCE] [NAMESPACE]". A review needs no
    discovery, so it also answers for kinds the cluster does not serve (e.g. Gateway API routes).
    """
    namespace_sa, name = account.split(":")
    verb, resource, *rest = access.split()
    resource, _, subresource = resource.partition("/")
    plural, _, group = resource.partition(".")
    attributes = {"verb": verb, "group": group, "resource": plural, "subresource": subresource}
    if rest:
        attributes["namespace"] = rest[0]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{namespace_sa}:{name}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace_sa}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    out = stack.kubectl(
        cluster or stack.hub, "create", "-o", "json", "-f", "-", stdin=json.dumps(review)
    )
    return bool(json.loads(out.stdout)["status"].get("allowed"))


def access_mismatches(
    stack: Stack, account: str, allowed: list[str], refused: list[str], cluster: str | None = None
) -> list[str]:
    """The rules of a SubjectAccessReview matrix the cluster answers otherwise."""
    wrong = [a for a in allowed if not can_i(stack, account, a, cluster)]
    wrong += [f"NOT {a}" for a in refused if can_i(stack, account, a, cluster)]
    return wrong


# ---- what an operator log must not say -----------------------------------------------------------

_REFUSED = re.compile(r"forbidden|\(403\)|'code': 403|\bstatus[=:] ?403\b", re.IGNORECASE)


def rbac_refusals(log: str) -> list[str]:
    """The lines of an operator log where the API server refused a request (HTTP 403)."""
    # An admission policy's denial is not RBAC: an e2e test sets one up on purpose.
    return [
        line
        for line in log.splitlines()
        if _REFUSED.search(line) and "ValidatingAdmissionPolicy" not in line
    ]


# ---- the dashboards' PromQL ----------------------------------------------------------------------

RATE_INTERVAL = "30s"
"""What ``$__rate_interval`` stands for: Grafana makes it at least four scrape intervals."""


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target, template variable and annotation, as Grafana would
    send them with every variable set to All and ``$__rate_interval`` to :data:`RATE_INTERVAL`."""
    out: list[tuple[str, str]] = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        found = [
            (f"{panel['title']} {t['refId']}", t["expr"])
            for panel in board["panels"]
            for t in panel.get("targets", [])
        ]
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                # Grafana's label_values(METRIC, LABEL) is, in PromQL, "which LABEL values exist".
                metric, label = var["definition"][len("label_values(") : -1].rsplit(",", 1)
                found.append((f"${var['name']}", f"count by ({label.strip()}) ({metric})"))
        found += [(a["name"], a["expr"]) for a in board["annotations"]["list"] if "expr" in a]
        for where, expr in found:
            for var, value in (
                ("$namespace", ".*"),
                ("$deployment", ".*"),
                ("$region", ".*"),
                ("$__rate_interval", RATE_INTERVAL),
            ):
                expr = expr.replace(var, value)
            out.append((f"{path.name}: {where}", expr))
    return out


_SELECTOR = re.compile(r"\b(wattscale_[a-z0-9_]+)(\{[^}]*\})?")


def selectors(expr: str) -> list[str]:
    """The series selectors of ``expr`` (metric name with its label matchers), in order."""
    return [name + (matchers or "") for name, matchers in _SELECTOR.findall(expr)]


SCALE_TO_ZERO_METRIC = "wattscale_gateway_waiting_requests"
"""Exported only for deployments with ``minReplicas: 0``: its panels are proven by the
scale-to-zero scenario (tests/e2e/test_scale_to_zero.py), the others by the operator's."""

VARIANT_METRIC = "wattscale_variant_desired_replicas"
"""Exported only for deployments with ``spec.engine.variants``: its panel is proven by the
two-variant scenario (tests/e2e/test_variants.py), the others by the operator's."""


def dashboard_gaps(
    prometheus: PrometheusServer,
    lookback: str = "1h",
    keep: Callable[[str], bool] = lambda expr: True,
) -> list[str]:
    """Every dashboard query (for which ``keep`` holds) Prometheus refuses or answers with no
    data, one line each.

    A query's own result is not enough where it has a fallback (``... or vector(0)`` turns "no
    such series" into 0), so each series selector inside a query must also have selected
    something within ``lookback``: a typo'd metric name or label value cannot hide there.
    """
    gaps: list[str] = []
    for where, expr in dashboard_queries():
        if not keep(expr):
            continue
        probes = [(expr, expr)]
        probes += [(sel, f"present_over_time({sel}[{lookback}])") for sel in selectors(expr)]
        for what, promql in probes:
            try:
                result = prometheus.query(promql)
            except urllib.error.HTTPError as err:
                body = err.read().decode(errors="replace")[:300]
                gaps.append(f"{where}: refused: {promql}: {body}")
                break
            if not result:
                kind = "no data" if what == expr else f"selector {what} selected nothing"
                gaps.append(f"{where}: {kind}: {expr}")
    return gaps
