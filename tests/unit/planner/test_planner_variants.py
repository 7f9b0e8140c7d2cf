"""Variants: one deployment on several GPU products or engine settings, each a pool per region.

The planner picks the cheapest mix of variants within the SLO; the variants of one product in a
region share its quota, counted in GPUs; a move between variants is make-before-break.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.unit.planner.planner_builders import pool, region, request
from wattscale.planner import ActionKind, PlannerState, PoolKey, Recommendation, plan
from wattscale.planner.costing import build_costing
from wattscale.planner.optimise import exhaustive, solve

pytestmark = pytest.mark.unit

H100 = PoolKey("A", "H100", "h100")
A100 = PoolKey("A", "A100", "a100")
TP1 = PoolKey("A", "H100", "tp1")
TP2 = PoolKey("A", "H100", "tp2")


def variant(name: str, product: str, cost: float, capacity: float, **kw: object) -> object:
    """A pool for variant ``name`` of ``product``."""
    return replace(pool(cost=cost, product=product, capacity=capacity, **kw), variant=name)  # type: ignore[arg-type]


def test_a_pool_key_without_variant_is_the_single_product_key() -> None:
    assert PoolKey("A", "H100") == PoolKey("A", "H100", "")
    assert str(PoolKey("A", "H100")) == "A/H100"
    assert str(TP2) == "A/tp2"
    assert TP2.quota_key == PoolKey("A", "H100")


def test_picks_the_cheaper_variant_per_token() -> None:
    h100 = variant("h100", "H100", cost=2.5, capacity=7000.0)
    a100 = variant("a100", "A100", cost=1.0, capacity=4000.0)  # 0.25 vs 0.36 per 1k tok/s
    d = plan(request(region("A", 0.1, h100, a100)))
    assert d.target[A100] > 0
    assert d.target[H100] == 0
    dear = replace(a100, gpu_hour_cost_per_replica=2.4)  # now 0.60 per 1k tok/s
    d = plan(request(region("A", 0.1, h100, dear), demand=17500.0))  # need: 3 H100 exactly
    assert d.target[H100] == 3
    assert d.target[A100] == 0


def test_variants_of_one_product_share_its_quota_in_gpus() -> None:
    # 8 GPUs of H100: tp1 (1 GPU) is cheap per token but alone cannot cover the need.
    tp1 = variant("tp1", "H100", cost=2.5, capacity=3000.0, quota=8)
    tp2 = replace(variant("tp2", "H100", cost=5.0, capacity=7000.0, quota=4), gpus_per_replica=2)
    d = plan(request(region("A", 0.1, tp1, tp2), demand=20000.0))
    gpus = d.target.get(TP1, 0) + 2 * d.target.get(TP2, 0)
    assert gpus <= 8
    assert 3000.0 * d.target.get(TP1, 0) + 7000.0 * d.target.get(TP2, 0) >= 20000.0 * 1.2


def test_a_move_between_variants_is_make_before_break() -> None:
    h100 = variant("h100", "H100", cost=2.5, capacity=7000.0, current=4)
    a100 = variant("a100", "A100", cost=1.0, capacity=4000.0)
    d = plan(request(region("A", 0.1, h100, a100), min_savings_percent=0.0))
    assert d.desired[A100] > 0
    assert d.desired[H100] == 4  # the H100 replicas serve until the A100 ones are Ready
    assert [a.kind for a in d.actions] == [ActionKind.ADD]


def test_a_move_within_a_full_shared_quota_never_overbooks_it() -> None:
    tp2 = replace(
        variant("tp2", "H100", cost=5.0, capacity=7000.0, quota=4, current=4),
        gpus_per_replica=2,
    )
    tp1 = variant("tp1", "H100", cost=1.0, capacity=7000.0, quota=8)
    d = plan(request(region("A", 0.1, tp1, tp2), min_savings_percent=0.0))
    assert d.desired.get(TP1, 0) + 2 * d.desired.get(TP2, 0) <= 8


@pytest.mark.parametrize("seed", range(30))
def test_the_solver_is_exact_with_a_shared_quota(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pools = [
        replace(
            variant(
                f"v{k}",
                "H100",
                cost=float(rng.uniform(1, 5)),
                capacity=float(rng.uniform(2e3, 8e3)),
                quota=int(rng.integers(1, 5)),
            ),
            gpus_per_replica=int(rng.integers(1, 4)),
        )
        for k in range(3)
    ]
    req = request(region("A", 0.1, *pools), demand=float(rng.uniform(3e3, 2e4)))
    p = build_costing(req).problem(req)
    ref, got = exhaustive(p), solve(p)
    assert (ref is None) == (got is None)
    if ref is not None and got is not None:
        assert got.objective == pytest.approx(ref.objective, rel=1e-9)
        groups = p.group_gpus(got.replicas)
        assert groups is not None
        assert p.group_cap_gpus is not None
        assert np.all(groups <= p.group_cap_gpus)


def test_scale_down_holds_capacity_not_each_variants_recent_maximum() -> None:
    # A minute ago the plan was 3 H100; now it is 6 A100 (all Ready). Holding each pool's recent
    # maximum would keep the 3 H100 for the whole window; the region keeps capacity instead.
    h100 = variant("h100", "H100", cost=2.5, capacity=7000.0, current=3)
    a100 = variant("a100", "A100", cost=1.0, capacity=4000.0, current=6)
    before = PlannerState(history=(Recommendation(0.0, ((H100, 3), (A100, 0))),))
    req = request(region("A", 0.1, h100, a100), demand=20000.0, now_seconds=60.0)
    d = plan(req, before)
    assert d.target == {H100: 0, A100: 6}
    assert d.desired[H100] == 0
