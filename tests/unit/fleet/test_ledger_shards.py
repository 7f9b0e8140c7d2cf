"""The quota ledger of one replica among several: its shard grows only within its ceiling,
and another shard's late status never cuts what this shard holds."""

from __future__ import annotations

import pytest

from tests.unit.planner.planner_builders import CAP, pool, region, request
from wattscale.fleet.ledger import QuotaLedger
from wattscale.planner import PlanRequest, PoolKey

pytestmark = pytest.mark.unit

EAST = PoolKey("us-east", "H100")
MINE = "team-a/llama"
THEIRS = "team-b/qwen"


def _ledger(ceiling: int | None) -> QuotaLedger:
    """This replica owns MINE; its ceiling in us-east is ``ceiling``, elsewhere the quota."""
    ledger = QuotaLedger()
    ledger.shard(lambda: lambda member: member == MINE, lambda key: ceiling if key == EAST else 16)
    return ledger


def _request(current: int, demand_replicas: float) -> PlanRequest:
    return request(
        region("us-east", 0.05, pool(quota=16, current=current)),
        region("us-west", 0.30, pool(quota=16)),
        demand=demand_replicas * CAP / 1.2,
    )


def test_a_shard_grows_only_within_its_ceiling() -> None:
    ledger = _ledger(ceiling=4)
    planned = ledger.plan(MINE, 0, _request(0, 14), None)
    assert planned.decision.target.get(EAST, 0) <= 4  # the cheap region, up to the ceiling
    assert sum(planned.decision.target.values()) >= 14  # the rest in the dear one


def test_without_a_ceiling_yet_a_shard_does_not_grow_in_a_shared_pool() -> None:
    ledger = _ledger(ceiling=None)
    planned = ledger.plan(MINE, 0, _request(0, 6), None)
    assert planned.decision.target.get(EAST, 0) == 0


def test_another_shards_late_status_never_cuts_what_this_shard_holds() -> None:
    # This shard holds 10 in us-east; the other shard's status (an interval old) still says it
    # holds 10 there too, though its replica has since released them: 20 of 16 on paper.
    ledger = _ledger(ceiling=10)
    ledger.seed(MINE, 0, {EAST: 10})
    ledger.observe(THEIRS, 0, {EAST: 10})
    planned = ledger.plan(MINE, 0, _request(10, 10), None)
    assert planned.decision.target.get(EAST, 0) >= 10
    # One replica alone, the same claims mean an oversubscribed pool: cut in proportion.
    alone = QuotaLedger()
    alone.seed(MINE, 0, {EAST: 10})
    alone.seed(THEIRS, 0, {EAST: 10})
    cut = alone.plan(MINE, 0, _request(10, 10), None)
    assert cut.decision.target.get(EAST, 0) == 8


def test_shard_usage_counts_only_this_shards_members() -> None:
    ledger = _ledger(ceiling=16)
    ledger.plan(MINE, 0, _request(0, 3), None)
    ledger.observe(THEIRS, 0, {EAST: 7})
    quota, held, _, _ = ledger.shard_usage()
    assert quota[EAST] == 16
    assert held[EAST] == 3


def test_a_shard_handed_over_is_not_room_for_the_shard_that_kept_its_ceiling() -> None:
    # This replica planned the whole fleet and reserved the whole quota (16) as its ceiling;
    # then a second replica joined and took THEIRS over, with the 8 GPUs it holds. Until this
    # replica's next ceiling round its stored ceiling still covers THEIRS's GPUs: they are
    # not room for MINE, which would like 14 in the cheap region.
    ledger = _ledger(ceiling=16)
    ledger.seed(MINE, 0, {EAST: 8})
    ledger.observe(THEIRS, 0, {EAST: 8})
    planned = ledger.plan(MINE, 0, _request(8, 14), None)
    assert planned.decision.target.get(EAST, 0) == 8  # what it holds; the rest in us-west
    assert sum(planned.decision.target.values()) >= 14
