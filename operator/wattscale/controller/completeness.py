"""Are this pass's metrics complete? Every Ready pod must report before anything scales down.

A Prometheus reading with some pods unscraped sums only the pods that reported: the demand it
shows is a lower bound. Acting on it as if it were the whole demand shrank a fleet 5 -> 3 with
half its pods unscraped (issue 14 item 4). So a pass is *complete* only when, in every region
with Ready replicas, the readings are there, fresh and whole (status Ok, not Partial) and at
least as many pods report as are Ready. An incomplete pass may hold or grow (the partial sum is
still a floor for demand) but never shrink the fleet's capacity; the ``MetricsComplete``
condition says which region is short and, when Prometheus knows, which pods it failed to scrape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wattscale.controller.status import condition
from wattscale.fleet.observe import RegionObservation
from wattscale.metrics.readings import ReadingStatus

CONDITION = "MetricsComplete"
_SHOWN_PODS = 10


@dataclass(frozen=True)
class Completeness:
    """Whether every Ready pod reported, and per short region what is missing."""

    complete: bool
    gaps: tuple[str, ...] = ()


def _gap(obs: RegionObservation) -> str | None:
    """What is missing in one region's readings (None: nothing)."""
    readings = obs.readings
    if readings is None:
        return f"{obs.name}: no readings for {obs.ready} Ready pods"
    reporting = readings.pods_reporting
    status = readings.generation_tokens_per_second.status
    if reporting >= obs.ready and status is ReadingStatus.OK:
        return None
    text = f"{obs.name}: {min(reporting, obs.ready)} of {obs.ready} Ready pods reporting"
    if status is not ReadingStatus.OK and reporting >= obs.ready:
        text = f"{obs.name}: the token rate is {status.value.lower()}"
    pods = obs.unscraped_pods
    if pods:
        shown = ", ".join(pods[:_SHOWN_PODS])
        more = f" and {len(pods) - _SHOWN_PODS} more" if len(pods) > _SHOWN_PODS else ""
        text += f" (not scraped: {shown}{more})"
    return text


def completeness(regions: Sequence[RegionObservation]) -> Completeness:
    """Complete when every reachable region with Ready replicas has whole, fresh readings."""
    gaps = [g for o in regions if o.available and o.ready > 0 for g in [_gap(o)] if g]
    return Completeness(not gaps, tuple(gaps))


def metrics_condition(
    previous: list[dict[str, Any]] | None,
    result: Completeness,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The ``MetricsComplete`` condition for this pass."""
    if result.complete:
        return condition(
            previous,
            CONDITION,
            True,
            "AllPodsReporting",
            "every Ready pod reports",
            generation,
            now,
        )
    return condition(
        previous,
        CONDITION,
        False,
        "PodsMissing",
        "; ".join(result.gaps) + ": replicas may hold or grow, never shrink, until every Ready "
        "pod reports",
        generation,
        now,
    )
