"""Grid events declared in the Region itself (maintenance windows, known demand response)."""

from __future__ import annotations

from datetime import datetime

from wattscale.api.sources import StaticGridEventSource
from wattscale.signals.base import GridEvent, GridEvents, SourceContext, utc

NAME = "static"


class StaticEventsSource:
    """Returns the events listed in the config that have not ended yet; never stale."""

    def __init__(self, config: StaticGridEventSource, ctx: SourceContext) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx

    def read(self, now: datetime) -> GridEvents:
        """The configured events that end after `now`, sorted by start."""
        now = utc(now)
        events = sorted(
            (
                GridEvent(
                    start=utc(e.start),
                    end=utc(e.end),
                    cap_fraction=e.capFraction,
                    kind="excluded" if e.capFraction <= 0.0 else "capped",
                    reason=e.reason,
                )
                for e in self.config.events
                if utc(e.end) > now and e.capFraction < 1.0
            ),
            key=lambda e: e.start,
        )
        return GridEvents(
            source=NAME,
            events=tuple(events),
            fetched_at=now,
            max_age_seconds=float(self.config.maxAgeSeconds),
        )
