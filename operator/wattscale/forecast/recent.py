"""Recent demand: what was measured over the last minutes, its ramp, and the forecast's own error.

Pure and replayable like :mod:`wattscale.forecast.holt`: :class:`RecentDemand` is a frozen
value, every function returns a new one. It serves three sizing questions the Holt forecast
alone answers badly:

* **ramp** (:func:`ramp_slope`): a damped trend lags a rising load by minutes; the
  least-squares slope of the measurements over the sizing window, when it clears its own
  standard error, so that one jump between two readings (an under-read, a step) or noise is
  not extrapolated as a ramp;
* **recent peak** (:func:`recent_peak`): the highest demand measured within a window, so that
  capacity a dip would release is kept while it could be needed again before a replacement
  could load;
* **lead error** (:func:`record_prediction`, :func:`error_factor`): every prediction of the peak
  over the sizing window is kept until that window has passed, then compared with the peak
  actually measured in it; the log ratio's EWMA mean and *upper* semi-variance (errors above
  the mean only) give an upper quantile factor. A fall the forecast did not see (it predicted
  more than came) costs money, never the SLO: it lowers the mean but does not widen the band
  that buys replicas, as a symmetric variance did (a load falling to a third widened the
  headroom from 1.11 to 1.88, still 1.32 seven hours later; now it rises to 1.19 at most, while
  the mean recovers and errors back at zero lie above it).

Time here is a *measured-time* clock: it advances only across passes where demand was
measured. While demand cannot be trusted (an outage, readings settling after a region returns)
it stands still, so a hold does not age the memory: the first reading after it is compared with
what was measured just before, not with nothing.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace

__all__ = [
    "RecentDemand",
    "error_factor",
    "noise_share",
    "observe_recent",
    "ramp_slope",
    "reading_noise",
    "reading_sigma",
    "recent_peak",
    "record_prediction",
    "rise_share",
    "rise_threshold",
    "seeded_recent",
    "skip_recent",
]

PRIOR_LOG_ERROR_SIGMA = 0.04
"""Spread (log space) assumed for the peak forecast's error before any has been measured."""
PRIOR_WEIGHT = 10.0
"""The prior counts as this many measured errors (it fades as errors are measured)."""
ERROR_MEMORY = 1440
"""The error EWMA forgets with weight 1/ERROR_MEMORY per measured error once warm (a day at
one error per minute): slow enough to remember the day's worst ramps, quick enough to follow a
change of traffic."""
MAX_LOG_ERROR = math.log(4.0)
"""A measured error counts at most as a factor of 4 (an outage is not a forecast error)."""


@dataclass(frozen=True, slots=True)
class RecentDemand:
    """Demand measured over the last minutes and the peak forecasts still being scored."""

    keep_seconds: float = 1800.0
    clock_seconds: float = 0.0  # measured-time clock (see the module docstring)
    last_seconds: float | None = None  # caller's time of the last call (measured or not)
    last_measured: bool = False
    seen: tuple[tuple[float, float], ...] = ()  # (clock, demand) newest last
    pending: tuple[tuple[float, float, float], ...] = ()  # (clock made, clock due, peak)
    err_mean: float = 0.0
    err_upper_var: float = PRIOR_LOG_ERROR_SIGMA**2
    """EWMA of 2 x (error - mean)^2 over errors above the mean (0 for those below): the
    variance for errors spread evenly about their mean, blind to falls."""
    err_count: int = 0
    first_demand_clock: float | None = None  # clock of the first demand > 0 measured
    warm_clock: float | None = None
    """Clock at which the start from nothing ended (the reading stopped climbing after the
    cold window): predictions are scored from then on."""


def _advance(r: RecentDemand, now_seconds: float) -> float:
    """The clock at ``now_seconds`` if the time since the last call was measured time."""
    if r.last_seconds is None or not r.last_measured:
        return r.clock_seconds
    return r.clock_seconds + max(now_seconds - r.last_seconds, 0.0)


def skip_recent(r: RecentDemand, now_seconds: float) -> RecentDemand:
    """A pass without a usable measurement: the clock stops until the next one."""
    clock = _advance(r, now_seconds)
    return replace(r, clock_seconds=clock, last_seconds=now_seconds, last_measured=False)


def _score(r: RecentDemand, seen: tuple[tuple[float, float], ...], clock: float) -> RecentDemand:
    """Score the predictions whose window has passed against the peak measured in it."""
    mean, var, count = r.err_mean, r.err_upper_var, r.err_count
    left: list[tuple[float, float, float]] = []
    for made, due, peak in r.pending:
        if due > clock:
            left.append((made, due, peak))
            continue
        actual = [v for t, v in seen if made < t <= due]
        if not actual or peak <= 0:
            continue
        top = max(actual)
        if top <= 0:
            continue
        err = min(max(math.log(top / peak), -MAX_LOG_ERROR), MAX_LOG_ERROR)
        rho = max(1.0 / (count + 1 + PRIOR_WEIGHT), 1.0 / ERROR_MEMORY)
        diff = err - mean
        mean += rho * diff
        above = max(diff, 0.0)
        var = (1 - rho) * (var + rho * 2.0 * above * above)
        count += 1
    return replace(r, pending=tuple(left), err_mean=mean, err_upper_var=var, err_count=count)


