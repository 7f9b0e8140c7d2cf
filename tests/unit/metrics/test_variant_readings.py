"""Per-variant readings: the vLLM queries grouped by the variant label, one sample per variant.

A fake Prometheus holds pods (namespace, deployment, variant label or none, tokens/s, p95
TTFT) and answers only the grouped queries it is meant to get, aggregating its pods the way
Prometheus would (a pod without the variant label falls in the ``""`` group, as an absent
label does). The same against a real Prometheus is in
tests/integration/metrics/test_variant_readings_live.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests

from wattscale.metrics import DeploymentTarget, MetricsConfig, MetricsReader, ReadingStatus
from wattscale.metrics.queries import AGE_NAME_LABEL, QueryBuilder
from wattscale.metrics.snapshot import GroupedQueries, MetricsSnapshot

pytestmark = pytest.mark.unit

CONFIG = MetricsConfig()
NS, DEP, VAR = "namespace", CONFIG.vllm_labels.deployment, CONFIG.vllm_labels.variant
TARGET = DeploymentTarget("llm", "llama")
SAMPLE_NAMES = sorted({n for g in QueryBuilder(CONFIG).vllm_sample_names().values() for n in g})


@dataclass(frozen=True)
class Pod:
    namespace: str
    deployment: str
    variant: str  # "" = no variant label (the first variant)
    tokens_per_second: float
    ttft_p95_seconds: float


def _value(kind: str, pods: list[Pod]) -> float:
    if kind in ("pods", "targets"):
        return float(len(pods))
    if kind == "generation":
        return sum(p.tokens_per_second for p in pods)
    if kind == "ttft95":
        return max(p.ttft_p95_seconds for p in pods)
    return 0.01 if kind in ("ttft50", "tpot50", "tpot95") else 1.0


class VariantProm:
    """Answers the grouped-by-variant queries (per deployment, or the snapshot's for every
    deployment) and the snapshot's per-deployment ones; any other query fails the test."""

    def __init__(self, pods: list[Pod]) -> None:
        self.pods = pods
        self.sent: list[str] = []
        self.down = False
        whole = QueryBuilder(CONFIG, by_variant=True).vllm_reads()
        self.kinds: dict[str, tuple[str, tuple[str, ...]]] = {
            f(TARGET): (kind, (VAR,)) for kind, f in whole.items()
        }
        for by, keys in ((True, (NS, DEP, VAR)), (False, (NS, DEP))):
            for kind, k in GroupedQueries(CONFIG, by_variant=by).kinds().items():
                self.kinds[k.grouped] = (kind, keys)

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.sent.append(query)
        if self.down:
            raise requests.exceptions.ConnectionError("connection refused")
        kind, keys = self.kinds[query]  # KeyError: a query that should not have been sent
        pods = [p for p in self.pods if keys != (VAR,) or p.deployment == TARGET.deployment]
        groups: dict[tuple[tuple[str, str], ...], list[Pod]] = {}
        for p in pods:
            labels = {NS: p.namespace, DEP: p.deployment, VAR: p.variant}
            key = tuple((k, labels[k]) for k in keys if labels[k])  # "" = label absent
            groups.setdefault(key, []).append(p)
        if kind in ("down", "gpus", "dcgm_age", "power", "energy", "util"):
            return []
        out = []
        for key, members in groups.items():
            if kind == "ages":
                out += [
                    {"metric": {**dict(key), AGE_NAME_LABEL: n}, "value": [0, "2"]}
                    for n in SAMPLE_NAMES
                ]
            else:
                out.append({"metric": dict(key), "value": [0, str(_value(kind, members))]})
        return out

    def custom_query_range(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no range query expected")


PODS = [
    Pod("llm", "llama", "", 1500.0, 0.2),
    Pod("llm", "llama", "", 1500.0, 0.2),
    Pod("llm", "llama", "a100", 900.0, 0.6),
    Pod("llm", "qwen", "", 400.0, 0.1),
]


def _reader(prom: VariantProm) -> MetricsReader:
    return MetricsReader("http://prometheus.invalid", CONFIG, region="r", client=prom)


def test_selectors_narrow_to_a_variant_and_the_first_by_the_absent_label() -> None:
    q = QueryBuilder(CONFIG)
    first = q.vllm_selector(DeploymentTarget("llm", "llama", variant=""))
    other = q.vllm_selector(DeploymentTarget("llm", "llama", variant="a100"))
    assert 'wattscale_io_variant=""' in first
    assert 'wattscale_io_variant="a100"' in other
    # Without a variant nothing mentions the label: the queries are the ones from before.
    assert all(VAR not in f(TARGET) for f in q.vllm_reads().values())
    custom = MetricsConfig.model_validate({"vllm_labels": {"variant": "flavour"}})
    assert 'flavour="a100"' in QueryBuilder(custom).vllm_selector(
        DeploymentTarget("llm", "llama", variant="a100")
    )


def test_the_grouped_queries_keep_the_variant_label() -> None:
    grouped = QueryBuilder(CONFIG, by_variant=True).vllm_reads()
    assert grouped["generation"](TARGET).startswith(f"sum by ({VAR}) (rate(")
    assert f"sum by (le,{VAR})" in grouped["ttft95"](TARGET)
    assert f"count by (namespace,pod,{VAR})" in grouped["pods"](TARGET)
    assert f"max by ({VAR}) (timestamp(" in grouped["ages"](TARGET)


def test_each_variant_reads_its_own_pods_in_one_query_per_reading() -> None:
    prom = VariantProm(PODS)
    got = _reader(prom).read_variants(TARGET, {"": 2, "a100": 1, "l40s": 0})
    assert len(prom.sent) == len(QueryBuilder(CONFIG).vllm_reads())  # 14, for 3 variants
    first, a100, l40s = got[""], got["a100"], got["l40s"]
    assert (first.pods_reporting, a100.pods_reporting) == (2, 1)
    assert first.generation_tokens_per_second.value == 3000.0
    assert a100.generation_tokens_per_second.value == 900.0
    assert first.ttft_p95_seconds.value == 0.2
    assert a100.ttft_p95_seconds.value == 0.6
    assert first.generation_tokens_per_second.status is ReadingStatus.OK
    assert (first.variant, a100.variant) == ("", "a100")
    assert first.generation_tokens_per_second_per_replica() == 1500.0
    # GPU readings are per deployment; a variant with no pods is Missing, not zero load.
    assert first.gpu_power_watts.status is ReadingStatus.MISSING
    assert l40s.pods_reporting == 0
    assert l40s.generation_tokens_per_second.status is ReadingStatus.MISSING


def test_a_variant_with_fewer_pods_reporting_than_ready_is_partial() -> None:
    got = _reader(VariantProm(PODS)).read_variants(TARGET, {"": 2, "a100": 2})
    assert got[""].generation_tokens_per_second.status is ReadingStatus.OK
    assert got["a100"].generation_tokens_per_second.status is ReadingStatus.PARTIAL


def test_a_dead_prometheus_costs_the_variants_one_query() -> None:
    prom = VariantProm(PODS)
    prom.down = True
    got = _reader(prom).read_variants(TARGET, {"": 2, "a100": 1})
    assert len(prom.sent) == 1
    for r in got.values():
        assert not r.prometheus_reachable
        assert all(x.status is ReadingStatus.MISSING for x in r.readings().values())


def test_the_snapshot_asks_per_variant_only_when_a_deployment_with_variants_reads() -> None:
    prom = VariantProm(PODS)
    snap = MetricsSnapshot(_reader(prom))
    snap.refresh()
    qwen = DeploymentTarget("llm", "qwen")
    assert snap.reader_for(qwen).read(qwen).generation_tokens_per_second.value == 400.0
    assert snap.queries == len(prom.sent) == 19  # no deployment with variants: as before
    got = snap.reader_for(TARGET).read_variants(TARGET, {"": 2, "a100": 1})
    again = snap.reader_for(TARGET).read_variants(TARGET, {"": 2, "a100": 1})
    assert snap.queries == len(prom.sent) == 19 + 14  # once per refresh, for every deployment
    assert got[""].generation_tokens_per_second.value == 3000.0
    assert again["a100"].generation_tokens_per_second.value == 900.0
    assert got["a100"].ttft_p95_seconds.value == 0.6
    pooled = snap.reader_for(TARGET).read(TARGET, expected_pods=3)
    assert pooled.generation_tokens_per_second.value == 3900.0  # the region's total
    snap.refresh()
    assert snap.queries == 19  # asked again only when a deployment with variants reads
