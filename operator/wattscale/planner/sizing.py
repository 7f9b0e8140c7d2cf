"""SLO-first sizing: the capacity one decision must cover (tokens/s), and why.

Shared by the operator and the replay (both call :func:`wattscale.planner.plan`, which calls
:func:`size` with the :class:`~wattscale.forecast.recent.RecentDemand` it keeps in
``PlannerState``). The need (what the optimiser's target covers) is the larger of:

1. **base**: the demand measured now, when the reading is whole (not settling, not censored:
   the readings the error memory scores); otherwise (no fresh reading, a breach or a lost
   region making the reading a floor) the peak of the demand series handed in over the
   sizing window (cold start + two intervals: what can arrive before a replica started now
   is Ready), which is the forecast's upper quantile, lifted to the breach or outage floor.
   Not the forecast on a whole reading: a cold start ahead, a damped trend and a daily
   profile of 15-minute buckets predict the level worse than the level measured now does
   (measured on the replay, docs/simulator.md "The need from the reading"), and the headroom
   measured on that forecast's error then paid for its noise as well. While the reading
   *settles* (some Ready pods not reporting, or new replicas not in the rate window yet: the
   operator's own moves, never the replay's) the series' peak counts only up to the recent
   peak (3.): it may hold the fleet, the reading (a floor) and a measured ramp may grow it,
   a forecast alone may not, as the HPA counts a pod without metrics as idle when it scales
   up. Grown on the forecast's upper band, a fleet just scaled down 7 -> 5 grew to 6 on the
   next pass, whose reading the drained replicas had left incomplete, and shrank again (e2e);
2. **ramp**: the demand measured now, extrapolated over the sizing window along the
   least-squares slope of the measurements of the window before it (looking back as far as
   it looks ahead; :func:`~wattscale.forecast.recent.ramp_slope`), when that slope clears
   ``RAMP_Z`` standard errors and the newest measurement is the protection window's high (at
   most ``MAX_RAMP_RATIO`` times today's demand): a damped trend lags a ramp by minutes, and
   99.8 % of SLO misses fell while a scale-up was still loading;

and a scale-down (or the old side of a move) keeps, as a guard-rail on top of the target,

3. **recent peak**: the highest demand measured within the protection window (the same sizing
   window, in measured time): a replica removed now takes a cold start to come back, so a dip
   shorter than that does not release capacity, and a reading that under-reads once (a rate
   window after a cluster returns) cannot shrink the fleet below what it served a pass ago;
4. **no shrinking on a rise**: while the newest measurement is a new high, materially
   (``rise_threshold``) above every other one of the protection window, the fleet's capacity
   is kept whole (replicas may move, not go): a scale-down just as a surge begins is the one a
   cold start cannot undo in time. Noise around a level, which rises every other reading, does
   not hold a scale-down the level allows;
5. **the noise band** (``Sizing.noise_band``, :func:`~wattscale.forecast.recent.reading_noise`
   at ``BAND_Z``): how far one reading strays by noise alone. Not a guard-rail but part of the
   target: a plan that only removes replicas keeps what covers the need plus this band
   (``planner._leave_band``), so noise that lifts the need a few percent a pass later does not
   take a scale-down back.

The first two are multiplied by the **headroom**, the recent peak too: unless the spec fixes
it, ``max(1 / TARGET_UTILISATION, exp(mean + ERROR_Z x sigma))`` where mean and sigma are those
of the planner's own *measured* error on what it sized on (sigma from the errors above the mean
only: a fall the sizing missed is no shortfall; log of the actual peak over the
larger of the expected peak and the recent peak, scored once each window has passed: an
expected peak that dips with one low reading removes no capacity the guard-rail keeps, so it
is no shortfall). So the headroom is what the demand rose, at its upper quantile, within a
sizing window over what was expected at its start.
``TARGET_UTILISATION`` is the share of the SLO capacity a replica is planned to, which keeps
queueing delay (TTFT) within the SLO in the tail; the error term takes over on traces the
forecast predicts badly: by measurement, not by a constant fitted to one trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wattscale.forecast.recent import (
    NOISE_Z,
    RecentDemand,
    error_factor,
    noise_share,
    observe_recent,
    ramp_slope,
    reading_sigma,
    recent_peak,
    record_prediction,
    rise_share,
    skip_recent,
)

from .model import PlanRequest

__all__ = [
    "BAND_Z",
    "ERROR_Z",
    "MAX_RAMP_RATIO",
    "RAMP_Z",
    "SIZING_INTERVALS",
    "TARGET_UTILISATION",
    "Sizing",
    "size",
    "sizing_steps",
    "sizing_window_seconds",
]

SIZING_INTERVALS = 2
"""Capacity started now must cover demand until it is Ready plus this many control intervals."""
TARGET_UTILISATION = 0.9
"""Share of the per-replica SLO capacity the plan fills (the capacity is where p95 latency
reaches the SLO; queueing delay grows steeply above ~90 %, as in the replay's oracle)."""
BAND_Z = 1.0
"""The noise band a scale-down leaves above the need, in standard deviations of one reading:
noise of one sigma does not undo a scale-down. On the replays one sigma costs 0.7-1.2 % more
than no band, with 9-26 % fewer cold starts; two sigma (the rise threshold's) 1.4-3.2 %, for
no SLO gain (docs/simulator-history.md)."""
ERROR_Z = 2.33
"""Standard deviations of the measured peak error the headroom covers (99 % one-sided). 2.0
(~98 %) while the need started from the forecast's mean + 1 sigma; from the reading, 2.0 kept
0.0004-0.0009 less attainment than that on the 14-day ServeGen replays, under the 70 % HPA's,
and 2.33 keeps at least the HPA's on all eight with the capacity hint 0.7x off (on Azure's
flat, jumpy load it stays 0.00001-0.00004 under it; docs/simulator.md, "The need from the
reading")."""
RAMP_Z = NOISE_Z
"""Standard errors the ramp's fitted slope must clear to be extrapolated (as a rise must clear
the readings' noise)."""
MAX_RAMP_RATIO = 2.0
"""A ramp margin at most doubles today's demand (like the HPA's scale-up limit)."""


def sizing_window_seconds(req: PlanRequest) -> float:
    """Cold start + ``SIZING_INTERVALS`` intervals: what a replica started now must cover."""
    return max(req.cold_start_seconds, 0.0) + SIZING_INTERVALS * max(req.interval_seconds, 0.0)


def sizing_steps(req: PlanRequest, steps: int) -> int:
    """How many leading horizon steps the capacity must cover.

    A replica started now is Ready after the cold start; demand further out can still be met by
    replicas started later. So the need is the peak over cold start + a couple of intervals,
    while prices are averaged over the whole horizon (which decides whether a move pays).
    Sizing for the peak of a long horizon instead buys the next hour's capacity an hour early.
    """
    window = sizing_window_seconds(req)
    step = req.horizon_step_seconds if req.horizon_step_seconds > 0 else window or 1.0
    return max(1, min(steps, math.ceil(window / step)))


_BASE_NAMES = {
    "measured": "measured demand",
    "forecast": "forecast peak",
    "settling": "settling demand",
}


@dataclass(frozen=True, slots=True)
class Sizing:
    """The need and its parts (tokens/s before headroom), and the memory for the next call."""

    need_tokens_per_second: float
    """What the optimiser's target must cover: headroom x max(base, ramp)."""
    protected_tokens_per_second: float
    """What a scale-down must keep (a guard-rail, not the target): headroom x recent peak."""
    headroom: float
    base_peak: float
    """What the need starts from: the demand measured now, or the forecast's peak over the
    sizing window when the reading is not whole (``base_source``)."""
    ramp_peak: float
    recent_peak: float
    recent: RecentDemand
    derived_headroom: bool
    rising: bool = False
    """The newest measurement is a new high of the protection window: keep the fleet's
    capacity whole."""
    noise_band: float = 0.0
    """How far (a share) the need strays by the readings' noise alone (``reading_noise`` at
    ``BAND_Z``, 0 until there are enough readings to tell): a scale-down leaves this much above
    the need, so that noise does not undo it a pass later."""
    base_source: str = "forecast"
    """``measured`` (the whole reading now), ``forecast`` (the series' peak) or ``settling``
    (the series' peak held to the recent peak, the reading a floor)."""

    def note(self) -> str:
        """One line for the explanation: what set the need and what a scale-down keeps."""
        kind = "measured error" if self.derived_headroom else "spec"
        ramp = self.ramp_peak > self.base_peak
        top = "ramp peak" if ramp else _BASE_NAMES[self.base_source]
        text = (
            f"need {self.need_tokens_per_second:.0f} tok/s = {top} "
            f"{max(self.base_peak, self.ramp_peak):.0f} x headroom {self.headroom:.3f} "
            f"({kind}); a scale-down keeps {self.protected_tokens_per_second:.0f} (recent peak "
            f"{self.recent_peak:.0f})"
        )
        return text + ("; demand rising: no scale-down" if self.rising else "")


def derived_headroom(recent: RecentDemand) -> float:
    """Plan replicas to ``TARGET_UTILISATION``, and never let the measured error's upper
    quantile reach past the SLO capacity itself: ``max(1 / U, exp(mean + z sigma))``."""
    return max(1.0 / TARGET_UTILISATION, error_factor(recent, ERROR_Z))


def _demand(req: PlanRequest) -> np.ndarray:
    demand = np.array(req.demand_tokens_per_second or (0.0,), dtype=np.float64)
    return np.maximum(np.nan_to_num(demand, nan=0.0, posinf=0.0), 0.0)


def size(req: PlanRequest, recent: RecentDemand, measured: bool) -> Sizing:
    """The capacity ``req`` must cover; ``measured``: index 0 of the demand is a measurement
    (fresh metrics), so it updates the recent-demand memory and is scored later."""
    demand = _demand(req)
    window = sizing_window_seconds(req)
    s = sizing_steps(req, demand.shape[0])
    now = float(demand[0])
    measured_now = req.measured_tokens_per_second
    if measured_now is not None and not math.isfinite(measured_now):
        measured_now = None
    if measured_now is not None:
        # The series starts with the forecast (the operator hands in mean + 1 sigma; a breach
        # lifts it to what the fleet could serve, a floor that grows with the fleet): the memory
        # of recent demand, its ramp and the peak a scale-down keeps are what was measured. A
        # forecast dragged down by under-reads (users moving after a drain) must not lower the
        # peak a scale-down keeps, nor a breach floor be extrapolated as a ramp.
        now = max(measured_now, 0.0)
    # A whole reading (one the error memory scores, below) is what the need starts from.
    whole = measured and not req.demand_settling and not req.demand_censored
    on_reading = whole and measured_now is not None
    if measured:
        recent = observe_recent(recent, req.now_seconds, now)
    else:
        recent = skip_recent(recent, req.now_seconds)
    peak = recent_peak(recent, window) if measured else None
    kept = 0.0 if peak is None else peak
    base_peak, base_source = float(demand[:s].max()), "forecast"
    if on_reading:
        base_peak, base_source = now, "measured"
    elif req.demand_settling and not req.demand_censored and measured and measured_now is not None:
        # Settling (pods missing, or new replicas not in the rate window): the reading is a
        # floor, the series may hold the fleet up to the recent peak but not grow it past
        # what was measured (as the HPA counts a pod without metrics as idle on a scale-up).
        base_peak, base_source = max(now, min(base_peak, kept)), "settling"
    ramp_peak = 0.0
    # Only a climb to the protection window's high is a ramp: recovering from a dip (or an
    # under-read) returns to a level served minutes ago, a level neither to extrapolate nor to
    # hold capacity for. A *new* high (by more than the readings' noise) holds the fleet whole.
    before = recent_peak(recent, window, before_newest=True) if measured else None
    sigma = reading_sigma(recent, req.demand_lag_seconds) if measured else 0.0
    new_high = before is not None and now > before * (1 + rise_share(sigma))
    if measured and (before is None or now > before):
        slope, level = ramp_slope(recent, window, RAMP_Z, req.demand_lag_seconds)
        if slope > 0:
            ramp_peak = min(max(level, now) + slope * window, MAX_RAMP_RATIO * now)
    expected = max(base_peak, ramp_peak)
    if whole:
        # What the fleet is sized on is the larger of the expected peak (the target) and the
        # recent peak (what a scale-down keeps): a forecast that dips after one low reading
        # removes no capacity, so it is not a shortfall to cover. Scored later against the
        # measured peak; not while the reading under-reads (new replicas not in the rate
        # window yet, pods not reporting, or a saturated fleet serving less than users ask):
        # that error is the reading's, not the forecast's, and would inflate the headroom for
        # a day.
        recent = record_prediction(
            recent, window, max(expected, kept), req.demand_lag_seconds, rising=new_high
        )
    derived = req.headroom is None
    headroom = derived_headroom(recent) if req.headroom is None else max(req.headroom, 1.0)
    return Sizing(
        expected * headroom,
        kept * headroom,
        headroom,
        base_peak,
        ramp_peak,
        kept,
        recent,
        derived,
        new_high,
        noise_share(sigma, BAND_Z),
        base_source,
    )
