"""Shard membership through coordination.k8s.io Leases on the hub: the I/O side.

Each operator replica holds one Lease, ``wattscale-shard-<identity>``, renewed every round;
one more Lease, ``wattscale-leader``, names the replica that runs the fleet-wide parts. A
round (:meth:`Membership.renew`) renews this replica's Lease, takes the leader Lease when it
has expired (an optimistic replace: of two replicas trying, one wins), lists every shard Lease,
and hands what it read to :class:`~wattscale.fleet.shards.Ownership`. What the Leases mean is
judged in :mod:`.shards`; this module only reads and writes them, through a small
:class:`LeaseStore` so the tests use a fake.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from wattscale.fleet.shards import LeaseRecord, Ownership, ShardView
from wattscale.fleet.shares import Ceilings, decode, encode, next_ceilings, without_expired
from wattscale.planner import PoolKey

log = logging.getLogger(__name__)

SHARD_LABEL = "wattscale.io/shard"
LEADER_LEASE = "wattscale-leader"
QUOTA_LEASE = "wattscale-quota"
"""Holds every replica's quota ceilings (an annotation), rewritten with optimistic replaces."""
CEILINGS_ANNOTATION = "wattscale.io/ceilings"


@dataclass(frozen=True)
class LeaseObject:
    """The fields of a Lease this module uses (times in epoch seconds)."""

    name: str
    holder: str | None
    acquired_seconds: float | None
    renewed_seconds: float | None
    duration_seconds: float
    resource_version: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def record(self) -> LeaseRecord:
        return LeaseRecord(
            self.name,
            self.holder,
            self.acquired_seconds,
            self.renewed_seconds,
            self.duration_seconds,
        )


class LeaseConflictError(Exception):
    """Someone else wrote the Lease since it was read (or created it first)."""


class LeaseStore(Protocol):
    """Leases in one namespace of the hub."""

    def get(self, name: str) -> LeaseObject | None: ...

    def create(self, lease: LeaseObject, labels: dict[str, str]) -> None:
        """Raises :class:`LeaseConflictError` when it exists already."""

    def replace(self, lease: LeaseObject, labels: dict[str, str]) -> None:
        """Raises :class:`LeaseConflictError` when ``resource_version`` is not the live one."""

    def list(self, label: str) -> list[LeaseObject]: ...

    def delete(self, name: str) -> None: ...


def shard_lease_name(identity: str) -> str:
    """A DNS-1123 name for this replica's Lease (pod names already are)."""
    safe = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")[:200] or "replica"
    return f"wattscale-shard-{safe}"


