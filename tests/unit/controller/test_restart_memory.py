"""What a restarted operator reads back for its planner's memory of recent demand
(controller/memory.py's recent_demand_seed): the passes before it, summed over regions, or
nothing when the sum would under-read."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fakes.world import T0, FakeCluster, FakeMetrics, Load
from wattscale.clusters.client import WorkloadState
from wattscale.controller.memory import WARM_START_RECENT_PASSES, recent_demand_seed
from wattscale.fleet.observe import RegionObservation
from wattscale.fleet.regions import RegionRuntime
from wattscale.metrics import DeploymentTarget

pytestmark = pytest.mark.unit

TARGET = DeploymentTarget(namespace="ml-serving", deployment="llama")
INTERVAL_SECONDS = 30.0
NOW = T0 + timedelta(hours=1)


def _region(
    name: str, ready: int, history: list[tuple[float, float]], down: bool = False
) -> RegionObservation:
    cluster = FakeCluster(name)
    metrics = FakeMetrics(cluster, Load([cluster]), down=down, history=history)
    return RegionObservation(
        name,
        RegionRuntime(name, 1, None, metrics=metrics),  # type: ignore[arg-type]
        available=True,
        workload=WorkloadState(exists=ready > 0, specReplicas=ready, readyReplicas=ready),
    )


def _passes(value: float, count: int = 80) -> list[tuple[float, float]]:
    """``value`` tok/s at every pass of the ``count`` before now (newest last)."""
    now = NOW.timestamp()
    return [(now - INTERVAL_SECONDS * k, value) for k in range(count, 0, -1)]


def test_the_passes_before_the_restart_summed_over_regions() -> None:
    regions = [_region("us-east", 3, _passes(9_000.0)), _region("us-west", 1, _passes(1_000.0))]
    seed = recent_demand_seed(regions, TARGET, NOW, INTERVAL_SECONDS)
    assert len(seed) == WARM_START_RECENT_PASSES
    assert {v for _, v in seed} == {10_000.0}
    assert seed[-1][0] == NOW.timestamp() - INTERVAL_SECONDS, "this pass measures its own"
    assert [t for t, _ in seed] == sorted(t for t, _ in seed)


def test_a_serving_region_that_cannot_be_read_leaves_the_memory_empty() -> None:
    """9,000 of 10,000 tok/s read would make the first true reading an 11 % surge."""
    regions = [
        _region("us-east", 3, _passes(9_000.0)),
        _region("us-west", 1, _passes(1_000.0), down=True),
    ]
    assert recent_demand_seed(regions, TARGET, NOW, INTERVAL_SECONDS) == ()


def test_a_region_without_replicas_adds_what_it_served_and_may_be_unreadable() -> None:
    """A region drained minutes ago served part of the demand then; one that is down and runs
    nothing now takes nothing from the sum of those that serve."""
    regions = [
        _region("us-east", 3, _passes(6_000.0)),
        _region("eu-central", 0, _passes(4_000.0, count=10)),  # drained just now
        _region("us-west", 0, [], down=True),
    ]
    seed = dict(recent_demand_seed(regions, TARGET, NOW, INTERVAL_SECONDS))
    assert seed[NOW.timestamp() - INTERVAL_SECONDS] == 10_000.0
    assert seed[NOW.timestamp() - 20 * INTERVAL_SECONDS] == 6_000.0
