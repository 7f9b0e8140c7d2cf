"""Shard ownership: a consistent hash over the replicas whose Leases are live and settled, one
leader, and takeover when a Lease expires (the Lease I/O through an in-memory store)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.fakes.leases import FakeLeases
from wattscale.fleet.leases import LEADER_LEASE, Membership
from wattscale.fleet.shards import LeaseRecord, Ownership, ShardView, owner

pytestmark = pytest.mark.unit

KEYS = [f"team-{i % 7}/model-{i}" for i in range(3000)]
DURATION = 30.0
SETTLE = 15.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_every_key_has_one_owner_and_the_shards_are_even() -> None:
    members = ["op-a", "op-b", "op-c"]
    counts = Counter(owner(k, members) for k in KEYS)
    assert set(counts) == set(members)
    assert min(counts.values()) > 0.8 * len(KEYS) / 3
    assert owner("ns/x", []) is None


def test_a_joining_replica_takes_keys_only_for_itself() -> None:
    before = {k: owner(k, ["op-a", "op-b"]) for k in KEYS}
    after = {k: owner(k, ["op-a", "op-b", "op-c"]) for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    assert moved  # the new replica gets a shard ...
    assert all(after[k] == "op-c" for k in moved)  # ... and nothing else moves
    # A replica leaving hands over only its own keys.
    gone = {k: owner(k, ["op-a", "op-c"]) for k in KEYS}
    assert all(gone[k] == after[k] for k in KEYS if after[k] != "op-b")


def _record(holder: str, acquired: float, renewed: float) -> LeaseRecord:
    return LeaseRecord(f"wattscale-shard-{holder}", holder, acquired, renewed, DURATION)


def test_a_replica_owns_nothing_until_its_lease_settles_and_loses_it_at_expiry() -> None:
    a = _record("op-a", 0.0, 100.0)
    b = _record("op-b", 95.0, 100.0)
    view = ShardView("op-b", (a, b), None, SETTLE)
    assert view.members(101.0) == ("op-a",)  # op-b joined 6 s ago: not settled
    assert not any(view.owns(k, 101.0) for k in KEYS[:200])
    assert view.members(111.0) == ("op-a", "op-b")
    assert any(view.owns(k, 111.0) for k in KEYS[:200])
    # Read again at 125 (op-a stopped renewing at 100), judged at the pass's instant: once
    # op-a's Lease has expired, op-b owns every key.
    later = ShardView("op-b", (a, _record("op-b", 95.0, 125.0)), None, SETTLE)
    assert later.members(129.0) == ("op-a", "op-b")
    assert later.members(131.0) == ("op-b",)
    assert all(later.owns(k, 131.0) for k in KEYS[:200])


def test_a_stale_view_never_takes_a_shard_whose_holder_may_have_renewed() -> None:
    # op-b read the Leases at 125 and could not read again (starved of CPU): at 140 op-a's
    # Lease has expired by that read, but op-a may have renewed it since. op-b keeps its
    # own shard (its Lease, renewed at 125, holds to 155) and takes nothing of op-a's.
    a = _record("op-a", 0.0, 100.0)
    stale = ShardView("op-b", (a, _record("op-b", 95.0, 125.0)), None, SETTLE, read_seconds=125.0)
    assert stale.members(140.0) == ("op-a", "op-b")
    mine = {k for k in KEYS if owner(k, ["op-a", "op-b"]) == "op-b"}
    assert {k for k in KEYS if stale.owns(k, 140.0)} == mine
    # Its own Lease is judged at the pass's clock: unrenewed past 155, it passes nothing.
    assert not any(stale.owns(k, 156.0) for k in KEYS)
    # A fresh read (at 131) that shows op-a unrenewed hands op-a's shard over.
    fresh = ShardView("op-b", (a, _record("op-b", 95.0, 131.0)), None, SETTLE, read_seconds=131.0)
    assert all(fresh.owns(k, 132.0) for k in KEYS)


def test_without_sharding_one_replica_owns_everything_and_leads() -> None:
    alone = Ownership("op-a", sharded=False)
    assert alone.owns("ns", "x", 0.0)
    assert alone.is_leader(0.0)
    sharded = Ownership("op-a", sharded=True)
    assert not sharded.owns("ns", "x", 0.0)  # no Lease read yet: owns nothing
    assert not sharded.is_leader(0.0)


def _replica(store: FakeLeases, name: str, clock: Clock) -> tuple[Ownership, Membership]:
    ownership = Ownership(name, sharded=True)
    return ownership, Membership(store, ownership, DURATION, SETTLE, clock)


def _owners(replicas: list[Ownership], now: float) -> Counter[int]:
    """How many replicas own each key (should be exactly one)."""
    ns_name = [k.split("/") for k in KEYS]
    return Counter(sum(r.owns(ns, n, now) for r in replicas) for ns, n in ns_name)


def test_two_replicas_split_the_keys_and_one_leads() -> None:
    store, clock = FakeLeases(), Clock()
    (oa, ma), (ob, mb) = _replica(store, "op-a", clock), _replica(store, "op-b", clock)
    for _ in range(3):  # renewed every 10 s: settled after 15
        ma.renew()
        mb.renew()
        clock.now += 10.0
    assert _owners([oa, ob], clock.now) == Counter({1: len(KEYS)})
    assert oa.is_leader(clock.now) != ob.is_leader(clock.now)
    assert store.get(LEADER_LEASE) is not None


def test_a_dead_replicas_shard_is_taken_over_within_one_lease_duration() -> None:
    store, clock = FakeLeases(), Clock()
    (oa, ma), (_ob, mb) = _replica(store, "op-a", clock), _replica(store, "op-b", clock)
    for _ in range(3):
        ma.renew()
        mb.renew()
        clock.now += 10.0
    leader_a = oa.is_leader(clock.now)
    died = clock.now
    # op-b stops renewing (killed): op-a renews on, every 10 s.
    while clock.now < died + DURATION + 10.0:
        ma.renew()
        clock.now += 10.0
    assert all(oa.owns(*k.split("/"), clock.now) for k in KEYS)
    assert oa.is_leader(clock.now)
    assert leader_a or store.get(LEADER_LEASE).holder == "op-a"  # type: ignore[union-attr]


def test_a_replica_released_on_shutdown_hands_over_at_once() -> None:
    store, clock = FakeLeases(), Clock()
    (oa, ma), (_ob, mb) = _replica(store, "op-a", clock), _replica(store, "op-b", clock)
    for _ in range(3):
        ma.renew()
        mb.renew()
        clock.now += 10.0
    mb.release()
    ma.renew()
    assert all(oa.owns(*k.split("/"), clock.now) for k in KEYS)
    assert oa.is_leader(clock.now)


def test_a_replica_that_cannot_renew_stops_owning_when_its_lease_expires() -> None:
    store, clock = FakeLeases(), Clock()
    oa, ma = _replica(store, "op-a", clock)
    for _ in range(3):
        ma.renew()
        clock.now += 10.0
    assert oa.owns("ns", "x", clock.now)
    store.refuse = True
    assert ma.renew() is None
    clock.now += DURATION
    assert not oa.owns("ns", "x", clock.now)  # another replica may own it by now
    assert not oa.is_leader(clock.now)
    # Back: its Lease starts over and settles again before it owns anything.
    store.refuse = False
    ma.renew()
    assert not oa.owns("ns", "x", clock.now)
    clock.now += SETTLE
    ma.renew()
    assert oa.owns("ns", "x", clock.now)


def test_only_one_of_two_replicas_takes_an_expired_leader_lease() -> None:
    store, clock = FakeLeases(), Clock()
    (oa, ma), (ob, mb) = _replica(store, "op-a", clock), _replica(store, "op-b", clock)
    ma.renew()
    mb.renew()
    clock.now += DURATION + 1.0  # the leader (op-a) stalls; both renew again
    mb.renew()
    ma.renew()
    assert [oa.is_leader(clock.now), ob.is_leader(clock.now)].count(True) == 1


def test_a_predicate_judges_like_the_view_and_follows_membership() -> None:
    ownership = Ownership("op-a", sharded=True)
    two = (_record("op-a", 0.0, 100.0), _record("op-b", 0.0, 100.0))
    ownership.update(ShardView("op-a", two, None, SETTLE))
    view = ownership.view()
    assert view is not None
    mine = ownership.predicate(110.0)
    assert all(mine(k) == view.owns(k, 110.0) for k in KEYS)
    assert not all(mine(k) for k in KEYS)
    # op-b's Lease expires: the same replica's next predicate owns every key.
    assert not any(ownership.predicate(131.0)(k) for k in KEYS)  # its own Lease expired too
    ownership.update(ShardView("op-a", (_record("op-a", 0.0, 125.0), two[1]), None, SETTLE))
    assert all(ownership.predicate(131.0)(k) for k in KEYS)


def test_a_view_older_than_the_settle_time_owns_nothing() -> None:
    # op-a read the Leases at 100, before op-b took its Lease at 101 (op-a's next read is late:
    # a busy machine). op-b settles at 116 and passes its shard from then on; op-a's view,
    # which cannot show op-b, must not be used past 115, or both pass op-b's shard.
    a = _record("op-a", 0.0, 100.0)
    stale = ShardView("op-a", (a,), None, SETTLE, read_seconds=100.0)
    assert all(stale.owns(k, 114.0) for k in KEYS[:200])
    joined = ShardView("op-b", (a, _record("op-b", 101.0, 116.0)), None, SETTLE, read_seconds=116.0)
    assert any(joined.owns(k, 116.0) for k in KEYS[:200])
    assert stale.members(116.0) == ()
    assert not any(stale.owns(k, 116.0) for k in KEYS[:200])
