"""A region dropped from placement.regions is drained make-before-break, then its objects are
deleted (issue 14 item 9: before, its replicas ran forever).

Real passes of the Reconciler against in-memory regions (tests/fakes/world.py); replicas take a
pass to become Ready, so "make-before-break" is observable: the dropped region keeps serving
until the replacements are Ready.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.unit.controller.test_reconcile import NAME, NS, Harness
from wattscale.controller.reconcile import Reconciler
from wattscale.controller.settings import Settings

pytestmark = pytest.mark.unit

LOAD_TOKENS_PER_SECOND = 12_000.0
REPLICA_TOKENS_PER_SECOND = 6_000.0
"""What one fake replica serves within the SLO (tests/fakes/world.py: Load)."""
SLO_NEEDS = math.ceil(LOAD_TOKENS_PER_SECOND / REPLICA_TOKENS_PER_SECOND)
WORKLOAD = (NS, f"{NAME}-vllm")


def _serving_in_us_east() -> Harness:
    h = Harness(placement__scaleDownStabilizationSeconds=0, placement__minSavingsPercent=1)
    h.serve_with_cold_starts(LOAD_TOKENS_PER_SECOND)
    assert h.replicas()["us-east"] >= SLO_NEEDS, h.replicas()
    return h


def _rows(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in status["regions"]}


def _ready_serving(h: Harness) -> int:
    return sum(sum(r.cluster.ready.values()) for r in h.regions.values() if r.cluster.reachable)


def test_a_dropped_region_drains_make_before_break_then_its_objects_are_deleted() -> None:
    h = _serving_in_us_east()
    east = h.region("us-east").cluster
    before = h.replicas()["us-east"]
    h.spec["placement"]["regions"] = ["us-west", "eu-central"]
    seen_east: list[int] = []
    for _ in range(12):
        h.step()
        seen_east.append(h.replicas()["us-east"])
        assert _ready_serving(h) >= SLO_NEEDS, "Ready capacity fell below the need"
        h.cold_start_done()
    assert seen_east[0] == before, "replicas left before their replacements were Ready"
    assert h.replicas()["us-west"] >= SLO_NEEDS
    assert WORKLOAD not in east.deployments, "the dropped region's Deployment was left"
    assert f"{NAME}-vllm" in east.deleted
    assert "us-east" not in _rows(h.status)
    assert ("RegionRemoved", "us-east") in [(r, m.split(":")[0]) for r, m in h.events]


def test_the_drain_is_in_the_decision_and_the_row_stays_until_deleted() -> None:
    h = _serving_in_us_east()
    h.spec["placement"]["regions"] = ["us-west", "eu-central"]
    h.step()
    assert "us-east" in _rows(h.status), "the row is the drain's memory across restarts"
    assert "us-east removed from placement.regions" in h.status["lastDecision"]["message"]


def test_a_restart_resumes_the_drain_from_status() -> None:
    h = _serving_in_us_east()
    h.spec["placement"]["regions"] = ["us-west", "eu-central"]
    h.step()
    h.cold_start_done()
    # The operator restarts: a new Reconciler with no memory; only the status is left.
    h.reconciler = Reconciler(h.directory, Settings(interval_seconds=30), clock=h.clock)
    for _ in range(12):
        h.step()
        assert _ready_serving(h) >= SLO_NEEDS
        h.cold_start_done()
    assert WORKLOAD not in h.region("us-east").cluster.deployments
    assert "us-east" not in _rows(h.status)


def test_an_unreachable_dropped_region_is_held_and_cleaned_when_it_answers() -> None:
    h = _serving_in_us_east()
    east = h.region("us-east").cluster
    east.reachable = False
    h.spec["placement"]["regions"] = ["us-west", "eu-central"]
    for _ in range(6):
        h.step()
        h.cold_start_done()
    assert east.deployments[WORKLOAD]["spec"]["replicas"] >= SLO_NEEDS, "changed while away"
    assert "us-east" in _rows(h.status)
    assert _rows(h.status)["us-east"]["available"] is False
    east.reachable = True
    for _ in range(12):
        h.step()
        h.cold_start_done()
    assert WORKLOAD not in east.deployments
    assert "us-east" not in _rows(h.status)


def test_dry_run_deletes_nothing() -> None:
    h = _serving_in_us_east()
    h.spec["mode"] = "DryRun"
    h.spec["placement"]["regions"] = ["us-west", "eu-central"]
    for _ in range(6):
        h.step()
        h.cold_start_done()
    assert WORKLOAD in h.region("us-east").cluster.deployments
    assert h.region("us-east").cluster.deleted == []
