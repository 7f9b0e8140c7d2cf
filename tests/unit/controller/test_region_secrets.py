"""A Region's kubeconfig Secret: refused fields make it Reachable=False by name; a Secret created
after the Region, or rotated, takes effect at the next health check (no restart, no Region edit).

The Secrets live in a dict standing for the hub's Secrets API; the member cluster is a loopback
API server that records the token every request carries (tests/fakes/apiserver.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.cases.malformed import example
from tests.fakes.apiserver import FakeApiServer
from wattscale.api.sources import SecretKeyRef
from wattscale.controller.region_health import RegionHealthLoop
from wattscale.fleet.regions import RegionDirectory, default_cluster_factory
from wattscale.telemetry.metrics import OperatorMetrics

pytestmark = pytest.mark.unit

REF = {"namespace": "wattscale-system", "name": "region-us-east-kubeconfig", "key": "kubeconfig"}
SPEC = {
    "clusterRef": {"kubeconfigSecretRef": REF},
    "gpus": example("Region")["spec"]["gpus"],
}


class Secrets:
    """The hub's Secrets: ``store[(namespace, name)] = {key: value}``; a miss raises as the API."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, str]] = {}

    def __call__(self, ref: SecretKeyRef) -> str:
        data = self.store.get((ref.namespace or "wattscale-system", ref.name))
        if data is None:
            raise LookupError(f"Secret {ref.name} not found")
        return data[ref.key]

    def put(self, text: str) -> None:
        self.store[(REF["namespace"], REF["name"])] = {REF["key"]: text}


class Writer:
    def __init__(self) -> None:
        self.written: dict[str, dict[str, Any]] = {}

    def __call__(self, name: str, status: dict[str, Any]) -> bool:
        self.written[name] = status
        return True

    def reachable(self, name: str) -> dict[str, Any]:
        return next(c for c in self.written[name]["conditions"] if c["type"] == "Reachable")


def _world() -> tuple[Secrets, RegionDirectory, RegionHealthLoop, Writer]:
    secrets = Secrets()

    def no_hub() -> Any:
        raise AssertionError("a Region with a clusterRef never uses the hub")

    directory = RegionDirectory(secrets, default_cluster_factory(no_hub))
    writer = Writer()
    loop = RegionHealthLoop(
        directory, writer, OperatorMetrics(), 30.0, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)
    )
    return secrets, directory, loop, writer


@pytest.fixture
def api() -> Any:
    with FakeApiServer() as server:
        yield server


def test_a_refused_kubeconfig_makes_the_region_unreachable_naming_the_field(
    api: FakeApiServer,
) -> None:
    secrets, directory, loop, writer = _world()
    secrets.put(api.kubeconfig({"exec": {"command": "/bin/sh", "args": ["-c", "id"]}}))
    directory.upsert("us-east", 1, SPEC)
    loop.check("us-east")
    reachable = writer.reachable("us-east")
    assert reachable["status"] == "False"
    assert "users[u].user.exec is refused" in reachable["message"]
    assert writer.written["us-east"]["reachable"] is False
    assert api.requests == []


def test_a_region_created_before_its_secret_heals_at_the_next_check(api: FakeApiServer) -> None:
    secrets, directory, loop, writer = _world()
    directory.upsert("us-east", 1, SPEC)
    loop.check("us-east")
    assert writer.reachable("us-east")["status"] == "False"
    assert "cannot read the kubeconfig Secret" in writer.reachable("us-east")["message"]

    secrets.put(api.kubeconfig({"token": "first"}))
    loop.check("us-east")  # one interval later, same Region generation
    assert writer.reachable("us-east")["status"] == "True"
    assert api.requests[-1][1] == "Bearer first"


def test_a_rotated_token_is_used_from_the_next_check_on(api: FakeApiServer) -> None:
    secrets, directory, loop, writer = _world()
    secrets.put(api.kubeconfig({"token": "first"}))
    directory.upsert("us-east", 1, SPEC)
    loop.check("us-east")
    before = directory.get("us-east")
    loop.check("us-east")
    assert directory.get("us-east") is before, "an unchanged Secret must not rebuild the clients"
    assert {auth for _, auth in api.requests} == {"Bearer first"}

    secrets.put(api.kubeconfig({"token": "second"}))
    api.requests.clear()
    loop.check("us-east")
    assert api.requests == [("/version/", "Bearer second")]
    assert writer.reachable("us-east")["status"] == "True"


def test_a_deleted_secret_is_noticed_too(api: FakeApiServer) -> None:
    secrets, directory, loop, writer = _world()
    secrets.put(api.kubeconfig({"token": "first"}))
    directory.upsert("us-east", 1, SPEC)
    loop.check("us-east")
    secrets.store.clear()
    loop.check("us-east")
    assert writer.reachable("us-east")["status"] == "False"
