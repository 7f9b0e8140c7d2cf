"""Two operator replicas sharing the fleet through shard Leases: each deployment is passed by
exactly one of them, a non-owned pass writes nothing, and when one replica dies its shard is
taken over within one Lease duration plus one interval, warm-started, with no scale-down."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.fakes.leases import FakeLeases
from tests.fakes.world import build_world
from tests.unit.controller.test_reconcile import NS, PRICES, Clock, _spec
from wattscale.controller.handlers import owned_pass, share_quotas
from wattscale.controller.reconcile import Reconciler
from wattscale.controller.settings import Settings
from wattscale.fleet.leases import Membership
from wattscale.fleet.ledger import QuotaLedger
from wattscale.fleet.shards import Ownership
from wattscale.planner import PoolKey

pytestmark = pytest.mark.unit

SETTINGS = Settings(interval_seconds=30, sharding=True)
NAMES = [f"model-{i}" for i in range(8)]
H100 = "NVIDIA-H100-80GB-HBM3"


class Replica:
    def __init__(self, name: str, world: Any, store: FakeLeases, clock: Clock) -> None:
        self.name = name
        self.alive = True
        self.ownership = Ownership(name, sharded=True)
        self.membership = Membership(
            store,
            self.ownership,
            SETTINGS.lease_duration_seconds,
            1.5 * SETTINGS.lease_renew_seconds,
            clock,
        )
        self.reconciler = Reconciler(world, SETTINGS, clock=clock, ledger=QuotaLedger())


class TwoReplicas:
    def __init__(self, quotas: bool = True) -> None:
        self.directory, self.regions, self.load = build_world(PRICES)
        self.clock = Clock()
        self.store = FakeLeases()
        self.replicas = [
            Replica(n, self.directory, self.store, self.clock) for n in ("op-a", "op-b")
        ]
        for r in self.replicas:
            if quotas:  # as build_registry wires it
                assert r.reconciler.ledger is not None
                share_quotas(r.membership, r.reconciler.ledger)
        self.spec = _spec(capacity__tokensPerSecondPerReplica=6000, slo__maxReplicas=40)
        self.status: dict[str, dict[str, Any]] = {n: {} for n in NAMES}
        self.passed: Counter[tuple[str, str]] = Counter()

    def step(self) -> Counter[str]:
        """One interval: Leases renewed every 10 s, then every live replica's timers fire for
        every deployment. Returns how many replicas passed each deployment."""
        for _ in range(3):
            self.clock.advance(10.0)
            for r in self.replicas:
                if r.alive:
                    r.membership.renew()
        by_name: Counter[str] = Counter()
        # The replicas run side by side: what one reads of the other's deployments is their
        # status as the interval began.
        began = {name: dict(status) for name, status in self.status.items()}
        for r in self.replicas:
            if not r.alive:
                continue
            for name in NAMES:
                mine = r.ownership.owns(NS, name, self.clock())
                out = owned_pass(
                    r.reconciler,
                    r.ownership,
                    name=name,
                    namespace=NS,
                    spec=self.spec,
                    status=self.status[name] if mine else began[name],
                    generation=1,
                )
                if out is not None:
                    self.status[name] = out.status
                    by_name[name] += 1
                    self.passed[(r.name, name)] += 1
        return by_name

    def running(self) -> dict[str, int]:
        return {n: sum(reg.cluster.replicas(n) for reg in self.regions.values()) for n in NAMES}


def test_each_deployment_is_passed_by_exactly_one_replica() -> None:
    fleet = TwoReplicas()
    fleet.step()  # the Leases settle
    fleet.load.tokens_per_second = 12_000.0
    for _ in range(3):
        assert fleet.step() == Counter(dict.fromkeys(NAMES, 1))
    owners = {name for (_, name) in fleet.passed}
    assert owners == set(NAMES)
    assert {r for (r, _) in fleet.passed} == {"op-a", "op-b"}  # both hold a shard
    assert all(v > 0 for v in fleet.running().values())


def test_a_killed_replicas_shard_resumes_on_the_other_with_no_scale_down() -> None:
    fleet = TwoReplicas()
    fleet.step()
    fleet.load.tokens_per_second = 30_000.0
    for _ in range(4):
        fleet.step()
    _a, b = fleet.replicas
    b_shard = {name for (r, name) in fleet.passed if r == "op-b"}
    assert b_shard
    before = fleet.running()
    b.alive = False  # killed: no more renewals, no more passes
    fleet.load.tokens_per_second = 3_000.0  # the measured demand drops meanwhile
    passes_before = Counter(name for (r, name) in fleet.passed if r == "op-a")
    # Lease duration (one interval) plus one interval: op-a passes op-b's shard.
    for _ in range(2):
        fleet.step()
        running = fleet.running()
        # op-b's deployments: a new owner starts as after a restart, never down at once.
        assert all(running[n] >= before[n] for n in b_shard)
    taken = Counter(name for (r, name) in fleet.passed if r == "op-a") - passes_before
    assert b_shard <= set(taken)
    assert fleet.step() == Counter(dict.fromkeys(NAMES, 1))


def test_a_non_owned_pass_writes_nothing_and_counts_the_owners_claims() -> None:
    fleet = TwoReplicas()
    fleet.step()
    fleet.load.tokens_per_second = 30_000.0
    fleet.step()
    _a, b = fleet.replicas
    a_shard = {name for (r, name) in fleet.passed if r == "op-a"}
    name = next(iter(a_shard))
    before = dict(fleet.status[name])
    scaled = [list(reg.cluster.scale_calls) for reg in fleet.regions.values()]
    out = owned_pass(
        b.reconciler,
        b.ownership,
        name=name,
        namespace=NS,
        spec=fleet.spec,
        status=fleet.status[name],
        generation=1,
    )
    assert out is None
    assert fleet.status[name] == before
    assert [reg.cluster.scale_calls for reg in fleet.regions.values()] == scaled
    ledger = b.reconciler.ledger
    assert ledger is not None
    held = sum(ledger.held(PoolKey(r, H100)).get(f"{NS}/{name}", 0) for r in PRICES)
    assert held > 0  # counted against op-b's shares as its status says


def _running_per_region(fleet: TwoReplicas) -> dict[str, int]:
    return {r: sum(reg.cluster.replicas(n) for n in NAMES) for r, reg in fleet.regions.items()}


def test_two_replicas_never_hold_more_than_a_region_offers() -> None:
    """Every deployment wants ~30 replicas, the three Regions offer 16 GPUs each: the shards'
    ceilings (reserved in the quota Lease) keep both replicas' plans within each Region."""
    fleet = TwoReplicas()
    fleet.step()
    fleet.load.tokens_per_second = 150_000.0
    for _ in range(8):
        fleet.step()
        for region, running in _running_per_region(fleet).items():
            assert running <= 16, (region, running)
    assert sum(_running_per_region(fleet).values()) >= 40  # the quota is used, not idle


