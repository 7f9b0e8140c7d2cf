"""A marker planted in every credential and feed body must not come back out anywhere an
unprivileged user can read: logs, Region status and conditions, the InferenceDeployment's status
and Events, and the operator's metrics.

Each path gets its own marker: a kubeconfig whose YAML breaks on the token's line, a kubeconfig
``exec`` plugin whose argument holds it, a Prometheus bearer token, a CSV feed whose header line
holds it, and a feed that answers 401 with it in the body (as some providers echo the token).
One health check and one control-loop pass run on the real RegionDirectory, RegionHealthLoop
and Reconciler; feeds and the member cluster are loopback servers. tests/e2e/
test_shared_cluster.py plants markers the same way in a real operator process.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import generate_latest

from tests.cases.malformed import example
from tests.fakes.apiserver import FakeApiServer
from tests.fakes.feeds import FeedServer, Reply
from wattscale.api.sources import SecretKeyRef
from wattscale.controller.reconcile import Reconciler
from wattscale.controller.region_health import RegionHealthLoop
from wattscale.controller.settings import Settings
from wattscale.fleet.regions import RegionDirectory, default_cluster_factory
from wattscale.telemetry.metrics import OperatorMetrics

pytestmark = pytest.mark.unit

MARKERS = {
    "yaml": "mk-yaml-7f3a9c",
    "exec": "mk-exec-41be02",
    "bearer": "mk-bearer-9d11e5",
    "csv": "mk-csv-c0ffee",
    "body": "mk-body-5eed42",
}
GPU = example("Region")["spec"]["gpus"][0]


def _ref(name: str) -> dict[str, str]:
    return {"namespace": "wattscale-system", "name": name, "key": "value"}


def test_no_marker_reaches_logs_status_events_or_metrics(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    feeds = FeedServer(
        {
            "/prices.csv": Reply(body=f"{MARKERS['csv']},when\n1,2\n"),
            "/carbon.csv": Reply(status=401, body=f"bad token {MARKERS['body']}"),
        }
    )
    with FakeApiServer() as api, feeds:
        secrets = {
            "yaml": f"apiVersion: v1\nusers:\n- name: u\n  user: {{token: {MARKERS['yaml']}: x}}\n",
            "exec": api.kubeconfig({"exec": {"command": "/bin/echo", "args": [MARKERS["exec"]]}}),
            "good": api.kubeconfig({"token": "ok"}),
            "bearer": MARKERS["bearer"],
        }

        def read(ref: SecretKeyRef) -> str:
            return secrets[ref.name]

        directory = RegionDirectory(read, default_cluster_factory(lambda: None))  # type: ignore[arg-type,return-value]
        specs: dict[str, dict[str, Any]] = {
            "r-yaml": {"clusterRef": {"kubeconfigSecretRef": _ref("yaml")}, "gpus": [GPU]},
            "r-exec": {"clusterRef": {"kubeconfigSecretRef": _ref("exec")}, "gpus": [GPU]},
            "r-feeds": {
                "clusterRef": {"kubeconfigSecretRef": _ref("good")},
                "prometheus": {
                    "url": "http://127.0.0.1:1",
                    "bearerTokenSecretRef": _ref("bearer"),
                    "timeoutSeconds": 1,
                },
                "energy": {
                    "price": {"type": "csv", "url": f"{feeds.url}/prices.csv"},
                    "carbon": {"type": "csv", "url": f"{feeds.url}/carbon.csv"},
                },
                "gpus": [GPU],
            },
        }
        for name, spec in specs.items():
            directory.upsert(name, 1, spec)
        written: dict[str, dict[str, Any]] = {}
        metrics = OperatorMetrics()

        def write(name: str, status: dict[str, Any]) -> bool:
            written[name] = status
            return True

        RegionHealthLoop(directory, write, metrics, 30.0).check_all()
        reconciler = Reconciler(directory, Settings(interval_seconds=30), metrics)
        outcome = reconciler.reconcile(
            name="llm",
            namespace="ml",
            spec={
                "model": "m",
                "engine": {"gpuProduct": GPU["product"]},
                "slo": {"ttftP95Ms": 500, "tpotP95Ms": 50, "maxReplicas": 2},
                "placement": {"regions": list(specs)},
            },
            status=None,
            generation=1,
        )

    # The paths were really taken (else "no marker" would prove nothing):
    reachable = {n: s["reachable"] for n, s in written.items()}
    assert reachable == {"r-yaml": False, "r-exec": False, "r-feeds": True}
    fresh = {s["kind"]: s for s in written["r-feeds"]["signals"]}
    assert not fresh["price"]["fresh"]
    assert "401" in fresh["carbon"]["error"]
    assert outcome.events, "the pass posted no Event to check"
    seen = {
        "logs": "\n".join(r.getMessage() for r in caplog.records)
        + "\n".join(str(r.exc_info) for r in caplog.records if r.exc_info),
        "region status": repr(written),
        "deployment status": repr(outcome.status),
        "events": repr(outcome.events),
        "metrics": generate_latest(metrics.registry).decode(),
    }
    leaks = [
        f"{what} holds the {path} marker"
        for what, text in seen.items()
        for path, marker in MARKERS.items()
        if marker in text
    ]
    assert not leaks, leaks
