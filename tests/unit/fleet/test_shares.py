"""Quota ceilings between operator replicas: whatever order the replicas write in, the live
ceilings never sum above a pool's quota (unless what is held already does), never cut what a
shard holds, and grow where a shard's deployments were refused."""

from __future__ import annotations

import random

import pytest

from wattscale.fleet.shares import decode, encode, next_ceiling, next_ceilings, without_expired
from wattscale.planner import PoolKey

pytestmark = pytest.mark.unit

POOL = PoolKey("us-east", "H100")


@pytest.mark.parametrize("seed", range(20))
def test_ceilings_written_in_any_order_never_sum_above_the_quota(seed: int) -> None:
    rng = random.Random(seed)
    quota = rng.randint(0, 64)
    replicas = [f"op-{i}" for i in range(rng.randint(1, 4))]
    ceilings = dict.fromkeys(replicas, 0)
    held = dict.fromkeys(replicas, 0)
    for _ in range(60):
        me = rng.choice(replicas)
        others = [c for m, c in ceilings.items() if m != me]
        refused = rng.randint(0, 20)
        ceilings[me] = next_ceiling(quota, others, held[me], refused, len(replicas))
        assert ceilings[me] >= held[me]
        assert sum(ceilings.values()) <= quota
        held[me] = rng.randint(0, ceilings[me])  # a shard grows or shrinks within its ceiling
        assert sum(held.values()) <= quota


def test_a_ceiling_never_cuts_what_is_held() -> None:
    # The others already reserve everything (e.g. just after a takeover): hold, do not grow.
    assert next_ceiling(16, [16], held_gpus=6, refused_gpus=4, live_replicas=2) == 6


def test_refused_gpus_are_reserved_first_then_a_slice_of_the_free_room() -> None:
    # 16 GPUs, the other replica reserves 4: this one holds 6, was refused 2; free 4, half.
    assert next_ceiling(16, [4], held_gpus=6, refused_gpus=2, live_replicas=2) == 10
    # Refusals beyond the room get only the room.
    assert next_ceiling(16, [4], held_gpus=6, refused_gpus=20, live_replicas=2) == 12


def test_what_the_others_hold_is_reserved_whatever_their_ceilings_say() -> None:
    # A replica that just joined wrote no ceiling yet (0), but the deployments it took over
    # hold 8: this one, wanting 28, may reserve only the 8 nobody holds.
    assert next_ceiling(16, [0], 6, 22, 2, others_held_gpus=8) == 8
    # Stored ceilings above what the others hold still count (they may grow into them).
    assert next_ceiling(16, [10], 6, 22, 2, others_held_gpus=8) == 6
    # Never below what this shard holds.
    assert next_ceiling(16, [0], 10, 0, 2, others_held_gpus=8) == 10


def test_an_idle_fleet_leaves_room_for_every_replica() -> None:
    first = next_ceilings("a", {POOL: 16}, {}, {}, {}, ["a", "b"])
    second = next_ceilings("b", {POOL: 16}, {"a": first}, {}, {}, ["a", "b"])
    assert first[POOL] == 8
    assert second[POOL] == 4  # the rest is shared out as the slices are recomputed
    assert first[POOL] + second[POOL] <= 16


def test_the_leader_drops_expired_replicas_and_the_encoding_round_trips() -> None:
    ceilings = {"a": {POOL: 5}, "b": {POOL: 7, PoolKey("us-west", "L40S"): 2}}
    assert without_expired(ceilings, ["a"]) == {"a": {POOL: 5}}
    assert decode(encode(ceilings)) == ceilings
    assert decode(None) == {}
    assert decode("not json") == {}
    assert decode('{"a": {"no-slash": 3, "r/p": "x"}, "b": 4}') == {"a": {}}
