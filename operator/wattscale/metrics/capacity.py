"""Online capacity learning: output tokens/s one replica serves while the latency SLO holds.

Pure (numpy only, no I/O), so the planner and the simulator can use it as well.

Model. Let ``x`` be the output tokens/s per replica in a window and ``r`` the window's SLO
ratio, ``max(ttft_p95 / ttft_slo, tpot_p95 / tpot_slo)``: the SLO holds when ``r <= 1``. Window
p95s are noisy, so around the boundary some windows meet the SLO and some do not. The capacity
``c`` is the load at which a share ``window_violation_target`` (default 20 %) of windows
violate: below one half, it keeps a margin for that noise so the long-run p95 holds too. We keep
a posterior over ``log c`` on a grid:

* prior: log-normal around the user's hint (``sigma_log`` 0.5: "right within a factor ~2");
* boundary evidence: every informative window votes "met" or "violated" with probability
  ``logistic((log x - log c50) / s)`` mixed with an outlier rate, so a single odd window (a burst
  of long prompts, a GC pause) cannot move the estimate far; ``c50`` is where half the windows
  violate and ``s`` the width of the transition, learned over a small grid (marginalised), with
  ``log c = log c50 + s * logit(target)``;
* a robust curve term: the windows below saturation are fitted (Student-t loss on log r) by the
  queueing-shaped curve ``r(x) = a / (1 - (1 - a) x / c50)``, profiled over ``a``, TTFT's
  ratio and TPOT's each on its own (``c50`` is the nearer of their boundaries): a long
  prompt's prefill holds TTFT's ratio high and flat, and one curve through the larger of the
  two would read that flat start as a boundary far away. It lets loads below the boundary say
  how far away the boundary is; it is an extrapolation, so it counts half as much as the
  boundary votes, and it is where the estimate comes from when the load never reached the
  boundary (then it tends to be conservative for latency curves that steepen late, and
  optimistic for ones that are flat and then fall off a cliff);
* an exploration ceiling (:func:`exploration_ceiling`): above the hint, the estimate reaches
  at most one step past the loads at which the SLO was met, as far as the latency measured
  there says the boundary can be. Met windows alone say the capacity is above them, not how
  far, and the prior's spread would otherwise carry the median far past anything seen.

Windows that say nothing about capacity are refused, with a reason: no load (tokens/s below a
floor or a small fraction of the loads seen), missing latency, violations at low load
("saturated but idle": cold start, a stuck engine, a queue of huge prompts with little output),
which would otherwise teach a capacity near zero, and transients. A window is steady-state
evidence only if the load per replica it reports is the load its latencies answer to. Let ``W``
be its length (the ``rate()`` window) and ``B`` its p95 TTFT capped at
``transient_backlog_max_windows x W`` (the requests that got their first token in it arrived
up to ``B`` earlier). It is refused as ``transient`` when

* the replica count changed within ``(1 + transient_settle_windows) x W`` before its end (new
  replicas count fully but their counters cover part of the window and their batch is still
  filling, removed ones leave their counts behind: tokens/s per replica is wrong), for every
  window; for a violating window also when it changed within ``W + B`` and the queue (waiting
  requests per replica) has not grown since (the latencies are the old backlog, not an
  overload at the current size);
* violating, a neighbour of the same replica count within ``[t - W - B, t + W]`` carried
  ``transient_load_tolerance`` more load per replica (the backlog of that heavier load, or the
  onset of an overload: p95 from the heavy part, tokens/s averaged with the light part), or
  as much less in a window overlapping it by more than half (the load moved within it);
* violating, an earlier window within ``W + B`` was saturated (ratio above
  ``curve_max_ratio``) and worse by ``transient_drain_tolerance`` or with twice the queue: a
  queue draining.

The cap on ``B`` bounds how long violations can be blamed on the past: a deployment that keeps
violating at a steady load and replica count is overloaded, and teaches a lower capacity. Met
windows are refused only around replica changes: an optimistic window is corrected by later
violations, a pessimistic estimate never sees the load that would correct it. Windows are
compared only with those of the same ``source`` (region).

Observations are weighted by recency (half-life) and discounted for autocorrelation (consecutive
windows overlap), so confidence does not grow without bound from one long steady period.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CapacityObservation:
    """One window of one deployment: load per replica and the latency percentiles it got."""

    tokens_per_second_per_replica: float
    ttft_p95_seconds: float | None
    tpot_p95_seconds: float | None
    waiting_requests_per_replica: float | None = None
    replicas: int = 1
    t_seconds: float | None = None
    window_seconds: float | None = None
    """Length of the window the rates and p95s are taken over (the reader's ``rate()`` window);
    None: ``CapacityLearnerConfig.default_window_seconds``."""
    source: str | None = None
    """Where the window was measured (the region): windows are compared with those of the same
    source only, since each region has its own replicas and queues."""
    replicas_changed: bool = False
    """The caller knows the set of serving replicas changed within this window (scaled,
    became Ready, removed, restarted). Changes of ``replicas`` between windows are detected
    without it."""


@dataclass(frozen=True, slots=True)
class LatencySlo:
    """The latency objective the capacity is measured against (either part may be absent)."""

    ttft_p95_seconds: float | None
    tpot_p95_seconds: float | None

    def ratio(self, obs: CapacityObservation) -> float | None:
        """``max(observed / target)`` over the parts both sides have; None if none."""
        parts = [p for p in self.parts(obs) if p is not None]
        return max(parts) if parts else None

    def parts(self, obs: CapacityObservation) -> tuple[float | None, float | None]:
        """(TTFT, TPOT) observed / target, each None where either side lacks it."""

        def part(observed: float | None, target: float | None) -> float | None:
            if not target or observed is None:
                return None
            value = observed / target
            return value if math.isfinite(value) and value >= 0 else None

        return (
            part(obs.ttft_p95_seconds, self.ttft_p95_seconds),
            part(obs.tpot_p95_seconds, self.tpot_p95_seconds),
        )


class Verdict(StrEnum):
    """Why an observation was or was not used."""

    USED = "used"
    NO_LATENCY = "no_latency"
    NO_LOAD = "no_load"
    LOW_LOAD_VIOLATION = "low_load_violation"
    TRANSIENT = "transient"
    """A scale change or a heavier load nearby: the window is not steady-state evidence."""
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class CapacityLearnerConfig:
    """Tuning of the learner; the defaults suit 30-s windows of a production deployment."""

    prior_sigma_log: float = 0.5
    """Prior spread of log capacity around the hint (0.5: a factor ~2.7 at 2 sigma)."""
    no_hint_tokens_per_second: float = 1000.0
    no_hint_sigma_log: float = 2.0
    min_tokens_per_second_per_replica: float = 1.0
    max_tokens_per_second_per_replica: float = 1e7
    """Above this a window is a measurement glitch (counter reset artefact), not load."""
    min_load_fraction: float = 0.05
    """Windows below this fraction of the reference load carry no capacity information."""
    low_load_violation_fraction: float = 0.3
    """Violations below this fraction of the loads where the SLO held (or of the prior, before
    any window met it) are not blamed on load."""
    window_violation_target: float = 0.2
    """The capacity is the load at which this share of windows violates the SLO (0.5: the
    boundary itself). Below 0.5 it absorbs window-to-window noise, so a long-run p95 holds."""
    softness_grid_log: tuple[float, ...] = (0.03, 0.05, 0.08, 0.12, 0.18, 0.27)
    """Candidate widths (in log load) of the met/violated transition; learned from the data."""
    softness_prior_median_log: float = 0.06
    """Prior median of that width (log-normal, sd 0.7): few windows do not imply a wide one."""
    outlier_rate: float = 0.03
    autocorrelation_weight: float = 0.3
    half_life_seconds: float | None = 6 * 3600.0
    max_observations: int = 2000
    curve_max_ratio: float = 2.0
    """Windows with an SLO ratio above this are saturated: boundary votes only, no curve fit."""
    curve_weight: float = 0.5
    """Trust in the curve shape relative to the boundary votes (0 turns the curve off)."""
    latency_noise_log: float = 0.1
    """Typical scatter of a window's log p95 around the curve."""
    min_fit_points: int = 8
    default_window_seconds: float = 120.0
    """Window length assumed for observations that do not say (the operator's rate window)."""
    transient_load_tolerance: float = 0.2
    """A violating window is refused when a neighbouring window carried this much more load
    per replica (0.2: 20 %); smaller than typical window-to-window noise is too strict."""
    transient_settle_windows: float = 0.5
    """After a replica change, windows are refused until it is this many window lengths older
    than their start: new replicas fill their batch, and their ``rate()`` its window."""
    transient_drain_tolerance: float = 0.5
    """A violating window is refused as a draining queue when an earlier window of its span
    was saturated (ratio above ``curve_max_ratio``) and this much worse (0.5: 1.5x)."""
    transient_backlog_max_windows: float = 5.0
    """Cap on the backlog part of the attribution span, in window lengths: violations that
    persist longer than that at a steady load and replica count count as overload."""
    exploration_step_min: float = 0.05
    exploration_step_max: float = 0.25
    """How far above the loads at which the SLO was met the estimate may reach (see
    :func:`exploration_ceiling`): at least this minimum step, at most this maximum one."""
    grid_points: int = 400
    lower_quantile: float = 0.1
    upper_quantile: float = 0.9
    ttft_buckets_seconds: tuple[float, ...] | None = None
    tpot_buckets_seconds: tuple[float, ...] | None = None
    """The bounds of the histogram buckets the windows' p95s were interpolated in
    (``histogram_quantile`` over vLLM's histograms): such a p95 says only that the true one
    lies in its bucket, so the curve fit counts no error for a curve that passes anywhere in
    it. None: the p95s are exact (the replay's)."""


@dataclass(frozen=True, slots=True)
class CapacityEstimate:
    """The learned capacity with its uncertainty.

    ``tokens_per_second_per_replica`` is the posterior median; plan with ``lower_...`` when
    the cost of an SLO miss is high. ``confidence`` in [0, 1] is how much the data narrowed
    the prior (0: nothing learned, the hint stands; 1: the data pin it down).
    """

    tokens_per_second_per_replica: float
    lower_tokens_per_second_per_replica: float
    upper_tokens_per_second_per_replica: float
    confidence: float
    source: str
    """"prior" (no usable data) or "learned"."""
    observations_used: int
    observations_rejected: dict[str, int] = field(default_factory=dict)
    violations_seen: int = 0
    curve_fit_tokens_per_second: float | None = None
    ceiling_tokens_per_second_per_replica: float | None = None
    """The most the data let the estimate claim above the hint (:func:`exploration_ceiling`);
    None when no window met the SLO."""


def _logistic(z: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def theil_sen(x: FloatArray, y: FloatArray, max_points: int = 300) -> tuple[float, float]:
    """Robust line ``y = a + b x`` (median of pairwise slopes); returns (a, b)."""
    n = len(x)
    if n > max_points:
        idx = np.linspace(0, n - 1, max_points).astype(int)
        x, y = x[idx], y[idx]
    dx = x[:, None] - x[None, :]
    dy = y[:, None] - y[None, :]
    mask = np.triu(np.abs(dx) > 1e-12, k=1)
    if not mask.any():
        return float(np.median(y)), 0.0
    b = float(np.median(dy[mask] / dx[mask]))
    a = float(np.median(y - b * x))
    return a, b


def latency_backlog_seconds(
    ttft_p95_seconds: float | None, window_seconds: float, config: CapacityLearnerConfig
) -> float:
    """How long before its own window a latency reading reaches: its p95 TTFT (a request that
    got its first token in the window arrived that long before), capped at
    ``transient_backlog_max_windows`` windows; 0 when the TTFT is unknown."""
    if ttft_p95_seconds is None or not math.isfinite(ttft_p95_seconds):
        return 0.0
    cap = config.transient_backlog_max_windows * window_seconds
    return min(max(0.0, ttft_p95_seconds), cap)


def classify(
    obs: CapacityObservation,
    slo: LatencySlo,
    load_reference_tokens_per_second: float,
    violation_reference_tokens_per_second: float,
    config: CapacityLearnerConfig,
    transient: bool = False,
) -> tuple[Verdict, float | None]:
    """Decide whether a window informs capacity; returns (verdict, SLO ratio).

    ``load_reference`` sets the no-load floor; ``violation_reference`` (the load at which the
    SLO has been seen to hold, else the prior) decides whether a violation can be blamed on load.
    ``transient`` is the verdict of :func:`transient_windows` for this window.
    """
    x = obs.tokens_per_second_per_replica
    if not math.isfinite(x) or x < 0 or x > config.max_tokens_per_second_per_replica:
        return Verdict.INVALID, None
    r = slo.ratio(obs)
    if r is None:
        return Verdict.NO_LATENCY, None
    if x < config.min_tokens_per_second_per_replica or x < (
        config.min_load_fraction * load_reference_tokens_per_second
    ):
        return Verdict.NO_LOAD, r
    if r > 1.0 and x < config.low_load_violation_fraction * violation_reference_tokens_per_second:
        return Verdict.LOW_LOAD_VIOLATION, r
    if transient:
        return Verdict.TRANSIENT, r
    return Verdict.USED, r


def transient_windows(
    observations: list[CapacityObservation],
    slo: LatencySlo,
    config: CapacityLearnerConfig | None = None,
) -> list[bool]:
    """For each window (same order), whether it is a transient (see the module docstring).

    Windows are compared only with windows of the same ``source`` (each region's replicas are
    their own), put in time order; those without ``t_seconds`` are transient only when they
    say ``replicas_changed``. A window is judged with its neighbours on both sides, so the
    newest one may be used now and refused once the next one shows it was the onset of a step.
    Pure; O(n x windows per span).
    """
    cfg = config or CapacityLearnerConfig()
    out = [o.replicas_changed for o in observations]
    groups: dict[str | None, list[int]] = {}
    for i, o in enumerate(observations):
        if o.t_seconds is not None and math.isfinite(o.t_seconds):
            groups.setdefault(o.source, []).append(i)
    for members in groups.values():
        timed = sorted(members, key=lambda i: float(observations[i].t_seconds or 0.0))
        _flag_transients(observations, timed, slo, cfg, out)
    return out


def _flag_transients(
    observations: list[CapacityObservation],
    timed: list[int],
    slo: LatencySlo,
    cfg: CapacityLearnerConfig,
    out: list[bool],
) -> None:
    """:func:`transient_windows` for the windows ``timed`` (indices, time order) of one source."""
    times = [float(observations[i].t_seconds or 0.0) for i in timed]
    loads = [observations[i].tokens_per_second_per_replica for i in timed]
    ratios = [slo.ratio(observations[i]) for i in timed]
    # Scale events: the earliest instant a change between two windows can have happened (just
    # after the previous window ended), or the window's start when the caller flags one.
    # Windows are compared by load only within a segment of constant replicas: across a change
    # the load per replica moves because the divisor did, which the change rule covers.
    events: list[float] = []
    segment: list[int] = []
    for k, i in enumerate(timed):
        o = observations[i]
        changed = k > 0 and observations[timed[k - 1]].replicas != o.replicas
        if o.replicas_changed:
            events.append(times[k] - _window_of(o, cfg))
        if changed:
            events.append(times[k - 1])
        segment.append((segment[-1] if segment else 0) + int(changed or o.replicas_changed))
    events.sort()
    tol = 1.0 + cfg.transient_load_tolerance
    for k, i in enumerate(timed):
        o = observations[i]
        t, w, x, r = times[k], _window_of(o, cfg), loads[k], ratios[k]
        violated = r is not None and r > 1.0
        backlog = latency_backlog_seconds(o.ttft_p95_seconds, w, cfg) if violated else 0.0
        start = t - w - max(backlog, cfg.transient_settle_windows * w)
        # A replica change within the window: its load per replica is wrong. A change before
        # it but within the backlog part of the span: its latencies may be the old backlog,
        # unless the queue has grown since the change (overload at the current size).
        j = bisect.bisect_left(events, start)
        if j < len(events) and events[j] < t:
            settle = (1.0 + cfg.transient_settle_windows) * w
            in_window = events[bisect.bisect_left(events, t) - 1] >= t - settle
            if in_window or not _queue_grew(observations, timed, segment, k):
                out[i] = True
                continue
        if not violated or r is None or not math.isfinite(x):
            continue
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_right(times, t + w)
        for m in range(lo, hi):
            if m == k or segment[m] != segment[k] or not math.isfinite(loads[m]):
                continue
            overlaps = abs(times[m] - t) < 0.45 * w
            rm = ratios[m]
            if (
                # a heavier load over the span or the next window: its backlog, or an onset
                loads[m] > x * tol
                # a lighter load in an overlapping window: the load moved within this one
                or (overlaps and loads[m] * tol < x)
                # a queue draining: an earlier window was saturated, and worse than this one
                # or with at least twice the queue
                or (
                    times[m] < t
                    and rm is not None
                    and rm > cfg.curve_max_ratio
                    and (
                        rm > r * (1.0 + cfg.transient_drain_tolerance)
                        or _queue_halved(observations[timed[m]], o)
                    )
                )
            ):
                out[i] = True
                break


def _queue_grew(
    observations: list[CapacityObservation], timed: list[int], segment: list[int], k: int
) -> bool:
    """Whether waiting requests per replica grew since the first window of ``k``'s segment."""
    k0 = k
    while k0 > 0 and segment[k0 - 1] == segment[k]:
        k0 -= 1
    first = observations[timed[k0]].waiting_requests_per_replica
    now = observations[timed[k]].waiting_requests_per_replica
    if k0 == k or first is None or now is None:
        return False
    return now > first * 1.05 and now - first >= 1.0


def _queue_halved(before: CapacityObservation, after: CapacityObservation) -> bool:
    """Whether waiting requests per replica fell to half or less (from at least one)."""
    w0, w1 = before.waiting_requests_per_replica, after.waiting_requests_per_replica
    if w0 is None or w1 is None:
        return False
    return w0 >= 1.0 and w1 <= 0.5 * w0


def _window_of(obs: CapacityObservation, cfg: CapacityLearnerConfig) -> float:
    w = obs.window_seconds
    if w is None or not math.isfinite(w) or w <= 0:
        return cfg.default_window_seconds
    return float(w)


def _curve_profile_loglik(
    grid: FloatArray,
    logx: FloatArray,
    logr: tuple[FloatArray, FloatArray],
    w: FloatArray,
    noise_log: float,
) -> FloatArray:
    """Profile log-likelihood over log c of the curve ``r = a / (1 - (1 - a) x / c)``.

    ``logr`` is each window's log r as an interval (low, high): equal ends for an exact p95,
    the bucket's ends for one read from a histogram. Residuals (how far the curve passes
    outside the interval) get a Student-t (nu=4) loss, so outlying windows count little.
    Returns an array like ``grid``, maximised over ``a`` for each ``c``.
    """
    low, high = logr
    if len(logx) > 200:
        idx = np.linspace(0, len(logx) - 1, 200).astype(int)
        logx, low, high, w = logx[idx], low[idx], high[idx], w[idx]
    # Geometric in a: a flat part (TTFT under long prompts) must find an ``a`` near its own
    # level, or the fit bends the curve up to reach it and reports a boundary that is not there.
    a_values = np.geomspace(0.005, 0.95, 32)
    # r = a / (1 - (1 - a) x / c), its log computed in place over (c, a, window): this is
    # most of an estimate's time. Past saturation the prediction is log(1e3).
    ratio = np.exp(logx[None, :] - grid[:, None])[:, None, :]
    pred = np.multiply((1.0 - a_values)[None, :, None], ratio)
    np.subtract(1.0, pred, out=pred)
    saturated = pred <= 1e-3
    np.log(np.maximum(pred, 1e-3, out=pred), out=pred)
    np.subtract(np.log(a_values)[None, :, None], pred, out=pred)
    pred[saturated] = math.log(1e3)
    # Student-t (nu = 4) loss of the residuals in log r, summed with the windows' weights.
    nu = 4.0
    pred -= np.clip(pred, low[None, None, :], high[None, None, :])
    pred *= pred
    pred *= 1.0 / (noise_log * noise_log * nu)
    np.log1p(pred, out=pred)
    total = -0.5 * (nu + 1.0) * (pred @ w)
    return np.asarray(total.max(axis=1), dtype=np.float64)


def _curve_term(
    grid: FloatArray,
    logx: FloatArray,
    part_logr: list[FloatArray],
    w: FloatArray,
    cfg: CapacityLearnerConfig,
    part_bounds: list[tuple[FloatArray, FloatArray]],
) -> FloatArray | None:
    """The curve term over ``grid`` (log c50), weighted, or None when no part has enough
    windows below saturation (``curve_max_ratio``).

    A robust fit of the queueing-shaped curve r(x) = a / (1 - (1 - a) x / c50) (r(0) = a,
    r(c50) = 1, blowing up at saturation), profiled over a: it lets loads below the boundary
    say how far the boundary is. TTFT and TPOT are fitted each on its own, as they are
    different curves: a long prompt's prefill holds TTFT's ratio high and flat at low load
    while TPOT climbs to its boundary, and one curve through their maximum reads that flat
    start as a boundary far away. The SLO breaks at the nearer boundary, c50 = min(c_ttft,
    c_tpot): the profile of one at c50 plus the best of the other at or beyond it.
    ``part_bounds``: each part's log r as (low, high) intervals (both ends ``part_logr`` where
    the p95 is exact, :func:`_bucket_bounds`)."""
    if cfg.curve_weight <= 0:
        return None
    profiles = []
    for logr, (low, high) in zip(part_logr, part_bounds, strict=True):
        fit = np.isfinite(logr) & (logr <= math.log(cfg.curve_max_ratio))
        if int(fit.sum()) >= cfg.min_fit_points:
            interval = (low[fit], high[fit])
            profiles.append(
                _curve_profile_loglik(grid, logx[fit], interval, w[fit], cfg.latency_noise_log)
            )
    if not profiles:
        return None
    combined = profiles[0]
    for other in profiles[1:]:
        beyond_combined = np.maximum.accumulate(combined[::-1])[::-1]
        beyond_other = np.maximum.accumulate(other[::-1])[::-1]
        combined = np.maximum(combined + beyond_other, other + beyond_combined)
    return np.asarray(cfg.curve_weight * combined, dtype=np.float64)


def estimate_capacity(
    observations: Iterable[CapacityObservation],
    slo: LatencySlo,
    hint_tokens_per_second: float | None,
    config: CapacityLearnerConfig | None = None,
    now_seconds: float | None = None,
) -> CapacityEstimate:
    """Posterior capacity (output tokens/s per replica) from windows and the hint (prior)."""
    cfg = config or CapacityLearnerConfig()
    prior_mu, prior_sigma = _prior(hint_tokens_per_second, cfg)
    used = _usable_windows(list(observations), slo, prior_mu, cfg)
    if not used.x:
        med = math.exp(prior_mu)
        lo = math.exp(prior_mu - 1.2816 * prior_sigma)
        hi = math.exp(prior_mu + 1.2816 * prior_sigma)
        return CapacityEstimate(med, lo, hi, 0.0, "prior", 0, used.rejected)

    logx = np.log(np.array(used.x, dtype=np.float64))
    part_logr = [_log_part(used.parts, i) for i in range(2)]
    targets = (slo.ttft_p95_seconds, slo.tpot_p95_seconds)
    buckets = (cfg.ttft_buckets_seconds, cfg.tpot_buckets_seconds)
    part_bounds = [_bucket_bounds(part_logr[i], targets[i], buckets[i]) for i in range(2)]
    logr = np.fmax(*part_logr)  # the SLO ratio: the larger part (a used window has one)
    w = _window_weights(used.t, now_seconds, cfg)
    lo_grid = min(prior_mu - 4 * prior_sigma, float(logx.min())) - 1.0
    hi_grid = max(prior_mu + 4 * prior_sigma, float(logx.max())) + 1.0
    grid = np.linspace(lo_grid, hi_grid, cfg.grid_points)  # log of the target capacity
    logpost, curve_c = _log_posterior(
        grid, prior_mu, prior_sigma, logx, logr, w, cfg, part_logr, part_bounds
    )

    post = np.exp(logpost - logpost.max())
    post /= post.sum()
    cdf = np.cumsum(post)

    def quantile(q: float) -> float:
        return float(math.exp(float(np.interp(q, cdf, grid))))

    mean = float((post * grid).sum())
    sd = float(math.sqrt(max(0.0, float((post * (grid - mean) ** 2).sum()))))
    ceiling = exploration_ceiling(logx, logr, prior_mu, cfg)
    median = quantile(0.5) if ceiling is None else min(quantile(0.5), ceiling)
    return CapacityEstimate(
        tokens_per_second_per_replica=median,
        lower_tokens_per_second_per_replica=min(quantile(cfg.lower_quantile), median),
        upper_tokens_per_second_per_replica=max(quantile(cfg.upper_quantile), median),
        confidence=max(0.0, min(1.0, 1.0 - sd / prior_sigma)),
        source="learned",
        observations_used=len(used.x),
        observations_rejected=used.rejected,
        violations_seen=int((logr > 0).sum()),
        curve_fit_tokens_per_second=curve_c,
        ceiling_tokens_per_second_per_replica=ceiling,
    )


def exploration_ceiling(
    logx: FloatArray, logr: FloatArray, prior_mu: float, cfg: CapacityLearnerConfig
) -> float | None:
    """The most the estimate may claim, given the windows' log loads and log SLO ratios.

    A window that met the SLO says the capacity lies above its load, not how far: under the
    prior's spread, that one-sided evidence alone moves the posterior median far above
    anything seen (a log-normal prior of sigma 0.5 cut at 0.94x its median has its median at
    1.3x), and a plan at that capacity loads replicas past their boundary until violations
    pull it back. So above the hint the estimate reaches at most one step past the loads
    proven: from a met window at load x with SLO ratio r, to where the latency reaches the
    SLO if it keeps growing as it has, ``x * r ** (-1 / e)`` with ``e`` the elasticity of the
    ratio to load measured over the windows below saturation (Theil-Sen, at least 1: a flat
    latency, then a cliff, shows nothing steeper), the step kept within
    ``exploration_step_min..max``. Below the hint the posterior is free, and violations pull
    it down as before; the planner's next loads are the next step's proof.
    None when no window met the SLO."""
    met = logr <= 0.0
    if not met.any():
        return None
    fit = np.isfinite(logr) & (logr <= math.log(cfg.curve_max_ratio))
    elasticity = 1.0
    if int(fit.sum()) >= 3 and float(np.ptp(logx[fit])) > 0.0:
        elasticity = max(1.0, theil_sen(logx[fit], logr[fit])[1])
    step = np.clip(
        np.exp(-logr[met] / elasticity),
        1.0 + cfg.exploration_step_min,
        1.0 + cfg.exploration_step_max,
    )
    return max(math.exp(prior_mu), float((np.exp(logx[met]) * step).max()))


def _bucket_bounds(
    logr: FloatArray, target_seconds: float | None, buckets: tuple[float, ...] | None
) -> tuple[FloatArray, FloatArray]:
    """Each log ratio as the (low, high) log ratios of the histogram bucket its p95 fell in:
    ``histogram_quantile`` interpolates within a bucket, so the true p95 lies anywhere in it.
    Exact (both ends the ratio) without buckets, for NaN, and past the last finite bound."""
    if not buckets or not target_seconds or target_seconds <= 0:
        return logr, logr
    bounds = np.array(sorted(buckets), dtype=np.float64)
    seconds = np.exp(logr) * target_seconds
    i = np.searchsorted(bounds, np.nan_to_num(seconds, nan=0.0), side="left")
    inside = np.isfinite(logr) & (i < bounds.size)
    top = bounds[np.minimum(i, bounds.size - 1)]
    bottom = np.where(i > 0, bounds[np.maximum(i - 1, 0)], 0.0)
    with np.errstate(divide="ignore"):
        low = np.where(inside, np.log(bottom / target_seconds), logr)
    high = np.where(inside, np.log(top / target_seconds), logr)
    return low, high


def _log_part(parts: list[tuple[float | None, float | None]], index: int) -> FloatArray:
    """Log of one part (0: TTFT, 1: TPOT) of each window's ratio, NaN where it is absent."""
    values = [part[index] for part in parts]
    return np.log(
        np.array([np.nan if v is None else max(v, 1e-6) for v in values], dtype=np.float64)
    )


def _prior(hint_tokens_per_second: float | None, cfg: CapacityLearnerConfig) -> tuple[float, float]:
    """The prior's (mu, sigma) in log tokens/s: the hint's, or the wide no-hint default."""
    if (
        hint_tokens_per_second
        and math.isfinite(hint_tokens_per_second)
        and hint_tokens_per_second > 0
    ):
        hint = min(max(hint_tokens_per_second, 1e-3), cfg.max_tokens_per_second_per_replica)
        return math.log(hint), cfg.prior_sigma_log
    return math.log(cfg.no_hint_tokens_per_second), cfg.no_hint_sigma_log


@dataclass
class _Usable:
    """The windows the posterior uses (load per replica, SLO ratio parts, time) and why
    others not."""

    x: list[float] = field(default_factory=list)
    parts: list[tuple[float | None, float | None]] = field(default_factory=list)
    """Each window's (TTFT, TPOT) ratio: the SLO ratio is the larger, and the curve term
    fits each on its own."""
    t: list[float | None] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)


def _usable_windows(
    obs: list[CapacityObservation], slo: LatencySlo, prior_mu: float, cfg: CapacityLearnerConfig
) -> _Usable:
    """Classify every window (see :func:`classify`) against the two references it needs."""
    loads = np.array(
        [
            o.tokens_per_second_per_replica
            for o in obs
            if 0 <= o.tokens_per_second_per_replica <= cfg.max_tokens_per_second_per_replica
        ],
        dtype=np.float64,
    )
    # The reference load for "is this window loaded at all": the prior median, but no more
    # than the loads actually seen (a hint 10x too high must not make every window "idle").
    busy = loads[loads >= cfg.min_tokens_per_second_per_replica]
    reference = math.exp(prior_mu)
    if busy.size:
        reference = min(reference, float(np.quantile(busy, 0.95)))

    transient = transient_windows(obs, slo, cfg)

    # The reference for "is this violation due to load": loads at which the SLO was met
    # (a high quantile), else the prior median.
    met_loads = [
        o.tokens_per_second_per_replica
        for o, moving in zip(obs, transient, strict=True)
        if not moving
        and (ratio := slo.ratio(o)) is not None
        and ratio <= 1.0
        and cfg.min_tokens_per_second_per_replica
        <= o.tokens_per_second_per_replica
        <= cfg.max_tokens_per_second_per_replica
    ]
    violation_reference = (
        float(np.quantile(np.array(met_loads), 0.9)) if met_loads else math.exp(prior_mu)
    )

    used = _Usable()
    for o, moving in zip(obs, transient, strict=True):
        verdict, r = classify(o, slo, reference, violation_reference, cfg, moving)
        if verdict is not Verdict.USED or r is None:
            used.rejected[verdict.value] = used.rejected.get(verdict.value, 0) + 1
            continue
        used.x.append(o.tokens_per_second_per_replica)
        used.parts.append(slo.parts(o))
        used.t.append(o.t_seconds)
    return used


def _window_weights(
    ts: list[float | None], now_seconds: float | None, cfg: CapacityLearnerConfig
) -> FloatArray:
    """Each window's weight: the autocorrelation discount, halved every half-life of age."""
    w = np.full(len(ts), cfg.autocorrelation_weight, dtype=np.float64)
    if cfg.half_life_seconds and any(t is not None for t in ts):
        latest = now_seconds if now_seconds is not None else max(t for t in ts if t is not None)
        age = np.array([0.0 if t is None else max(0.0, latest - t) for t in ts])
        w = w * np.power(0.5, age / cfg.half_life_seconds)
    return w


def _log_posterior(
    grid: FloatArray,
    prior_mu: float,
    prior_sigma: float,
    logx: FloatArray,
    logr: FloatArray,
    w: FloatArray,
    cfg: CapacityLearnerConfig,
    part_logr: list[FloatArray],
    part_bounds: list[tuple[FloatArray, FloatArray]],
) -> tuple[FloatArray, float | None]:
    """The log posterior of the capacity over ``grid`` (log tokens/s), and the curve fit's
    own capacity (None when too few windows lie below saturation). ``logr`` is each window's
    log SLO ratio (the votes), ``part_logr`` its log TTFT and log TPOT ratio (NaN where absent;
    the curve term), ``part_bounds`` those as histogram-bucket intervals.

    The capacity reported is the load at which a window violates the SLO with probability
    ``window_violation_target``. Windows vote through P(violate | x) = logistic((log x -
    log c50) / s) with an outlier rate, c50 the load where half the windows violate and s the
    width of the transition (window-to-window noise), which is learned over a small grid:
    log c = log c50 + s * logit(target)."""
    log_prior = -0.5 * ((grid - prior_mu) / prior_sigma) ** 2
    target = min(0.5, max(1e-3, cfg.window_violation_target))
    logit_target = math.log(target / (1.0 - target))
    softness = np.array(cfg.softness_grid_log, dtype=np.float64)
    shift_max = float(softness.max()) * abs(logit_target)

    curve_c: float | None = None
    curve_grid = np.linspace(float(grid[0]) - shift_max, float(grid[-1]) + shift_max, 160)
    curve_ll = _curve_term(curve_grid, logx, part_logr, w, cfg, part_bounds)
    if curve_ll is not None:
        curve_c = float(math.exp(curve_grid[int(np.argmax(curve_ll))]))

    # Votes only depend on (log x, met or not, weight): pool them in 1 % load bins.
    sign_all = np.where(logr <= 0.0, 1.0, -1.0)
    keys = np.round(logx / 0.01).astype(np.int64) * 2 + (sign_all > 0)
    uniq, inverse = np.unique(keys, return_inverse=True)
    vote_w = np.bincount(inverse, weights=w)
    vote_x = (uniq // 2).astype(np.float64) * 0.01
    sign = np.where(uniq % 2 == 1, 1.0, -1.0)
    eps = cfg.outlier_rate
    rows = []
    for s_log in softness:
        c50 = grid - s_log * logit_target
        z = sign[None, :] * (c50[:, None] - vote_x[None, :]) / s_log
        p = eps + (1.0 - 2.0 * eps) * _logistic(z)
        s_prior = -0.5 * (math.log(s_log / cfg.softness_prior_median_log) / 0.7) ** 2
        row = log_prior + s_prior + (np.log(p) * vote_w[None, :]).sum(axis=1)
        if curve_ll is not None:
            row = row + np.interp(c50, curve_grid, curve_ll)
        rows.append(row)
    joint = np.array(rows)
    joint -= joint.max()
    logpost: FloatArray = np.log(np.maximum(np.exp(joint).sum(axis=0), 1e-300))
    return logpost, curve_c


class CapacityLearner:
    """Keeps the recent windows of one deployment and answers the current estimate.

    Call :meth:`observe` once per control-loop interval with the windows' readings (see
    :func:`observation_from_readings` in :mod:`wattscale.metrics`), then :meth:`estimate`.
    Changing the SLO or hint just changes the prior/ratios; the windows are kept.
    """

    def __init__(
        self,
        slo: LatencySlo,
        hint_tokens_per_second: float | None,
        config: CapacityLearnerConfig | None = None,
    ) -> None:
        self.slo = slo
        self.hint_tokens_per_second = hint_tokens_per_second
        self.config = config or CapacityLearnerConfig()
        self._observations: deque[CapacityObservation] = deque(maxlen=self.config.max_observations)

    @property
    def observations(self) -> tuple[CapacityObservation, ...]:
        """The windows currently held (oldest first)."""
        return tuple(self._observations)

    def observe(self, obs: CapacityObservation) -> None:
        """Add one window (refused windows are kept too and counted in the estimate)."""
        self._observations.append(obs)

    def observe_many(self, observations: Iterable[CapacityObservation]) -> None:
        """Add several windows (e.g. from the reader's capacity history after a restart)."""
        for obs in observations:
            self._observations.append(obs)

    def estimate(self, now_seconds: float | None = None) -> CapacityEstimate:
        """The current posterior; the hint alone (confidence 0) until data informs it."""
        return estimate_capacity(
            self._observations, self.slo, self.hint_tokens_per_second, self.config, now_seconds
        )
