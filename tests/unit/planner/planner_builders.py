"""Small builders for planner test inputs (not a test module)."""

from __future__ import annotations

from wattscale.planner import PlanRequest, PoolInput, RegionInput, replica_power

H100 = replica_power("H100", 1)
CAP = 7000.0


def pool(
    current: int = 0,
    ready: int | None = None,
    quota: int = 20,
    cost: float = 2.5,
    product: str = "H100",
    capacity: float = CAP,
) -> PoolInput:
    """One H100-like pool."""
    return PoolInput(
        gpu_product=product,
        gpu_hour_cost_per_replica=cost,
        idle_watts=H100.idle_watts,
        max_watts=H100.max_watts,
        capacity_tokens_per_second=capacity,
        quota_replicas=quota,
        current_replicas=current,
        ready_replicas=current if ready is None else ready,
    )


def region(name: str, price: float = 0.1, *pools: PoolInput, **kw: object) -> RegionInput:
    """A region with the given pools (one default pool when none)."""
    return RegionInput(name=name, pools=pools or (pool(),), price_per_kwh=price, **kw)  # type: ignore[arg-type]


def request(*regions: RegionInput, demand: float = 20000.0, **kw: object) -> PlanRequest:
    """A request with a flat demand over a 10-step horizon."""
    base: dict[str, object] = {
        "now_seconds": 0.0,
        "regions": regions,
        "demand_tokens_per_second": (demand,) * 10,
    }
    base.update(kw)
    return PlanRequest(**base)  # type: ignore[arg-type]
