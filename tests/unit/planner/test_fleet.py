"""Deployments sharing a Region's GPU quota and grid-event cap (planner/fleet.py)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from tests.unit.planner.planner_builders import CAP, pool, region, request
from wattscale.planner import GridEvent, PoolKey
from wattscale.planner.fleet import Claim, FleetMember, plan_fleet, share

pytestmark = pytest.mark.unit

EAST = PoolKey("us-east", "H100")


def _member(
    name: str, demand: float, quota: int = 16, priority: int = 0, **kw: object
) -> FleetMember:
    req = request(
        region("us-east", 0.05, pool(quota=quota)),
        region("us-west", 0.30, pool(quota=quota)),
        demand=demand,
        **kw,
    )
    return FleetMember(name, req, priority=priority)


def test_two_deployments_never_plan_more_than_the_region_holds() -> None:
    # Each alone would put 14 and 12 replicas in the cheap region (the 14 + 12 of 16).
    a = _member("team-a/llama", 14 * CAP / 1.2)
    b = _member("team-b/qwen", 12 * CAP / 1.2)
    fleet = plan_fleet([a, b])
    east = sum(d.target.get(EAST, 0) for d in fleet.decisions.values())
    assert east <= 16
    assert sum(fleet.held[EAST].values()) <= 16
    # Both are served: what the cheap region cannot hold goes to the dear one.
    for m in (a, b):
        d = fleet.decisions[m.name]
        assert sum(d.target.values()) * CAP >= m.request.demand_tokens_per_second[0] * 1.2 - 1e-6


def test_who_yields_is_named_when_the_quota_binds_everywhere() -> None:
    a = _member("team-a/llama", 14 * CAP / 1.2, quota=8)
    b = _member("team-b/qwen", 12 * CAP / 1.2, quota=8)
    fleet = plan_fleet([a, b])
    totals = {k: sum(v.values()) for k, v in fleet.held.items()}
    assert all(t <= 8 for t in totals.values()), totals
    loser = fleet.decisions["team-b/qwen"]
    assert loser.explanation.binding_constraint == "quota"
    assert "team-a/llama" in fleet.notes["team-b/qwen"]


def test_higher_priority_is_served_first() -> None:
    low = _member("a/low", 12 * CAP / 1.2, quota=8)
    high = _member("z/high", 12 * CAP / 1.2, quota=8, priority=10)
    fleet = plan_fleet([low, high])
    assert fleet.decisions["z/high"].explanation.binding_constraint != "quota"
    assert sum(fleet.decisions["z/high"].target.values()) == 12
    assert fleet.decisions["a/low"].explanation.binding_constraint == "quota"
    assert "z/high" in fleet.notes["a/low"]


def test_a_demand_response_cap_is_shared_by_the_region() -> None:
    # A 50 % cut of a 16-GPU region: 8 GPUs for everyone together, not 8 each.
    event = GridEvent(max_replicas=8, ends_in_seconds=3600.0, name="dr-1")
    members = []
    for i in range(3):
        m = _member(f"ns/d{i}", 6 * CAP / 1.2)
        regions = tuple(
            replace(r, grid_event=event) if r.name == "us-east" else r for r in m.request.regions
        )
        members.append(replace(m, request=replace(m.request, regions=regions)))
    fleet = plan_fleet(members)
    assert sum(fleet.held[EAST].values()) <= 8


def test_equal_priorities_keep_what_they_hold() -> None:
    claims = [Claim("a", 0, 10), Claim("b", 0, 6)]
    assert share(16, claims, "a", 0).allowed_gpus == 10
    assert share(16, claims, "b", 0).allowed_gpus == 6
    # A higher priority refused 4 GPUs: the lower ones see 4 fewer, and yield.
    claims.append(Claim("c", 5, 0, refused_gpus=4))
    assert share(16, claims, "a", 0).allowed_gpus == 6
    assert share(16, claims, "c", 5).allowed_gpus == 0
    # The quota lowered below what is held: a proportional cut, never more than it in total.
    over = [Claim("a", 0, 10), Claim("b", 0, 6)]
    assert share(8, over, "a", 0).allowed_gpus + share(8, over, "b", 0).allowed_gpus <= 8


@pytest.mark.parametrize("seed", range(12))
def test_random_fleets_never_oversubscribe(seed: int) -> None:
    rng = random.Random(seed)
    quota = rng.randint(4, 24)
    members = [
        _member(
            f"ns/d{i}",
            rng.uniform(0.5, 10) * CAP,
            quota=quota,
            priority=rng.choice([0, 0, 1, 5]),
        )
        for i in range(rng.randint(2, 7))
    ]
    fleet = plan_fleet(members)
    for key, held in fleet.held.items():
        assert sum(held.values()) <= quota, (key, held)
        assert sum(d.target.get(key, 0) for d in fleet.decisions.values()) <= quota


def test_a_share_names_the_largest_holders_and_counts_the_rest() -> None:
    claims = [Claim(f"ns/d-{i}", 0, held) for i, held in enumerate([1, 5, 2, 7, 3, 4, 6, 1])]
    s = share(40, claims, "ns/d-0", 0)
    assert s.holders == (("ns/d-3", 7), ("ns/d-6", 6), ("ns/d-1", 5), ("ns/d-5", 4), ("ns/d-4", 3))
    assert s.other_holders == 2
    assert s.held_by_others == 28
    assert s.allowed_gpus == 40 - 28