def observe_recent(r: RecentDemand, now_seconds: float, demand: float) -> RecentDemand:
    """Add one measurement of demand (non-finite or negative values are skipped)."""
    if not math.isfinite(demand) or not math.isfinite(now_seconds) or demand < 0:
        return skip_recent(r, now_seconds)
    clock = _advance(r, now_seconds)
    seen = (*tuple(p for p in r.seen if p[0] > clock - r.keep_seconds), (clock, demand))
    first = r.first_demand_clock
    if first is None and demand > 0:
        first = clock
    scored = _score(replace(r, first_demand_clock=first), seen, clock)
    return replace(
        scored, clock_seconds=clock, last_seconds=now_seconds, last_measured=True, seen=seen
    )


def seeded_recent(points: Iterable[tuple[float, float]]) -> RecentDemand:
    """A memory that has measured ``points`` ((time, demand), oldest first), as one pass per
    point would have: after a restart, the last minutes of demand read back from Prometheus.

    Without them a restarted planner has no protection window: the first readings that
    recover from a dip are each a new high, extrapolated as a ramp, and the readings' noise is
    unknown (0) until a few dozen passes have measured it."""
    r = RecentDemand()
    for t, demand in points:
        r = observe_recent(r, t, demand)
    return r


def recent_peak(
    r: RecentDemand, window_seconds: float, before_newest: bool = False
) -> float | None:
    """The highest demand measured within the last ``window_seconds`` of measured time (before
    the newest measurement, with ``before_newest``)."""
    seen = r.seen[:-1] if before_newest else r.seen
    values = [v for t, v in seen if t >= r.clock_seconds - window_seconds]
    return max(values) if values else None


def ramp_slope(
    r: RecentDemand, window_seconds: float, z: float, lag_seconds: float = 0.0
) -> tuple[float, float]:
    """Demand's rise per second over the last ``window_seconds`` of measured time, and the
    level it has reached: the least-squares line through the measurements of the window, when
    its slope clears ``z`` standard errors; ``(0, newest measurement)`` otherwise.

    ``lag_seconds`` is the readings' rate window: readings closer than that share most of it
    and so of their noise (:func:`reading_sigma`), and the least-squares error, which takes
    every reading for independent, would understate the slope's by the square root of the
    readings a window holds (2 with a 120 s rate read every 30 s). It is widened by that much.

    The window looks back as far as the sizing looks ahead: a ramp is read off every
    measurement of it, so one noisy reading neither hides it nor fakes it (the smallest rise
    between the last three readings, before, saw no ramp in bursty traffic, whose readings fall
    back every other minute while the level climbs). Noise around a level gives a slope within
    its own standard error, and so does a single jump between flat readings (a step, an
    under-read followed by the true reading): its residuals are as large as the slope it makes.
    Fewer than ``RAMP_MIN_POINTS`` measurements tell no slope.
    """
    pts = [(t, v) for t, v in r.seen if t >= r.clock_seconds - window_seconds]
    newest = r.seen[-1][1] if r.seen else 0.0
    if len(pts) < RAMP_MIN_POINTS:
        return 0.0, newest
    ts = [t for t, _ in pts]
    vs = [v for _, v in pts]
    t_mean = statistics.fmean(ts)
    sxx = sum((t - t_mean) ** 2 for t in ts)
    if sxx <= 0:
        return 0.0, newest
    slope, intercept = statistics.linear_regression(ts, vs)
    residual = sum((v - intercept - slope * t) ** 2 for t, v in pts)
    shared = _lag_steps(r.seen, lag_seconds)
    stderr = math.sqrt(residual / (len(pts) - 2) / sxx * shared)
    if slope <= 0 or slope <= z * stderr:
        return 0.0, newest
    return slope, intercept + slope * ts[-1]


RAMP_MIN_POINTS = 4
"""Measurements a ramp's slope is fitted through at least (two leave no residual to judge it)."""


RISE_TOLERANCE = 0.01
"""A measurement counts as a rise when it is more than this share above the highest of the
protection window before it (a level creeping by a few tokens/s is not a surge), or more than
:func:`rise_threshold` when the readings are noisier than that."""
NOISE_POINTS = 30
"""Recent measurements the readings' noise is estimated over."""
NOISE_Z = 2.0
"""A rise must clear the readings' noise by this many standard deviations."""
MAX_LAG_STEPS = 10
"""At most this many readings a rate window (a window ten intervals long is read as if ten)."""


def rise_threshold(r: RecentDemand, lag_seconds: float = 0.0) -> float:
    """How far (a share) a measurement must rise above the protection window's highest to be a
    rise rather than noise: the larger of ``RISE_TOLERANCE`` and :func:`reading_noise`. A
    steady ramp, however steep, has no noise, so it stays a rise; readings that jump around a
    level (a busy scrape, users moving between regions after a drain) do not make each
    recovery a surge."""
    return rise_share(reading_sigma(r, lag_seconds))


