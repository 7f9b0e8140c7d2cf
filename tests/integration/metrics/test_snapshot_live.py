"""Integration: one aggregated snapshot per region reads what per-deployment queries read.

Against a real Prometheus scraping the emulated deployments (current and older vLLM names, an
idle one, one that does not exist): every reading made through :class:`MetricsSnapshot` has the
same status, the same pod and GPU counts and, within the drift of two evaluation instants a
moment apart, the same value as :meth:`MetricsReader.read`, while the snapshot sends 19
queries for all of them.
"""

from __future__ import annotations

import math

import pytest

from tests.integration.metrics.live import Stack
from wattscale.metrics import DeploymentTarget, ReadingStatus
from wattscale.metrics.snapshot import MetricsSnapshot

pytestmark = pytest.mark.integration


def test_snapshot_readings_equal_per_deployment_readings(shared_stack: Stack) -> None:
    reader = shared_stack.reader()
    snapshot = MetricsSnapshot(reader)
    targets = [d.target for d in shared_stack.deployments.values()]
    targets.append(DeploymentTarget("team-a", "nope"))
    for target in targets:
        # Gauges move between scrapes: the two reads are made a moment apart.
        live = reader.read(target, expected_pods=2)
        snapshot.refresh()
        assert snapshot.queries == 19
        shared = snapshot.reader_for(target).read(target, expected_pods=2)
        assert shared.prometheus_reachable
        assert shared.pods_reporting == live.pods_reporting, target
        assert shared.pods_expected == live.pods_expected, target
        assert shared.gpus_reporting == live.gpus_reporting, target
        for name, reading in live.readings().items():
            other = shared.readings()[name]
            assert other.status is reading.status, (target, name, reading, other)
            if reading.value is None or not math.isfinite(reading.value):
                assert other.value is None or not math.isfinite(other.value), (target, name)
            else:
                assert other.value == pytest.approx(reading.value, rel=0.15, abs=1.0), (
                    target,
                    name,
                )
    steady = shared_stack.deployments["steady"].target
    assert (
        snapshot.reader_for(steady).read(steady).generation_tokens_per_second.status
        is ReadingStatus.OK
    )


def test_a_dead_prometheus_costs_the_snapshot_one_query(shared_stack: Stack) -> None:
    from wattscale.metrics import MetricsReader

    dead = MetricsReader("http://127.0.0.1:9", shared_stack.reader().config)
    snapshot = MetricsSnapshot(dead)
    snapshot.refresh()
    assert snapshot.queries == 1
    target = shared_stack.deployments["steady"].target
    r = snapshot.reader_for(target).read(target, expected_pods=2)
    assert not r.prometheus_reachable
    assert all(x.status is ReadingStatus.MISSING for x in r.readings().values())