def test_without_ceilings_two_replicas_would_oversubscribe() -> None:
    """The same run with each replica counting the other's deployments only from their
    status (one interval old): both grow into the same free GPUs."""
    fleet = TwoReplicas(quotas=False)
    fleet.step()
    fleet.load.tokens_per_second = 150_000.0
    worst = 0
    for _ in range(8):
        fleet.step()
        worst = max(worst, *_running_per_region(fleet).values())
    assert worst > 16


def test_a_replica_that_joins_late_never_lets_a_region_be_oversubscribed() -> None:
    """A stressed e2e run (200 deployments, two operators) found a Region over its GPUs: the
    first operator planned everything alone for a while; the second then joined, and wrote its
    ceilings before it knew what its new shard held, so the first raised its own into GPUs the
    handed-over deployments still held (us-east 18 of 16 here, for good). What the other
    shards' deployments hold counts as reserved, whatever their stored ceilings say."""
    fleet = TwoReplicas()
    late = fleet.replicas[1]
    late.alive = False
    fleet.load.tokens_per_second = 150_000.0  # every deployment wants more than is offered
    for _ in range(4):
        fleet.step()
    late.alive = True
    seen = []
    for _ in range(10):
        fleet.step()
        seen.append(_running_per_region(fleet))
    assert all(n <= 16 for s in seen for n in s.values()), seen
    assert {r for (r, _) in fleet.passed} == {"op-a", "op-b"}  # both hold a shard
    assert sum(seen[-1].values()) >= 40  # the quota is used, not idle
