"""A feed read in the background: one daemon thread per source, readers never wait on I/O.

The thread reads its source (through the source's own cache, so a good value is fetched only
when its TTL has passed) every ``period_seconds``; after a failed read it waits twice as long
as the last time, up to ``max_backoff_seconds``, and the failure stays in the value it hands
out (a cached value with its error, or the error alone) until a read succeeds. A source that
hangs holds up its own thread only: :meth:`Refresher.latest` returns at once, with what the
last finished read gave (or a "not read yet" value before the first one finishes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BACKOFF_SECONDS = 600.0


class Refresher(Generic[T]):
    """Keeps the latest value of ``read`` fresh from a daemon thread (see module)."""

    def __init__(
        self,
        name: str,
        read: Callable[[datetime], T],
        initial: T,
        failed: Callable[[T], bool],
        period_seconds: float,
        clock: Callable[[], datetime] | None = None,
        max_backoff_seconds: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        self.name = name
        self._read = read
        self._failed = failed
        self._latest = initial
        self.period_seconds = period_seconds
        self.max_backoff_seconds = max(max_backoff_seconds, period_seconds)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delay_seconds = period_seconds
        """How long the thread waits before its next read."""

    def latest(self) -> T:
        """What the last finished read gave; never blocks."""
        return self._latest

    def refresh_once(self) -> float:
        """Read now, keep the value, and return how long to wait before the next read."""
        try:
            value = self._read(self._clock())
        except Exception as err:  # the read is meant never to raise; keep the thread alive
            log.warning("feed %s: refresh failed: %s", self.name, type(err).__name__)
            self.delay_seconds = min(self.max_backoff_seconds, self.delay_seconds * 2)
            return self.delay_seconds
        self._latest = value
        if self._failed(value):
            self.delay_seconds = min(self.max_backoff_seconds, self.delay_seconds * 2)
        else:
            self.delay_seconds = self.period_seconds
        return self.delay_seconds

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"feed-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.refresh_once())
