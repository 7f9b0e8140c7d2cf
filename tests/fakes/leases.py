"""An in-memory LeaseStore: the hub's coordination.k8s.io Leases with resourceVersion checks."""

from __future__ import annotations

from dataclasses import replace

from wattscale.fleet.leases import LeaseConflictError, LeaseObject


class FakeLeases:
    """Leases by name, each with its labels; a write with a stale resourceVersion conflicts."""

    def __init__(self) -> None:
        self.leases: dict[str, tuple[LeaseObject, dict[str, str]]] = {}
        self._version = 0
        self.writes = 0
        self.refuse = False
        """When set, every call fails as an unreachable hub would."""

    def _check(self) -> None:
        if self.refuse:
            raise ConnectionError("hub unreachable")

    def _next(self) -> str:
        self._version += 1
        return str(self._version)

    def get(self, name: str) -> LeaseObject | None:
        self._check()
        found = self.leases.get(name)
        return None if found is None else found[0]

    def create(self, lease: LeaseObject, labels: dict[str, str]) -> None:
        self._check()
        if lease.name in self.leases:
            raise LeaseConflictError(lease.name)
        self.writes += 1
        self.leases[lease.name] = (replace(lease, resource_version=self._next()), dict(labels))

    def replace(self, lease: LeaseObject, labels: dict[str, str]) -> None:
        self._check()
        live = self.leases.get(lease.name)
        if live is None or live[0].resource_version != lease.resource_version:
            raise LeaseConflictError(lease.name)
        self.writes += 1
        self.leases[lease.name] = (replace(lease, resource_version=self._next()), dict(labels))

    def list(self, label: str) -> list[LeaseObject]:
        self._check()
        return [lease for lease, labels in self.leases.values() if label in labels]

    def delete(self, name: str) -> None:
        self._check()
        self.leases.pop(name, None)
