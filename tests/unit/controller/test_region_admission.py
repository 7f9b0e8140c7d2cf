"""What a Region's owner decides, and what belongs to someone else, as one pass sees it.

- ``spec.workloads.allowedNamespaces``: a namespace not admitted gets no replicas there;
- a named model cache a region does not offer keeps the deployment out of that region;
- a Deployment holding our workload's name that another owner made is never adopted, scaled or
  deleted: the region is left alone and the ``Conflict`` condition says why;
- the namespaces the operator creates carry the Region's Pod Security level.

In-memory regions (tests/fakes/world.py) and the real Reconciler.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.controller.test_reconcile import NAME, NS, Harness
from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.api.region import RegionWorkloads
from wattscale.clusters.render import render_deployment, workload_name

pytestmark = pytest.mark.unit


def _workloads(h: Harness, region: str, **fields: Any) -> None:
    runtime = h.directory.get(region)
    assert runtime is not None
    assert runtime.spec is not None
    runtime.spec = runtime.spec.model_copy(update={"workloads": RegionWorkloads(**fields)})


def _conditions(h: Harness) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in h.status["conditions"]}


def test_a_region_that_does_not_admit_the_namespace_gets_no_replicas() -> None:
    h = Harness()
    _workloads(h, "us-east", allowedNamespaces=["team-b"])  # the cheapest region
    h.serve(30_000)
    assert h.regions["us-east"].cluster.replicas(NAME) == 0
    assert h.regions["us-east"].cluster.applied == []
    assert sum(h.regions[r].cluster.replicas(NAME) for r in ("us-west", "eu-central")) > 0
    degraded = _conditions(h)["Degraded"]
    assert "region us-east does not admit namespace ml-serving" in degraded["message"]


def test_an_admitted_namespace_is_placed_as_before() -> None:
    h = Harness()
    _workloads(h, "us-east", allowedNamespaces=[NS])
    h.serve(30_000)
    assert h.regions["us-east"].cluster.replicas(NAME) > 0


def test_a_named_cache_keeps_the_deployment_where_it_is_offered() -> None:
    h = Harness(engine__modelCache={"name": "nvme"})
    _workloads(h, "us-west", modelCaches=[{"name": "nvme", "persistentVolumeClaim": "hf-cache"}])
    h.serve(30_000)
    assert h.regions["us-west"].cluster.replicas(NAME) > 0
    for region in ("us-east", "eu-central"):
        assert h.regions[region].cluster.replicas(NAME) == 0
    deployment = h.regions["us-west"].cluster.deployments[(NS, workload_name(NAME))]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "hf-cache"
    assert "offers no model cache named nvme" in _conditions(h)["Degraded"]["message"]


def test_a_foreign_deployment_with_our_name_is_never_adopted_scaled_or_deleted() -> None:
    h = Harness()
    cluster = h.regions["us-east"].cluster
    spec = InferenceDeploymentSpec.model_validate(h.spec)
    theirs = render_deployment(name="other", namespace=NS, region="us-east", spec=spec)
    theirs["metadata"]["name"] = workload_name(NAME)
    theirs["metadata"]["annotations"] = {"team": "b"}  # no wattscale owner annotation
    theirs["spec"]["replicas"] = 7
    cluster.deployments[(NS, workload_name(NAME))] = copy.deepcopy(theirs)
    h.serve(30_000)
    assert cluster.deployments[(NS, workload_name(NAME))] == theirs, "changed"
    assert cluster.scale_calls == []
    conflict = _conditions(h)["Conflict"]
    assert conflict["status"] == "True"
    assert (
        f"Deployment {NS}/{workload_name(NAME)} exists and was not created" in conflict["message"]
    )
    assert sum(h.regions[r].cluster.replicas(NAME) for r in ("us-west", "eu-central")) > 0
    assert cluster.delete_workload(workload_name(NAME), NS, f"{NS}/{NAME}") is True
    assert (NS, workload_name(NAME)) in cluster.deployments, "deleted"


def test_no_conflict_is_reported_when_everything_is_ours() -> None:
    h = Harness()
    h.serve(30_000)
    assert _conditions(h)["Conflict"]["status"] == "False"


def test_created_namespaces_carry_the_regions_pod_security_level() -> None:
    h = Harness()
    _workloads(h, "us-east", podSecurity="baseline")
    h.serve(30_000)
    assert h.regions["us-east"].cluster.namespaces == {NS: "baseline"}
    assert set(h.regions["us-west"].cluster.namespaces.values()) <= {"restricted"}
