"""When the capacity estimate is recomputed: one rule for the operator and the replay.

The learner's posterior is a grid over every window it holds (up to 2,000): recomputing it on
every pass is most of a pass's CPU, and one more window of a steady load hardly moves it. So it
is recomputed when the SLO or hint changed, while few windows are held, when a window came near
the SLO or queued (the boundary the estimate is about), and otherwise once a window has arrived
and ``ESTIMATE_REFRESH_INTERVALS`` intervals have passed. A learned estimate is not replaced by
the prior while the SLO and hint stay the same.

The controller keeps one :class:`EstimateSchedule` beside each learner of a deployment (one
per GPU variant); the replay's wattscale policy keeps one per learner, with the replay's minute
as the interval, so that a replay corrects a wrong capacity hint as fast as the operator would
(it used to re-estimate once an hour: an optimistic hint then stood for the first hour).
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .capacity import CapacityEstimate, CapacityLearner, CapacityObservation, LatencySlo

__all__ = [
    "ESTIMATE_EVERY_WINDOW_BELOW",
    "ESTIMATE_REFRESH_INTERVALS",
    "NEAR_SLO",
    "EstimateSchedule",
]

ESTIMATE_REFRESH_INTERVALS = 10
"""Without news, the capacity estimate is recomputed at most every this many intervals."""
ESTIMATE_EVERY_WINDOW_BELOW = 30
"""Until the learner holds this many windows, each new one refreshes the estimate."""
NEAR_SLO = 0.8
"""A window whose p95 latency reaches this share of the SLO (or that queues) is news."""


@dataclass(slots=True)
class EstimateSchedule:
    """A learner's last estimate, and when and from what it was computed."""

    estimate: CapacityEstimate | None = None
    at_seconds: float = 0.0
    basis: tuple[LatencySlo, float | None] | None = None
    windows_since: int = 0
    news_since: bool = False

    def forget(self) -> None:
        """Drop the estimate: the next :meth:`current` computes one (after a warm start, the
        history's windows count from there on)."""
        self.estimate = None

    def observe(self, learner: CapacityLearner, window: CapacityObservation) -> None:
        """Give ``learner`` one window; note whether it is news for the estimate."""
        learner.observe(window)
        self.windows_since += 1
        ratio = learner.slo.ratio(window)
        queued = (window.waiting_requests_per_replica or 0.0) > 0.0
        self.news_since |= (ratio is not None and ratio >= NEAR_SLO) or queued

    def current(
        self, learner: CapacityLearner, now_s: float, interval_s: float
    ) -> CapacityEstimate:
        """The learner's estimate, recomputed only when it can have moved (module docstring)."""
        basis = (learner.slo, learner.hint_tokens_per_second)
        due = (
            self.estimate is None
            or basis != self.basis
            or (
                self.windows_since > 0
                and (
                    self.news_since
                    or len(learner.observations) < ESTIMATE_EVERY_WINDOW_BELOW
                    or now_s - self.at_seconds >= ESTIMATE_REFRESH_INTERVALS * interval_s
                )
            )
        )
        if not due and self.estimate is not None:
            return self.estimate
        estimate = learner.estimate(now_s)
        kept = self.estimate
        if (
            estimate.source == "prior"
            and kept is not None
            and kept.source == "learned"
            and basis == self.basis
        ):
            # Every window held is refused for now (a step's onset is judged again when the
            # next window shows it, and replicas move after an outage): no usable window is
            # no evidence against what was learned, which stands until usable windows speak.
            # Falling back to the hint for a pass moved the need across a replica and back.
            estimate = kept
        self.estimate = estimate
        self.at_seconds, self.basis = now_s, basis
        self.windows_since, self.news_since = 0, False
        return estimate