class Membership:
    """Renews this replica's Leases and keeps :class:`Ownership` up to date."""

    def __init__(
        self,
        store: LeaseStore,
        ownership: Ownership,
        duration_seconds: float,
        settle_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.ownership = ownership
        self.identity = ownership.identity
        self.duration_seconds = duration_seconds
        self.settle_seconds = settle_seconds
        self.clock = clock
        self.name = shard_lease_name(self.identity)
        self.ceilings: CeilingKeeper | None = None
        """Set when several replicas share Region quotas: re-reserved every round."""

    def renew(self) -> ShardView | None:
        """One round; None (the last view kept, expiring on its own) when the hub refused."""
        now = self.clock()
        try:
            self._renew_own(now)
            leader = self._renew_leader(now)
            shards = [lease.record() for lease in self.store.list(SHARD_LABEL)]
        except Exception as err:  # the last view expires by itself: never two owners for long
            log.warning("shard leases: could not renew or read: %s", err)
            return None
        view = ShardView(self.identity, tuple(shards), leader, self.settle_seconds, now)
        self.ownership.update(view)
        if self.ceilings is not None:
            try:
                self.ceilings.round(view, now)
            except Exception as err:  # the last accepted ceilings stay in force
                log.warning("quota ceilings: could not update: %s", err)
        return view

    def _renew_own(self, now: float) -> None:
        lease = self.store.get(self.name)
        if lease is None:
            self.store.create(
                LeaseObject(self.name, self.identity, now, now, self.duration_seconds),
                {SHARD_LABEL: "true"},
            )
            return
        mine = lease.holder == self.identity and lease.record().live(now)
        # A Lease that expired (or another holder's) starts over: it settles again before
        # this replica owns anything, as others may have taken its shard meanwhile.
        acquired = lease.acquired_seconds if mine else now
        self.store.replace(
            replace(
                lease,
                holder=self.identity,
                acquired_seconds=acquired,
                renewed_seconds=now,
                duration_seconds=self.duration_seconds,
            ),
            {SHARD_LABEL: "true"},
        )

    def _renew_leader(self, now: float) -> LeaseRecord | None:
        lease = self.store.get(LEADER_LEASE)
        try:
            if lease is None:
                lease = LeaseObject(LEADER_LEASE, self.identity, now, now, self.duration_seconds)
                self.store.create(lease, {})
                return lease.record()
            if lease.holder == self.identity or not lease.record().live(now):
                taken = lease.holder != self.identity
                lease = replace(
                    lease,
                    holder=self.identity,
                    acquired_seconds=now if taken else lease.acquired_seconds,
                    renewed_seconds=now,
                    duration_seconds=self.duration_seconds,
                )
                self.store.replace(lease, {})
                if taken:
                    log.info("leader Lease taken: this replica runs the fleet-wide parts")
        except LeaseConflictError:
            lease = self.store.get(LEADER_LEASE)  # another replica won it
        return None if lease is None else lease.record()

    def release(self) -> None:
        """On shutdown: drop this replica's Lease (and leadership), so others take over now."""
        try:
            self.store.delete(self.name)
            lease = self.store.get(LEADER_LEASE)
            if lease is not None and lease.holder == self.identity:
                self.store.replace(replace(lease, holder=None, renewed_seconds=None), {})
        except Exception as err:  # expiry does the same, one Lease duration later
            log.warning("shard leases: could not release: %s", err)


Usage = Callable[
    [], tuple[dict[PoolKey, int], dict[PoolKey, int], dict[PoolKey, int], dict[PoolKey, int]]
]
"""Per pool: the quota, what this replica's shard holds and was refused, and what the other
shards' deployments hold (GPUs)."""


class CeilingKeeper:
    """This replica's quota ceilings (:mod:`.shares`), reserved in the quota Lease.

    Every round: read every replica's ceilings, drop those of expired replicas (the leader
    only), compute this replica's, and write them with an optimistic replace, so that no two
    replicas reserve the same GPUs. A raised ceiling is used only once the write is accepted;
    until this replica's first accepted write its shard does not grow (``ceiling`` None)."""

    def __init__(self, store: LeaseStore, identity: str, usage: Usage) -> None:
        self.store = store
        self.identity = identity
        self.usage = usage
        self._mine: dict[PoolKey, int] | None = None
        self._lock = threading.Lock()

    def ceiling(self, key: PoolKey) -> int | None:
        with self._lock:
            return None if self._mine is None else self._mine.get(key)

    def _set(self, mine: dict[PoolKey, int] | None) -> None:
        with self._lock:
            self._mine = mine

    def round(self, view: ShardView, now: float) -> None:
        lease = self.store.get(QUOTA_LEASE)
        if lease is None:
            with contextlib.suppress(LeaseConflictError):
                self.store.create(LeaseObject(QUOTA_LEASE, None, None, None, 0.0), {})
            return  # next round
        stored = decode(lease.annotations.get(CEILINGS_ANNOTATION))
        ceilings: Ceilings = stored
        if view.is_leader(now):
            live = [r.holder for r in view.shards if r.holder and r.live(now)]
            ceilings = without_expired(stored, [*live, self.identity])
        quota, held, refused, others_held = self.usage()
        members = view.members(now)
        mine = next_ceilings(self.identity, quota, ceilings, held, refused, members, others_held)
        wanted = {**ceilings, self.identity: mine}
        if wanted == stored:
            self._set(mine)
            return
        # Lower at once, raise only once accepted.
        before = stored.get(self.identity)
        if before is not None:
            self._set({k: min(g, before.get(k, g)) for k, g in mine.items()})
        annotations = {**lease.annotations, CEILINGS_ANNOTATION: encode(wanted)}
        try:
            self.store.replace(replace(lease, annotations=annotations), {})
        except LeaseConflictError:
            self._set(before)
            return
        self._set(mine)


def _micro(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class HubLeases:
    """:class:`LeaseStore` over the Kubernetes API (coordination.k8s.io/v1) in one namespace."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace = namespace

    @staticmethod
    def _lease(item: Any) -> LeaseObject:
        spec = item.spec
        return LeaseObject(
            name=item.metadata.name,
            holder=spec.holder_identity if spec else None,
            acquired_seconds=_seconds(spec.acquire_time) if spec else None,
            renewed_seconds=_seconds(spec.renew_time) if spec else None,
            duration_seconds=float((spec.lease_duration_seconds if spec else None) or 0),
            resource_version=item.metadata.resource_version,
            annotations=dict(item.metadata.annotations or {}),
        )

    def _body(self, lease: LeaseObject, labels: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": lease.name, "namespace": self.namespace}
        if labels:
            meta["labels"] = labels
        if lease.annotations:
            meta["annotations"] = dict(lease.annotations)
        if lease.resource_version:
            meta["resourceVersion"] = lease.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": lease.holder,
                "leaseDurationSeconds": max(1, round(lease.duration_seconds)),
                "acquireTime": _micro(lease.acquired_seconds),
                "renewTime": _micro(lease.renewed_seconds),
            },
        }

    def get(self, name: str) -> LeaseObject | None:
        try:
            item = self.api.read_namespaced_lease(name, self.namespace, _request_timeout=10)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return self._lease(item)

    def create(self, lease: LeaseObject, labels: dict[str, str]) -> None:
        try:
            self.api.create_namespaced_lease(
                self.namespace, cast(Any, self._body(lease, labels)), _request_timeout=10
            )
        except ApiException as err:
            if err.status == 409:
                raise LeaseConflictError(lease.name) from err
            raise

    def replace(self, lease: LeaseObject, labels: dict[str, str]) -> None:
        try:
            self.api.replace_namespaced_lease(
                lease.name,
                self.namespace,
                cast(Any, self._body(lease, labels)),
                _request_timeout=10,
            )
        except ApiException as err:
            if err.status == 409:
                raise LeaseConflictError(lease.name) from err
            raise

    def list(self, label: str) -> list[LeaseObject]:
        found = self.api.list_namespaced_lease(
            self.namespace, label_selector=label, _request_timeout=10
        )
        return [self._lease(item) for item in found.items]

    def delete(self, name: str) -> None:
        try:
            self.api.delete_namespaced_lease(name, self.namespace, _request_timeout=10)
        except ApiException as err:
            if err.status != 404:
                raise
