"""Each Region's health (its cluster answers, its feeds are fresh), written to its status.

This runs as one background loop over the RegionDirectory, not as a kopf timer per Region: kopf
puts a finalizer on every object a timer watches (kopf issue #1074), so a Region deleted while the
operator was not running would hang in Terminating until someone removed it by hand. Regions own
nothing we must clean up, so they carry no finalizer; the loop writes ``status`` through the
status subresource, and forgets a Region when it is gone.

:func:`region_status` computes a Region's status (and updates the operator's gauges) from its
runtime; :class:`RegionHealthLoop` calls it for every Region and patches the result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from wattscale.clusters.client import ClusterError
from wattscale.controller.status import condition, money
from wattscale.fleet.regions import RegionDirectory, RegionRuntime
from wattscale.telemetry.metrics import OperatorMetrics

log = logging.getLogger(__name__)

StatusWriter = Callable[[str, dict[str, Any]], bool]
"""Patch one Region's status; False when the Region no longer exists."""


def region_status(
    runtime: RegionRuntime,
    previous_conditions: list[dict[str, Any]] | None,
    now: datetime,
    metrics: OperatorMetrics,
) -> dict[str, Any]:
    """Check the Region's cluster and read its feeds; the ``status`` to write."""
    name = runtime.name
    status: dict[str, Any] = {}
    reachable: bool | None = None
    problems = list(runtime.errors)
    if runtime.cluster is not None:
        try:
            runtime.cluster.check()
            reachable = True
        except ClusterError as unreachable:
            reachable = False
            problems.append(str(unreachable))
        except Exception as err:  # a surprise from the client is still this Region's answer
            reachable = False
            problems.append(f"region {name}: health check failed ({type(err).__name__})")
    elif runtime.spec is not None:
        reachable = False  # no client could be built (a missing Secret, a refused kubeconfig)
    metrics.region_available.labels(name).set(1 if reachable else 0)
    signals: list[dict[str, Any]] = []
    fresh = True
    if runtime.signals is not None:
        snap = runtime.signals.read(now)
        # Absent, not null: the API server prunes nulls inside list items.
        signals = [
            {
                k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in entry.items()
                if v is not None
            }
            for entry in snap.statuses(now)
        ]
        fresh = snap.all_fresh(now)
        problems += snap.problems(now)
        currency = runtime.spec.energy.currency if runtime.spec else ""
        for reading in (snap.price, snap.carbon, snap.grid_events):
            if reading is None:
                continue
            age = reading.age_seconds(now)
            if age is not None:
                metrics.signal_age.labels(name, reading.name, reading.source_type).set(age)
            if reading.error is not None:
                metrics.signal_errors.labels(
                    name, reading.name, reading.source_type, type(reading.error).__name__
                ).inc()
        price = snap.price_per_kwh(now)
        if price is not None:
            metrics.region_price.labels(name, currency).set(price)
            status["pricePerKwh"] = money(price, 5)
        carbon = snap.carbon_g_per_kwh(now)
        if carbon is not None:
            metrics.region_carbon.labels(name).set(carbon)
            status["carbonGramsPerKwh"] = round(carbon)
    generation = runtime.generation
    status["observedGeneration"] = generation
    status["reachable"] = reachable
    status["signals"] = signals
    stale = "; ".join(f"{s['kind']}: {s.get('error', 'stale')}" for s in signals if not s["fresh"])
    status["conditions"] = [
        condition(
            previous_conditions,
            "Reachable",
            reachable,
            "ClusterAnswers" if reachable else "ClusterUnreachable",
            "; ".join(problems) or "the cluster answers",
            generation,
            now,
        ),
        condition(
            previous_conditions,
            "SignalsFresh",
            fresh,
            "SignalsFresh" if fresh else "SignalsStale",
            stale or "all feeds fresh",
            generation,
            now,
        ),
    ]
    return status


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class RegionHealthLoop:
    """Every ``interval_seconds``: :func:`region_status` for each Region, then write it."""

    def __init__(
        self,
        directory: RegionDirectory,
        write: StatusWriter,
        metrics: OperatorMetrics,
        interval_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reachable: Callable[[str, bool, str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.reachable = reachable
        """Told each Region's verdict (name, reachable, why not), e.g. the fleet snapshot."""
        self.write = write
        self.metrics = metrics
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._conditions: dict[str, list[dict[str, Any]]] = {}

    def seen(self, name: str, status: dict[str, Any] | None) -> None:
        """What the API server holds for a Region, so condition transition times carry over."""
        conditions = (status or {}).get("conditions")
        if conditions and name not in self._conditions:
            self._conditions[name] = list(conditions)

    def check(self, name: str) -> None:
        """One Region, once: never raises (a failing Region must not stop the others)."""
        try:
            runtime = self.directory.refresh(name)  # a created or rotated Secret heals it here
        except Exception:
            log.exception("region %s: re-reading its Secrets failed", name)
            runtime = self.directory.get(name)
        if runtime is None:
            self._conditions.pop(name, None)
            return
        try:
            status = region_status(runtime, self._conditions.get(name), self.clock(), self.metrics)
            if self.reachable is not None:
                verdict: dict[str, Any] = next(
                    (c for c in status["conditions"] if c.get("type") == "Reachable"), {}
                )
                self.reachable(name, verdict.get("status") != "False", verdict.get("message", ""))
            if self.write(name, status):
                self._conditions[name] = status["conditions"]
            else:
                self._conditions.pop(name, None)  # deleted meanwhile: the watch removes it
        except Exception:
            log.exception("region %s: health check failed", name)

    def check_all(self) -> None:
        for name in self.directory.names():
            self.check(name)

    async def run(self) -> None:
        """Forever (until cancelled); the blocking checks run in a worker thread."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.check_all)
            except Exception:  # never stop: the next round may find every Region well
                log.exception("region health round failed")
            await asyncio.sleep(self.interval_seconds)
