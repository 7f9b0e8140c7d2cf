"""A scale-down needs complete readings: every Ready pod reporting (issue 14 item 4).

The audit: with half the pods unscraped, Prometheus summed half the tokens, the loop read that
as demand and went 5 -> 3 replicas, SLOMet turned False, and no condition warned. Here the fake
Prometheus (tests/fakes/world.py) drops the metrics of some Ready pods the way a failed scrape
does: their tokens are missing from the sums and the readings are Partial.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.unit.controller.test_reconcile import Harness

pytestmark = pytest.mark.unit

REPLICA_TOKENS_PER_SECOND = 6_000.0
"""What one fake replica serves within the SLO (tests/fakes/world.py: Load)."""


def _metrics_complete(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "MetricsComplete")


def _serving() -> tuple[Harness, int]:
    """Steady at 25,000 tok/s, all in us-east (the cheapest); the fleet's size."""
    h = Harness(placement__scaleDownStabilizationSeconds=0, placement__minSavingsPercent=1)
    h.serve(25_000.0, passes=6)
    fleet = h.replicas()["us-east"]
    assert fleet >= 5, h.replicas()
    assert fleet == sum(h.replicas().values()), h.replicas()
    assert _metrics_complete(h.status)["status"] == "True"
    return h, fleet


def test_half_the_pods_unscraped_never_shrinks_the_fleet_and_names_them() -> None:
    h, fleet = _serving()
    metrics = h.region("us-east").metrics
    metrics.unreported = fleet - 2  # 2 report: the sum reads a fraction of the 25,000 tok/s
    metrics.unscraped = ["llama-vllm-7d9f-abcde", "llama-vllm-7d9f-fghij", "llama-vllm-7d9f-klmno"]
    for _ in range(10):
        h.step()
        assert sum(h.replicas().values()) >= fleet, "scaled down on partial readings"
    cond = _metrics_complete(h.status)
    assert (cond["status"], cond["reason"]) == ("False", "PodsMissing")
    assert f"us-east: 2 of {fleet} Ready pods reporting" in cond["message"]
    assert "llama-vllm-7d9f-abcde, llama-vllm-7d9f-fghij, llama-vllm-7d9f-klmno" in cond["message"]
    assert "metrics incomplete" in h.status["lastDecision"]["message"]


def test_partial_readings_may_still_grow_the_fleet() -> None:
    h, fleet = _serving()
    h.region("us-east").metrics.unreported = 1  # all but one report
    h.load.tokens_per_second = 60_000.0  # even the partial sum needs more replicas
    for _ in range(6):
        h.step()
    assert sum(h.replicas().values()) > fleet, h.replicas()
    assert _metrics_complete(h.status)["status"] == "False"


def test_complete_readings_again_allow_the_scale_down() -> None:
    h, fleet = _serving()
    metrics = h.region("us-east").metrics
    metrics.unreported = fleet - 2
    h.load.tokens_per_second = 5_000.0  # demand really fell, but the readings cannot show it
    for _ in range(6):
        h.step()
    assert sum(h.replicas().values()) >= fleet
    metrics.unreported = 0
    metrics.unscraped = []
    # The recent-peak guard-rail keeps what was served within the sizing window (the cold start
    # + two 30-s intervals): once that has passed on complete readings, the fall is real and the
    # fleet may shrink.
    window_passes = math.ceil((h.spec["placement"]["coldStartSeconds"] + 2 * 30.0) / 30.0)
    for _ in range(window_passes + 2):
        h.step()
    assert _metrics_complete(h.status)["status"] == "True"
    assert sum(h.replicas().values()) < fleet, h.replicas()


def test_a_region_that_is_down_is_not_counted_as_incomplete() -> None:
    """Unreachable regions are reported by Degraded; their pods are not counted anywhere."""
    h, _ = _serving()
    h.region("eu-central").cluster.reachable = False
    h.step()
    assert _metrics_complete(h.status)["status"] == "True"
