"""HTTPRoute weights: integers that sum to the scale, and a patch that changes only our weights."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.world import FakeRoutes
from wattscale.clusters.route_weights import (
    WEIGHT_SCALE,
    backend_name,
    integer_weights,
    plan_route_update,
)

pytestmark = pytest.mark.unit

REGIONS = ["us-west", "us-east", "eu-central"]
OURS = [backend_name("llama", r) for r in REGIONS]


def test_backend_name_is_deployment_dash_region() -> None:
    assert backend_name("llama", "us-west") == "llama-us-west"


def test_all_traffic_to_one_region() -> None:
    assert integer_weights({"us-east": 1.0}, REGIONS) == {
        "us-west": 0,
        "us-east": 1000,
        "eu-central": 0,
    }


def test_thirds_round_by_largest_remainder_to_exactly_the_scale() -> None:
    w = integer_weights(dict.fromkeys(REGIONS, 1 / 3), REGIONS)
    assert sum(w.values()) == WEIGHT_SCALE
    assert sorted(w.values()) == [333, 333, 334]
    assert w["us-west"] == 334  # ties go to the region listed first


def test_no_positive_ratio_gives_all_zero() -> None:
    bad = {"us-west": 0.0, "us-east": -0.5, "eu-central": math.nan}
    assert integer_weights(bad, REGIONS) == dict.fromkeys(REGIONS, 0)
    assert integer_weights({}, REGIONS) == dict.fromkeys(REGIONS, 0)


def test_regions_not_in_the_list_are_ignored() -> None:
    assert integer_weights({"us-west": 0.5, "mars": 0.5}, ["us-west"]) == {"us-west": 1000}


@given(
    st.lists(
        st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=8
    ).filter(lambda xs: sum(xs) > 0)
)
def test_weights_sum_to_the_scale_and_stay_within_one_of_exact(ratios: list[float]) -> None:
    regions = [f"r{i}" for i in range(len(ratios))]
    w = integer_weights(dict(zip(regions, ratios, strict=True)), regions)
    assert sum(w.values()) == WEIGHT_SCALE
    total = sum(ratios)
    for r, x in zip(regions, ratios, strict=True):
        assert abs(w[r] - WEIGHT_SCALE * x / total) < 1.0
        assert 0 <= w[r] <= 1_000_000  # Gateway API's bounds


def _route() -> dict[str, Any]:
    """Two rules (ours and someone else's in the first), filters and matches to keep."""
    return {
        "metadata": {"name": "llm", "namespace": "ml", "resourceVersion": "7"},
        "spec": {
            "parentRefs": [{"name": "gw", "sectionName": "https"}],
            "hostnames": ["llm.example"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                    "filters": [{"type": "RequestHeaderModifier"}],
                    "backendRefs": [
                        {"name": "llama-us-west", "port": 8000, "weight": 1},
                        {"name": "canary", "port": 8000, "weight": 5},
                        {"name": "llama-us-east", "port": 8000},  # no weight: the default, 1
                        {"name": "llama-eu-central", "port": 8000, "weight": 0},
                    ],
                },
                {"backendRefs": [{"name": "static", "port": 80, "weight": 3}]},
            ],
        },
    }


def test_patch_sets_only_our_weights_and_tests_each_name_first() -> None:
    weights = {"llama-us-west": 0, "llama-us-east": 1000, "llama-eu-central": 0}
    update = plan_route_update(_route(), weights)
    assert update.ops == [
        {"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "llama-us-west"},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 0},
        {"op": "test", "path": "/spec/rules/0/backendRefs/2/name", "value": "llama-us-east"},
        {"op": "add", "path": "/spec/rules/0/backendRefs/2/weight", "value": 1000},
    ]
    assert update.matched
    assert update.rules_matched == 1
    assert update.missing == []
    assert update.before == {"llama-us-west": 1, "llama-us-east": 1, "llama-eu-central": 0}
    assert update.changes() == "llama-us-east 1->1000, llama-us-west 1->0"


def test_applied_patch_leaves_the_rest_of_the_route_as_it_was() -> None:
    routes = FakeRoutes()
    routes.routes[("ml", "llm")] = _route()
    weights = {"llama-us-west": 250, "llama-us-east": 750, "llama-eu-central": 0}
    routes.patch("ml", "llm", plan_route_update(_route(), weights).ops)
    after = routes.routes[("ml", "llm")]
    expected = _route()
    refs = expected["spec"]["rules"][0]["backendRefs"]
    refs[0]["weight"], refs[2]["weight"] = 250, 750
    assert after == expected
    assert plan_route_update(after, weights).ops == []  # nothing left to change


def test_every_rule_with_our_backends_gets_the_weights() -> None:
    route = _route()
    route["spec"]["rules"][1]["backendRefs"] += [
        {"name": "llama-us-west", "port": 8000, "weight": 1},
        {"name": "llama-us-east", "port": 8000, "weight": 1},
    ]
    update = plan_route_update(route, {"llama-us-west": 1000, "llama-us-east": 0})
    paths = [op["path"] for op in update.ops if op["op"] != "test"]
    assert paths == [
        "/spec/rules/0/backendRefs/0/weight",
        "/spec/rules/0/backendRefs/2/weight",
        "/spec/rules/1/backendRefs/1/weight",
        "/spec/rules/1/backendRefs/2/weight",
    ]
    assert update.rules_matched == 2


def test_a_rule_lacking_a_backend_that_gets_traffic_is_reported() -> None:
    route = _route()
    del route["spec"]["rules"][0]["backendRefs"][3]  # no llama-eu-central in rule 0
    update = plan_route_update(route, {"llama-us-west": 400, "llama-eu-central": 600})
    assert update.missing == ["rule 0 has no backendRef llama-eu-central (weight 600)"]
    assert update.ops  # the backends that are there still get theirs
    quiet = plan_route_update(route, {"llama-us-west": 1000, "llama-eu-central": 0})
    assert quiet.missing == []  # a backend that would get nothing is not missed


def test_a_route_without_our_backends_does_not_match_and_is_not_patched() -> None:
    route = _route()
    route["spec"]["rules"][0]["backendRefs"] = [{"name": "canary", "port": 8000}]
    update = plan_route_update(route, dict.fromkeys(OURS, 0) | {"llama-us-west": 1000})
    assert not update.matched
    assert update.ops == []
    assert plan_route_update({"spec": {}}, {"llama-us-west": 1000}).ops == []


def test_planning_does_not_modify_the_route_it_reads() -> None:
    route = _route()
    before = copy.deepcopy(route)
    plan_route_update(route, {"llama-us-west": 1000})
    assert route == before
