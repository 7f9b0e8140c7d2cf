"""kopf keeps a handler's progress (a retry, a delay) in an annotation named after the
handler's id: every id must make a valid annotation name, or the first retry fails with 422.

Found by a stressed e2e run: after build_registry was split into helpers, kopf's default ids
became ``_register_deployments.<locals>.cleanup``; a sharded replica's cleanup that raised
TemporaryError ("another operator replica owns it") could not store its retry
(``wattscale.io/_register_deployments._locals_.cleanup``: a name must start with a letter or
digit), so deleting InferenceDeployments hung and their workloads stayed in the members.
"""

from __future__ import annotations

import re

import kopf
import pytest

from tests.fakes.leases import FakeLeases
from wattscale.controller.handlers import ANNOTATION_PREFIX, build_registry
from wattscale.controller.settings import Settings
from wattscale.fleet.regions import RegionDirectory, default_cluster_factory

pytestmark = pytest.mark.unit

QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
"""Kubernetes' rule for an annotation's name part (at most 63 characters)."""


def _resource_handler_ids(registry: kopf.OperatorRegistry) -> list[str]:
    handlers = [*registry._changing.get_all_handlers(), *registry._spawning.get_all_handlers()]
    return [str(h.id) for h in handlers]


@pytest.mark.parametrize("sharding", [False, True])
def test_every_handler_id_makes_a_valid_progress_annotation(sharding: bool) -> None:
    # No hub: no Secrets to read, no cluster to reach (the handlers are only registered).
    directory = RegionDirectory(lambda *_: None, default_cluster_factory(lambda: None))  # type: ignore[arg-type,return-value]
    registry, _ = build_registry(
        Settings(interval_seconds=30, sharding=sharding), directory, leases=FakeLeases()
    )
    ids = _resource_handler_ids(registry)
    assert len(ids) >= 4, ids  # reconcile, cleanup, the Region's changes and deletion
    storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    for handler_id in ids:
        for key in storage.make_keys(handler_id):
            name = key.split("/", 1)[1]
            assert len(name) <= 63, (handler_id, key)
            assert QUALIFIED_NAME.match(name), (handler_id, key)
    # Explicit ids, so that moving a handler between functions never renames its annotations.
    assert {"reconcile", "cleanup", "region-changed", "region-deleted"} <= set(ids), ids
