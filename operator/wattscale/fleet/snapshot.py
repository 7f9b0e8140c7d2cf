"""What every deployment in a Region reads this pass, gathered once for all of them.

Per Region, once per interval (:meth:`FleetSnapshot.refresh`, run by a background loop in the
operator and explicitly in tests and benchmarks): one Prometheus snapshot aggregated by
deployment (:class:`~wattscale.metrics.snapshot.MetricsSnapshot`), and whether the Region
health loop last found the Region's cluster unreachable. Feeds are read off the pass too: one
background refresher per source (:mod:`wattscale.signals.refresher`), so a hung feed costs
no pass anything and every deployment in a Region reads the same values. A deployment's pass
reads memory from here; a Region whose metrics cannot be aggregated (another label selection)
keeps per-deployment reads, and before the first refresh every Region does.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from wattscale.fleet.regions import RegionDirectory, RegionRuntime
from wattscale.metrics import MetricsReader
from wattscale.metrics.snapshot import MetricsSnapshot, supported

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Down:
    """The health loop's verdict on a Region's cluster: unreachable since ``since``."""

    since: float
    reason: str


class FleetSnapshot:
    """Per-Region shared reads, refreshed once per interval for every deployment there."""

    def __init__(
        self,
        directory: RegionDirectory,
        clock: Callable[[], float] = time.time,
        feeds_period_seconds: float | None = None,
    ) -> None:
        self.directory = directory
        self.clock = clock
        self.feeds_period_seconds = feeds_period_seconds
        """When set, each Region's feeds are read by background refreshers (one per source)
        at this period, so no pass ever waits on a feed."""
        self._feeds: dict[str, RegionRuntime] = {}
        self._metrics: dict[str, tuple[RegionRuntime, MetricsSnapshot]] = {}
        self._down: dict[str, Down] = {}
        self._lock = threading.Lock()
        self.queries_last_refresh: dict[str, int] = {}

    def refresh(self) -> None:
        """Take every Region's Prometheus snapshot (never raises; a failure is in the data)."""
        if self.feeds_period_seconds is not None:
            self._refresh_feeds_in_background(self.feeds_period_seconds)
        queries: dict[str, int] = {}
        for name in self.directory.names():
            runtime = self.directory.get(name)
            if runtime is None or not isinstance(runtime.metrics, MetricsReader):
                continue
            if not supported(runtime.metrics.config):
                continue
            with self._lock:
                held = self._metrics.get(name)
            if held is None or held[0] is not runtime:  # a rebuilt Region gets a new snapshot
                held = (runtime, MetricsSnapshot(runtime.metrics, self.clock))
            try:
                held[1].refresh()
            except Exception:  # the snapshot types its failures; this is a last resort
                log.exception("region %s: metrics snapshot failed", name)
                continue
            queries[name] = held[1].queries
            with self._lock:
                self._metrics[name] = held
        with self._lock:
            for gone in set(self._metrics) - set(self.directory.names()):
                self._metrics.pop(gone, None)
        self.queries_last_refresh = queries

    def _refresh_feeds_in_background(self, period_seconds: float) -> None:
        """Start the refreshers of new or rebuilt Regions; stop those of replaced ones."""
        live: dict[str, RegionRuntime] = {}
        for name in self.directory.names():
            runtime = self.directory.get(name)
            if runtime is not None and runtime.signals is not None:
                live[name] = runtime
        for name, old in list(self._feeds.items()):
            if live.get(name) is not old and old.signals is not None:
                old.signals.stop()
                del self._feeds[name]
        for name, runtime in live.items():
            if name not in self._feeds and runtime.signals is not None:
                runtime.signals.refresh_in_background(
                    period_seconds, lambda: datetime.fromtimestamp(self.clock(), UTC)
                )
                self._feeds[name] = runtime

    def metrics(self, name: str, runtime: RegionRuntime) -> MetricsSnapshot | None:
        """The Region's current snapshot (None: read per deployment)."""
        with self._lock:
            held = self._metrics.get(name)
        if held is None or held[0] is not runtime:
            return None
        return held[1]

    def mark(self, name: str, reachable: bool, reason: str = "") -> None:
        """Record the Region health loop's verdict on the Region's cluster."""
        with self._lock:
            if reachable:
                self._down.pop(name, None)
            elif name not in self._down:
                self._down[name] = Down(self.clock(), reason)

    def down(self, name: str) -> Down | None:
        """Whether the health loop last found the Region's cluster unreachable."""
        with self._lock:
            return self._down.get(name)

    async def run(self, interval_seconds: float) -> None:
        """Refresh every ``interval_seconds`` until cancelled (the I/O in a worker thread)."""
        loop = asyncio.get_running_loop()
        while True:
            await loop.run_in_executor(None, self.refresh)
            await asyncio.sleep(interval_seconds)
