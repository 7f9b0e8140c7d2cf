"""The region snapshot: one aggregated query per reading, answered per deployment from memory.

A fake Prometheus answers only the aggregated queries (any other query fails the test), with
samples labelled the way Prometheus labels ``... by (namespace, deployment)`` results. The
equivalence with per-deployment queries on a real Prometheus is in
tests/integration/metrics/test_snapshot_live.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from wattscale.metrics import DeploymentTarget, MetricsConfig, MetricsReader, ReadingStatus
from wattscale.metrics.queries import AGE_NAME_LABEL, JOIN_NAMESPACE_LABEL
from wattscale.metrics.snapshot import GroupedQueries, MetricsSnapshot, supported

pytestmark = pytest.mark.unit

CONFIG = MetricsConfig()
DEP = CONFIG.vllm_labels.deployment
VALUES = {
    "pods": 2.0, "targets": 2.0, "ttft50": 0.1, "ttft95": 0.3, "tpot50": 0.01, "tpot95": 0.03,
    "requests": 10.0, "prompt": 9000.0, "generation": 3000.0, "running": 20.0, "waiting": 0.0,
    "kv_cache": 0.4, "gpus": 2.0, "dcgm_age": 4.0, "power": 1200.0, "energy": 144000.0,
    "util": 0.5,
}  # fmt: skip


class GroupedProm:
    """Answers the aggregated queries for the deployments it holds; nothing else."""

    def __init__(self, deployments: dict[tuple[str, str], float]) -> None:
        self.kinds = {k.grouped: name for name, k in GroupedQueries(CONFIG).kinds().items()}
        self.deployments = deployments  # (namespace, name) -> generation tokens/s
        self.sent: list[str] = []
        self.down = False

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.sent.append(query)
        if self.down:
            raise requests.exceptions.ConnectionError("connection refused")
        kind = self.kinds[query]  # KeyError: a query the snapshot should not have sent
        out = []
        for (ns, name), tokens in self.deployments.items():
            ns_label = (
                JOIN_NAMESPACE_LABEL
                if kind in ("gpus", "dcgm_age", "power", "energy", "util")
                else "namespace"
            )
            labels = {ns_label: ns, DEP: name}
            if kind == "down":
                continue
            if kind == "ages":
                names = sorted(
                    {n for g in GroupedQueries(CONFIG).q.vllm_sample_names().values() for n in g}
                )
                out += [{"metric": {**labels, AGE_NAME_LABEL: n}, "value": [0, "3"]} for n in names]
                continue
            value = tokens if kind == "generation" else VALUES[kind]
            out.append({"metric": labels, "value": [0, str(value)]})
        return out

    def custom_query_range(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no range query expected")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _snapshot(prom: GroupedProm, clock: Clock) -> MetricsSnapshot:
    reader = MetricsReader(
        "http://prometheus.invalid", CONFIG, region="r", client=prom, clock=clock
    )
    return MetricsSnapshot(reader, clock)


def test_one_query_per_reading_serves_every_deployment() -> None:
    prom = GroupedProm({("a", "llama"): 3000.0, ("b", "qwen"): 500.0})
    clock = Clock()
    snap = _snapshot(prom, clock)
    snap.refresh()
    assert snap.queries == len(prom.sent) == 19
    llama = snap.reader_for(DeploymentTarget("a", "llama")).read(
        DeploymentTarget("a", "llama"), expected_pods=2
    )
    qwen = snap.reader_for(DeploymentTarget("b", "qwen")).read(
        DeploymentTarget("b", "qwen"), expected_pods=2
    )
    assert len(prom.sent) == 19  # the reads asked Prometheus nothing
    assert llama.generation_tokens_per_second.value == 3000.0
    assert qwen.generation_tokens_per_second.value == 500.0
    for r in (llama, qwen):
        assert r.pods_reporting == 2
        assert r.gpus_reporting == 2
        assert all(x.status is ReadingStatus.OK for x in r.readings().values()), r.readings()


def test_a_deployment_without_series_is_missing_not_zero() -> None:
    prom = GroupedProm({("a", "llama"): 3000.0})
    snap = _snapshot(prom, Clock())
    snap.refresh()
    target = DeploymentTarget("a", "other")
    r = snap.reader_for(target).read(target, expected_pods=2)
    assert r.pods_reporting == 0
    assert all(x.status is ReadingStatus.MISSING for x in r.readings().values())


def test_readings_age_with_the_snapshot_and_turn_stale() -> None:
    prom = GroupedProm({("a", "llama"): 3000.0})
    clock = Clock()
    snap = _snapshot(prom, clock)
    snap.refresh()
    target = DeploymentTarget("a", "llama")
    fresh = snap.reader_for(target).read(target)
    assert fresh.generation_tokens_per_second.age_seconds == pytest.approx(3.0)
    clock.now += CONFIG.stale_after_seconds  # the snapshot was not refreshed meanwhile
    old = snap.reader_for(target).read(target)
    assert old.generation_tokens_per_second.age_seconds == pytest.approx(
        3.0 + CONFIG.stale_after_seconds
    )
    assert old.generation_tokens_per_second.status is ReadingStatus.STALE


def test_a_dead_prometheus_costs_one_query_and_reads_missing() -> None:
    prom = GroupedProm({("a", "llama"): 3000.0})
    prom.down = True
    snap = _snapshot(prom, Clock())
    snap.refresh()
    assert len(prom.sent) == 1
    target = DeploymentTarget("a", "llama")
    r = snap.reader_for(target).read(target, expected_pods=2)
    assert not r.prometheus_reachable
    assert len(prom.sent) == 1
    assert all(x.status is ReadingStatus.MISSING for x in r.readings().values())


def test_only_label_selection_with_the_gpu_join_is_aggregated() -> None:
    assert supported(MetricsConfig())
    assert not supported(MetricsConfig(selection="pod_regex"))
    assert not supported(MetricsConfig(dcgm_selection="pod_regex"))
    assert not supported(MetricsConfig(filter_by_model=True))
