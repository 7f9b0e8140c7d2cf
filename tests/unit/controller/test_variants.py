"""The controller and spec.engine.variants: each variant a workload per region, planned as a
pool; the first keeps the name <name>-vllm; status says the replicas per variant."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest

from tests.fakes.world import build_world
from tests.unit.controller.test_reconcile import NAME, NS, PRICES, Harness
from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.cli_operator import explain_text
from wattscale.controller.handlers import held_gpus
from wattscale.controller.reconcile import Reconciler
from wattscale.controller.settings import Settings
from wattscale.metrics.capacity_schedule import (
    ESTIMATE_EVERY_WINDOW_BELOW,
    ESTIMATE_REFRESH_INTERVALS,
)

pytestmark = pytest.mark.unit

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
A100_OFFER = {
    "product": A100,
    "hourlyCost": "1.00",
    "idleWatts": 60,
    "maxWatts": 400,
    "hostWattsPerGpu": 100,
    "available": 16,
}


class VariantHarness(Harness):
    """Every region offers A100s beside its H100s; the spec has an h100 and an a100 variant."""

    def __init__(
        self, a100_hint: int = 4000, a100_available: int = 16, **spec_changes: Any
    ) -> None:
        super().__init__(**spec_changes)
        offer = {**A100_OFFER, "available": a100_available}
        self.directory, self.regions, self.load = build_world(PRICES, extra_gpus=[offer])
        self.reconciler = Reconciler(
            self.directory, Settings(interval_seconds=30), clock=self.clock
        )
        self.spec["engine"]["variants"] = [
            {"name": "h100", "gpuProduct": H100, "tokensPerSecondPerReplica": 6000},
            {"name": "a100", "gpuProduct": A100, "tokensPerSecondPerReplica": a100_hint},
        ]

    def per_variant(self) -> dict[str, int]:
        out = {"h100": 0, "a100": 0}
        for r in self.regions.values():
            out["h100"] += r.cluster.replicas(NAME)
            dep = r.cluster.deployments.get((NS, f"{NAME}-a100-vllm"))
            out["a100"] += int(dep["spec"]["replicas"]) if dep else 0
        return out


def test_the_cheaper_variant_per_token_carries_the_load() -> None:
    h = VariantHarness()
    h.serve(20_000.0)
    counts = h.per_variant()
    assert counts["a100"] > 0
    assert counts["a100"] * 4000 >= counts["h100"] * 6000  # most capacity on the A100s
    assert h.status["lastDecision"]["reason"] != "Unsupported"


def test_status_gives_replicas_per_variant_beside_the_region_totals() -> None:
    h = VariantHarness()
    h.serve(20_000.0)
    rows = h.status["regions"]
    assert all(set(r["variants"]) == {"h100", "a100"} for r in rows)
    assert all(r["desiredReplicas"] == sum(r["variants"].values()) for r in rows)
    assert h.status["replicas"] == sum(h.per_variant().values())
    held = held_gpus(h.spec, h.status)
    assert held is not None
    assert sum(g for k, g in held[1].items() if k.gpu_product == A100) == h.per_variant()["a100"]


def test_a_dearer_variant_hands_its_load_over_make_before_break() -> None:
    h = VariantHarness(a100_hint=1000)  # believed slow: the H100s carry the load
    h.serve(20_000.0)
    assert h.per_variant()["h100"] > 0
    before = h.per_variant()["h100"]
    h.spec["engine"]["variants"][1]["tokensPerSecondPerReplica"] = 6000  # now A100s are cheaper
    h.slow_cold_starts()
    h.step()
    assert h.per_variant()["a100"] > 0
    assert h.per_variant()["h100"] == before  # the H100s serve until the A100s are Ready
    for _ in range(12):
        h.cold_start_done()
        h.step(60)
    assert h.per_variant()["h100"] < before


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


def test_metrics_and_explain_say_the_replicas_per_variant() -> None:
    h = VariantHarness()
    h.serve(20_000.0)
    registry = h.reconciler.metrics.registry
    total = 0.0
    for region in PRICES:
        for variant in ("h100", "a100"):
            labels = {"namespace": NS, "deployment": NAME, "region": region, "variant": variant}
            total += registry.get_sample_value("wattscale_variant_desired_replicas", labels) or 0
    assert total == sum(h.per_variant().values())
    text = explain_text(
        {"metadata": {"namespace": NS, "name": NAME}, "spec": h.spec, "status": h.status}
    )
    assert "variants in us-east: h100=" in text


def test_no_variant_metric_without_variants() -> None:
    h = Harness()
    h.serve(20_000.0)
    text = generate_latest(h.reconciler.metrics.registry).decode()
    assert "wattscale_variant_desired_replicas{" not in text  # the family, no series


def _both_running(h: VariantHarness) -> list[str]:
    """The regions where both variants have Ready replicas."""
    out = []
    for name, r in h.regions.items():
        a100 = r.cluster.ready.get((NS, f"{NAME}-a100-vllm"), 0)
        if r.cluster.ready.get((NS, f"{NAME}-vllm"), 0) > 0 and a100 > 0:
            out.append(name)
    return out


def test_a_region_running_two_variants_teaches_each_its_own_windows() -> None:
    # One region, too few A100s for the load: both variants serve there at once. Each
    # variant's readings report their own p95 TTFT (the pooled reading would mix them).
    h = VariantHarness(a100_available=3)
    h.spec["placement"].update(regions=["us-east"], homeRegion="us-east")
    h.regions["us-east"].metrics.variant_ttft_p95_seconds = {"": 0.21, "a100": 0.37}
    h.serve(20_000.0, passes=8)
    both = _both_running(h)
    assert both == ["us-east"], {n: r.cluster.ready for n, r in h.regions.items()}
    mem = h.reconciler._memories.get(NS, NAME, InferenceDeploymentSpec.model_validate(h.spec))
    firsts = [w for w in mem.learner.observations if w.source in both]
    a100s = [w for w in mem.variant_learners["a100"].observations if w.source in both]
    assert firsts
    assert a100s
    assert {w.ttft_p95_seconds for w in firsts} == {0.21}
    assert {w.ttft_p95_seconds for w in a100s} == {0.37}


def test_without_variants_nothing_is_read_per_variant() -> None:
    h = Harness()
    h.serve(20_000.0)
    assert all(r.metrics.reads for r in h.regions.values() if r.cluster.replicas(NAME))
    assert all(not r.metrics.variant_reads for r in h.regions.values())


def test_a_restart_replays_each_variants_own_capacity_history() -> None:
    h = VariantHarness()
    h.step()
    asked = {t.variant for r in h.regions.values() for t in r.metrics.capacity_histories}
    assert asked == {"", "a100"}  # the first variant's pods by the absent label
    plain = Harness()
    plain.step()
    asked = {t.variant for r in plain.regions.values() for t in r.metrics.capacity_histories}
    assert asked == {None}  # without variants: the region's whole history, as before


def test_series_without_the_variant_label_fall_back_to_the_pooled_readings() -> None:
    # The scrape config drops the variant label: every pod reads as the first variant's. The
    # per-variant readings are not believed (the first reports more pods than it has Ready):
    # the region's pooled readings teach as before, neither learner while both variants run.
    h = VariantHarness(a100_available=3)
    h.spec["placement"].update(regions=["us-east"], homeRegion="us-east")
    h.regions["us-east"].metrics.variant_labels = False
    h.regions["us-east"].metrics.variant_ttft_p95_seconds = {"": 0.21}
    h.serve(20_000.0, passes=8)
    assert _both_running(h) == ["us-east"]
    mem = h.reconciler._memories.get(NS, NAME, InferenceDeploymentSpec.model_validate(h.spec))
    assert h.regions["us-east"].metrics.variant_reads
    assert all(w.ttft_p95_seconds != 0.21 for w in mem.learner.observations)
    assert all(w.replicas <= 3 for w in mem.learner.observations)  # no pooled 6-pod window


def test_a_variants_estimate_is_recomputed_by_the_first_variants_rule() -> None:
    # Each variant's learner holds up to 2,000 windows; recomputing its posterior every pass
    # was most of a pass's CPU for a deployment with variants. It follows the first's rule.
    h = VariantHarness(a100_available=3)
    h.spec["placement"].update(regions=["us-east"], homeRegion="us-east")
    h.regions["us-east"].metrics.variant_ttft_p95_seconds = {"": 0.21, "a100": 0.21}
    h.serve(20_000.0, passes=8)
    mem = h.reconciler._memories.get(NS, NAME, InferenceDeploymentSpec.model_validate(h.spec))
    schedule = mem.variant_estimates["a100"]
    assert schedule.estimate is not None
    calls = 0
    learner = mem.variant_learners["a100"]
    estimate = learner.estimate

    def counted(now_seconds: float | None = None) -> Any:
        nonlocal calls
        calls += 1
        return estimate(now_seconds)

    learner.estimate = counted  # type: ignore[method-assign]
    for _ in range(2 * ESTIMATE_EVERY_WINDOW_BELOW):
        if len(learner.observations) >= ESTIMATE_EVERY_WINDOW_BELOW:
            break
        h.step()  # few windows held: each one refreshes
    assert len(learner.observations) >= ESTIMATE_EVERY_WINDOW_BELOW, "the A100s stopped"
    calls = 0
    for _ in range(ESTIMATE_REFRESH_INTERVALS - 1):
        h.step()  # steady and far from the SLO: nothing is news
    assert calls <= 1, calls
    h.step(30.0 * ESTIMATE_REFRESH_INTERVALS)
    assert schedule.at_seconds == h.clock.now, "due after enough intervals"
