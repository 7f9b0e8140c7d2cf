"""Scale to zero and back: when a deployment with ``min_replicas`` 0 sleeps, and what wakes it.

Pure, like the rest of the planner. :func:`gate` looks at one request and the planner's state
and says which of four things holds:

* **off**: no idle window, or ``min_replicas`` > 0: the planner runs as always;
* **awake**: replicas run and demand (or a request waiting at the gateway, or a reading that is
  missing: never asleep on an unknown) was seen within the idle window: the plan keeps at least
  one replica, so the ordinary scale-down cannot reach zero by itself;
* **sleep**: replicas run, yet neither demand nor a waiting request was seen for the whole idle
  window: every replica goes, at once (the stabilisation window and the recent-peak guard-rail
  are about capacity that may be needed within a cold start; after a whole idle window none
  is);
* **asleep** / **wake**: nothing runs. Nothing can measure demand then, so the gateway's count
  of waiting (or failed) requests stands in for it: zero keeps the deployment asleep; anything
  above zero, or no reading at all, wakes one replica in the cheapest pool now (the ordinary
  sizing takes over once that replica reports demand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from .model import PlannerState, PlanRequest

__all__ = ["ZeroGate", "ZeroState", "gate"]


class ZeroState(StrEnum):
    """Where a deployment stands with respect to scale to zero."""

    OFF = "off"
    AWAKE = "awake"
    SLEEP = "sleep"
    ASLEEP = "asleep"
    WAKE = "wake"


@dataclass(frozen=True, slots=True)
class ZeroGate:
    """The gate's verdict: the replica floor for this decision, and why."""

    state: ZeroState
    min_replicas: int
    busy_seconds: float | None
    note: str = ""


def _demand_seen(req: PlanRequest) -> bool:
    """Demand measured above zero now, or not measured at all (an unknown is not idle)."""
    demand = req.demand_tokens_per_second
    if not demand or not req.metrics_fresh:
        return True
    now = demand[0] if req.measured_tokens_per_second is None else req.measured_tokens_per_second
    return not math.isfinite(now) or now > 0


def _waiting(req: PlanRequest) -> bool:
    """A request waits (or failed) at the gateway, or the gateway could not be read."""
    w = req.waiting_requests
    return w is None or not math.isfinite(w) or w > 0


def _waiting_text(req: PlanRequest) -> str:
    w = req.waiting_requests
    if w is None or not math.isfinite(w):
        return "the gateway's waiting requests could not be read"
    return f"{w:g} requests waiting at the gateway"


def gate(req: PlanRequest, state: PlannerState, running: int) -> ZeroGate:
    """The verdict for ``req``; ``running``: replicas set now over every pool."""
    idle = req.scale_to_zero_idle_seconds
    now = req.now_seconds
    if idle is None or req.min_replicas > 0:
        return ZeroGate(ZeroState.OFF, req.min_replicas, state.busy_seconds)
    if running <= 0:
        if _waiting(req):
            note = f"{_waiting_text(req)}: waking one replica in the cheapest region"
            return ZeroGate(ZeroState.WAKE, 1, now, note)
        note = "no request waiting at the gateway: staying at zero"
        return ZeroGate(ZeroState.ASLEEP, 0, state.busy_seconds, note)
    busy = state.busy_seconds
    if busy is None or _demand_seen(req) or _waiting(req):
        busy = now  # after a restart the idle window starts again: never sleep on a guess
    idle_for = max(now - busy, 0.0)
    if idle_for >= idle:
        note = (
            f"no demand and no request waiting for {idle_for:.0f} s (idle window {idle:.0f} s): "
            "scaling to zero"
        )
        return ZeroGate(ZeroState.SLEEP, 0, busy, note)
    return ZeroGate(ZeroState.AWAKE, 1, busy)