def rise_share(sigma: float) -> float:
    """:func:`rise_threshold` from a :func:`reading_sigma` already computed."""
    return max(RISE_TOLERANCE, noise_share(sigma, NOISE_Z))


def noise_share(sigma: float, z: float) -> float:
    """How far (a share) a reading strays above the level at ``z`` standard deviations of
    :func:`reading_sigma`: ``exp(z x sigma) - 1``."""
    return math.exp(z * sigma) - 1.0


def reading_noise(
    r: RecentDemand, lag_seconds: float = 0.0, points: int = NOISE_POINTS, z: float = NOISE_Z
) -> float:
    """How far (a share) one reading strays above the level by noise: ``exp(z x sigma) - 1``
    (``NOISE_Z`` unless told, sigma :func:`reading_sigma`), 0 until there are enough readings
    to tell."""
    return noise_share(reading_sigma(r, lag_seconds, points), z)


def reading_sigma(r: RecentDemand, lag_seconds: float = 0.0, points: int = NOISE_POINTS) -> float:
    """The noise of one reading as a share of the level, 0 until there are enough readings to
    tell: from the second differences of the last ``points`` readings over the middle one
    (robustly: their median absolute value; a second difference of independent noise has
    ``sqrt(6) sigma``). A linear trend, however steep, has none, a ramp from nothing included
    (in log space its curvature would read as noise for as long as its readings are among the
    last ``points``).

    ``lag_seconds`` is how long a reading averages over (its rate window). Readings closer than
    that share most of their window, and so most of their noise: differences between
    neighbours would understate it (by ``sqrt(6)`` with four readings a window, the operator's
    default of a 120 s rate read every 30 s). So the differences are taken between readings a
    rate window apart, whose windows do not overlap.
    """
    k = _lag_steps(r.seen, lag_seconds)
    values = [v for _, v in r.seen[-(max(points, 3) + 2 * (k - 1)) :]]
    d2 = [
        (a - 2 * b + c) / b
        for a, b, c in zip(values, values[k:], values[2 * k :], strict=False)
        if b > 0
    ]
    if len(d2) < 3:
        return 0.0
    mad = statistics.median(abs(x) for x in d2)
    return mad / (0.6745 * math.sqrt(6.0))


def _lag_steps(seen: tuple[tuple[float, float], ...], lag_seconds: float) -> int:
    """How many readings apart two readings are that do not share their ``lag_seconds``."""
    if not math.isfinite(lag_seconds) or lag_seconds <= 0 or len(seen) < 2:
        return 1
    recent = seen[-NOISE_POINTS:]
    spacing = statistics.median(t1 - t0 for (t0, _), (t1, _) in itertools.pairwise(recent))
    if spacing <= 0:
        return 1
    return max(1, min(math.ceil(lag_seconds / spacing - 1e-9), MAX_LAG_STEPS))


def record_prediction(
    r: RecentDemand,
    window_seconds: float,
    peak: float,
    lag_seconds: float = 0.0,
    rising: bool = False,
) -> RecentDemand:
    """Keep the predicted peak of the next ``window_seconds`` to score once they have passed.

    ``lag_seconds``: how long the reading lags the traffic (its rate window). ``rising``: the
    newest reading is a new high of the protection window (see :func:`recent_peak`).

    Traffic starting from nothing is not the forecast's error (as an outage is not): the reading
    shows that step as a climb over its lag, longer still when scrapes are late. So the memory
    stays cold for a sizing window plus the lag, and then until the reading stops climbing (its
    first reading that is not a new high; at most ``keep_seconds``), and scores nothing before.
    """
    if not math.isfinite(peak) or peak <= 0 or window_seconds <= 0 or not r.last_measured:
        return r
    if r.warm_clock is None:
        first = r.first_demand_clock
        lag = max(lag_seconds, 0.0) if math.isfinite(lag_seconds) else 0.0
        if first is None or r.clock_seconds - first < window_seconds + lag:
            return r
        if rising and r.clock_seconds - first < r.keep_seconds:
            return r
        r = replace(r, warm_clock=r.clock_seconds)
    due = r.clock_seconds + window_seconds
    kept = tuple(p for p in r.pending if p[1] > r.clock_seconds - r.keep_seconds)
    return replace(r, pending=(*kept, (r.clock_seconds, due, peak)))


def error_factor(r: RecentDemand, z: float, max_factor: float = 2.0) -> float:
    """Upper quantile of measured peak / predicted peak: ``exp(mean + z * sigma)``, sigma
    from the errors above the mean only, in ``[1, max_factor]`` (the prior's spread until
    errors have been measured)."""
    sigma = math.sqrt(max(r.err_upper_var, 0.0))
    return min(max(math.exp(r.err_mean + z * sigma), 1.0), max_factor)
