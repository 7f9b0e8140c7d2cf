"""Two InferenceDeployments sharing Regions through the ledger: a Region's 16 GPUs are 16 for
both together, who yields is named, and priority decides who yields."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.world import build_world
from tests.unit.controller.test_reconcile import NS, PRICES, Clock, _spec
from wattscale.controller.reconcile import Reconciler
from wattscale.controller.settings import Settings
from wattscale.fleet.ledger import QuotaLedger
from wattscale.planner import PoolKey

pytestmark = pytest.mark.unit

H100 = "NVIDIA-H100-80GB-HBM3"


class Fleet:
    def __init__(self, **priorities: int) -> None:
        self.directory, self.regions, self.load = build_world(PRICES)
        self.clock = Clock()
        self.ledger = QuotaLedger()
        self.reconciler = Reconciler(
            self.directory, Settings(interval_seconds=30), clock=self.clock, ledger=self.ledger
        )
        self.specs = {
            name: _spec(capacity__tokensPerSecondPerReplica=6000, slo__maxReplicas=40, priority=p)
            for name, p in priorities.items()
        }
        self.status: dict[str, dict[str, Any]] = {n: {} for n in self.specs}

    def step(self) -> None:
        self.clock.advance(30.0)
        for name, spec in self.specs.items():
            out = self.reconciler.reconcile(
                name=name, namespace=NS, spec=spec, status=self.status[name], generation=1
            )
            self.status[name] = out.status

    def held(self, region: str) -> int:
        return sum(self.ledger.held(PoolKey(region, H100)).values())

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        return next(c for c in self.status[name]["conditions"] if c["type"] == type_)


def test_deployments_together_never_hold_more_than_a_region_offers() -> None:
    fleet = Fleet(llama=0, qwen=0)
    fleet.step()
    fleet.load.tokens_per_second = 150_000.0  # ~30 replicas of 6,000 tok/s with headroom
    for _ in range(8):
        fleet.step()
        for region in PRICES:
            assert fleet.held(region) <= 16
            running = sum(
                c.replicas(n) for c in [fleet.regions[region].cluster] for n in fleet.specs
            )
            assert running <= 16
    notes = [fleet.condition(n, "QuotaExhausted") for n in fleet.specs]
    assert any(c["status"] == "True" for c in notes), notes
    bound = next(c for c in notes if c["status"] == "True")
    assert "GPUs" in bound["message"]
    assert "llama" in bound["message"] or "qwen" in bound["message"]


def test_the_higher_priority_is_served_and_the_lower_yields() -> None:
    # Both read the whole (fake) load, so together they want more than the three Regions hold.
    fleet = Fleet(low=0, high=5)
    fleet.step()
    fleet.load.tokens_per_second = 150_000.0  # each wants ~28 replicas; the Regions hold 48
    fleet.step()
    assert fleet.status["low"]["replicas"] > fleet.status["high"]["replicas"]  # low came first
    for _ in range(10):
        fleet.step()
        for region in PRICES:
            assert fleet.held(region) <= 16
    assert fleet.status["high"]["replicas"] > fleet.status["low"]["replicas"]  # low yielded
    low = fleet.condition("low", "QuotaExhausted")
    assert low["status"] == "True"
    assert f"{NS}/high" in low["message"]
