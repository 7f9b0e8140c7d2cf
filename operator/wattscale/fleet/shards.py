"""Which operator replica owns which InferenceDeployment, and which replica leads (no I/O).

Several operator replicas share the fleet: each owns a shard of the InferenceDeployments, by
rendezvous (highest-random-weight) hashing of ``namespace/name`` over the live replicas, a
consistent hash: when a replica joins or leaves, only the deployments it gains or held move.

Membership comes from one coordination.k8s.io Lease per replica (:mod:`.leases` reads and
renews them; this module only judges what was read, so the I/O stays out of the decisions):

* a replica is *live* while its Lease's ``renewTime + leaseDurationSeconds`` is in the future;
* it *counts* for the hash only once its Lease has been held for ``settle_seconds`` (its
  ``acquireTime``), and a replica whose last read of the Leases is older than that owns
  nothing: so a view that predates a joining replica's Lease is never used once that replica
  may have settled, and every replica moves its deployments over at about the same instant,
  never two owners (a replica starved of CPU past its renewal only pauses its passes);
* the leader holds the leader Lease (the same expiry rule); it alone runs the fleet-wide parts.

Every replica judges its own Lease and the settling of new ones with the clock of the pass, so a
joining replica's deployments move at the same instant on every replica, and a replica that
cannot renew stops passing its shard on time; it judges the *expiry* of another replica's Lease
as of its last read (:attr:`ShardView.read_seconds`), so a stale view never takes a shard
whose holder may have renewed meanwhile (two owners), only a fresh read that shows it unrenewed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseRecord:
    """What one Lease said when it was read (times in epoch seconds; None when absent)."""

    name: str
    holder: str | None
    acquired_seconds: float | None
    renewed_seconds: float | None
    duration_seconds: float

    def live(self, now_s: float) -> bool:
        """Whether the holder still holds it at ``now_s``."""
        if not self.holder or self.renewed_seconds is None:
            return False
        return now_s < self.renewed_seconds + self.duration_seconds

    def settled(self, now_s: float, settle_seconds: float, live_at_s: float | None = None) -> bool:
        """Held for ``settle_seconds`` at ``now_s``, and live at ``live_at_s`` (default: now)."""
        since = self.acquired_seconds if self.acquired_seconds is not None else self.renewed_seconds
        live = self.live(now_s if live_at_s is None else live_at_s)
        return live and since is not None and now_s - since >= settle_seconds


def _weight(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, members: Iterable[str]) -> str | None:
    """The member that owns ``key``: the highest weight (ties by name); None without members."""
    best: tuple[int, str] | None = None
    for member in members:
        cand = (_weight(member, key), member)
        if best is None or cand > best:
            best = cand
    return None if best is None else best[1]


def deployment_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class ShardView:
    """The shard Leases and the leader Lease as last read, judged at any instant."""

    identity: str
    shards: tuple[LeaseRecord, ...]
    leader: LeaseRecord | None
    settle_seconds: float
    read_seconds: float | None = None
    """When the Leases were read (None: judge everything at the pass's clock). Another
    replica's Lease expires in this view no later than it had at that instant: a view this
    replica could not refresh (starved of CPU, cut off from the hub) must not expire Leases
    their holders may have renewed since, or it takes their shards while they still pass
    them. The next read that shows the Lease unrenewed takes them over. This replica's own
    Lease is judged at the pass's clock: one it cannot renew loses its shard on time."""

    def members(self, now_s: float) -> tuple[str, ...]:
        """The replicas the hash spreads the deployments over at ``now_s`` (sorted); none
        when the view is older than ``settle_seconds``: a replica that joined after the read
        may have settled since, unseen, and taken its shard (two owners)."""
        if self.read_seconds is not None and now_s - self.read_seconds > self.settle_seconds:
            return ()
        seen = now_s if self.read_seconds is None else min(now_s, self.read_seconds)
        found = {
            r.holder
            for r in self.shards
            if r.holder
            and r.settled(now_s, self.settle_seconds, now_s if r.holder == self.identity else seen)
        }
        return tuple(sorted(found))

    def owns(self, key: str, now_s: float) -> bool:
        """Whether this replica owns ``key`` at ``now_s``.

        While this replica's own Lease is not settled (just started, or it could not renew)
        it owns nothing: another replica may still hold its shard."""
        members = self.members(now_s)
        return self.identity in members and owner(key, members) == self.identity

    def is_leader(self, now_s: float) -> bool:
        return (
            self.leader is not None
            and self.leader.holder == self.identity
            and self.leader.live(now_s)
        )


class Ownership:
    """The current :class:`ShardView`, swapped atomically when the Leases are read again.

    Without sharding (one replica) every deployment is owned and this replica leads."""

    def __init__(self, identity: str, sharded: bool) -> None:
        self.identity = identity
        self.sharded = sharded
        self._view: ShardView | None = None
        self._lock = threading.Lock()
        self._owners: tuple[tuple[str, ...], dict[str, str | None]] = ((), {})
        """Each key's owner among the members it was computed for (hashing is not free)."""

    def update(self, view: ShardView) -> None:
        with self._lock:
            self._view = view

    def view(self) -> ShardView | None:
        with self._lock:
            return self._view

    def owns(self, namespace: str, name: str, now_s: float) -> bool:
        return self.owns_key(deployment_key(namespace, name), now_s)

    def owns_key(self, key: str, now_s: float) -> bool:
        """Whether this replica owns the deployment ``namespace/name``."""
        return self.predicate(now_s)(key)

    def predicate(self, now_s: float) -> Callable[[str], bool]:
        """Whether this replica owns a key, judged for many keys at one instant: the members
        are worked out once, each key's owner hashed once per membership."""
        if not self.sharded:
            return lambda key: True
        view = self.view()
        members = () if view is None else view.members(now_s)
        if self.identity not in members:
            return lambda key: False
        cached, owners = self._owners
        if cached != members:
            owners = {}
            self._owners = (members, owners)
        me = self.identity

        def owns(key: str) -> bool:
            found = owners.get(key)
            if found is None:
                found = owners[key] = owner(key, members)
            return found == me

        return owns

    def is_leader(self, now_s: float) -> bool:
        if not self.sharded:
            return True
        view = self.view()
        return view is not None and view.is_leader(now_s)

    def members(self, now_s: float) -> Sequence[str]:
        if not self.sharded:
            return (self.identity,)
        view = self.view()
        return () if view is None else view.members(now_s)
