"""Status helpers: Events, conditions that keep their transition time, money/energy accounting.

Per region, the cost rate of ``r`` replicas serving ``load`` tokens/s is
``r x gpuHourCost + P x PUE x price / 1000`` with ``P = r x idle + (max - idle) x load / cap``
(power is affine in utilisation); carbon is ``P x PUE x carbon / 1000`` grams per hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the InferenceDeployment."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class RegionCost:
    """Rates of one region: what ``status.regions[]`` and the metrics report."""

    replicas: int
    power_watts: float
    energy_cost_per_hour: float
    gpu_cost_per_hour: float
    carbon_grams_per_hour: float

    @property
    def cost_per_hour(self) -> float:
        return self.energy_cost_per_hour + self.gpu_cost_per_hour


def region_cost(
    *,
    replicas: int,
    load_tokens_per_second: float,
    capacity_tokens_per_second: float,
    idle_watts: float,
    max_watts: float,
    gpu_hour_cost_per_replica: float,
    pue: float,
    price_per_kwh: float | None,
    carbon_g_per_kwh: float | None,
) -> RegionCost:
    """Rates for ``replicas`` replicas in one region (unknown price/carbon count as 0)."""
    if replicas <= 0:
        return RegionCost(0, 0.0, 0.0, 0.0, 0.0)
    load = min(max(load_tokens_per_second, 0.0), replicas * capacity_tokens_per_second)
    it_watts = replicas * idle_watts + (max_watts - idle_watts) * load / capacity_tokens_per_second
    facility_kw = it_watts * pue / 1000.0
    return RegionCost(
        replicas=replicas,
        power_watts=it_watts * pue,
        energy_cost_per_hour=facility_kw * (price_per_kwh or 0.0),
        gpu_cost_per_hour=replicas * gpu_hour_cost_per_replica,
        carbon_grams_per_hour=facility_kw * (carbon_g_per_kwh or 0.0),
    )


def money(value: float | None, places: int = 2) -> str | None:
    """A decimal string for status (Kubernetes prefers strings to floats)."""
    if value is None or not math.isfinite(value):
        return None
    return format(Decimal(str(round(value, places))), "f")


def now_rfc3339(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    previous: list[dict[str, Any]] | None,
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """A condition dict; ``lastTransitionTime`` only moves when the status flips."""
    text = "Unknown" if status is None else ("True" if status else "False")
    old = next((c for c in previous or [] if c.get("type") == type_), None)
    since = old["lastTransitionTime"] if old and old.get("status") == text else now_rfc3339(now)
    out: dict[str, Any] = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message[:1000],
        "lastTransitionTime": since,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out
