"""Demand forecasting: damped Holt-Winters with daily seasonality, warm-started from history.

The state is a frozen dataclass; every function returns a new one, so the forecaster is pure
and replayable. Observations arrive at any times; they are averaged into fixed buckets of
``step_seconds`` (bucket ``b`` covers ``[b * step, (b+1) * step)`` of the caller's clock, so
with epoch seconds the daily season is aligned to UTC). Each completed bucket updates::

    pred   = level + phi * trend + season[i]     (i: the profile bucket b falls in)
    level' = alpha * (y - season) + (1 - alpha) * (level + phi * trend)
    trend' = beta * (level' - level) + (1 - beta) * phi * trend
    season'= gamma * (y - level') + (1 - gamma) * season

on ``y = log1p(value)`` by default, which makes the daily season multiplicative (LLM load moves
by a factor over the day, not by a constant) and keeps forecasts positive. Buckets without an
observation advance level and trend without an update. The residual variance of the one-step
errors is tracked (EWMA), so :func:`forecast` can return a conservative upper quantile
``mean + k * sigma_h`` (in log space: a multiplicative band) for SLO safety, capped at
``max_upper_ratio`` times the mean.

With fewer than two seasons of history the season starts at zero and is learnt as data come
(plain damped Holt until then); ``season_seconds=None`` disables it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "ForecastConfig",
    "Forecaster",
    "backtest_mape",
    "forecast",
    "horizon",
    "observe",
    "tune",
    "warm_start",
]


EARLY_ERROR_BOUND = math.log(2.0)
"""Largest one-step error (log space) counted into the residual variance before it is warm."""


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    """Smoothing parameters and the bucket/season lengths."""

    step_seconds: float = 60.0
    season_seconds: float | None = 86400.0
    alpha: float = 0.3  # level
    beta: float = 0.01  # trend
    gamma: float = 0.2  # season (per pass over a profile bucket, see season_bucket_steps)
    season_bucket_steps: int = 1
    """Steps one bucket of the seasonal profile spans (1: one profile value per step).

    Each update moves a profile bucket by gamma, so at 1 the profile keeps about a third of
    one step's noise (EWMA variance gamma / (2 - gamma)): with 1-minute steps, yesterday's
    minute-to-minute noise comes back as today's forecast noise. A bucket of k steps is
    updated k times a day at ``1 - (1 - gamma) ** (1 / k)`` each, so over a day it moves as one
    update of gamma would and averages the k steps' noise."""
    phi: float = 0.9  # trend damping per step
    residual_smoothing: float = 0.02  # EWMA weight of squared one-step errors
    log_space: bool = True
    max_upper_ratio: float = 2.0
    """The upper quantile is at most this many times the mean forecast.

    The residual variance starts from the first one-step error and forgets slowly (on purpose:
    after a shock, stay careful for a while), so one early surge (1,500 -> 12,000 tok/s in a
    minute) would otherwise put the band at 8x the mean for half an hour and size the fleet for
    load nobody sends. Like the HPA's default scale-up policy (at most double per period), the
    band may double the plan, not more; a real surge raises the mean itself within a bucket."""

    def __post_init__(self) -> None:
        if self.season_bucket_steps < 1:
            raise ValueError("season_bucket_steps must be at least 1")

    @property
    def season_steps(self) -> int:
        """Buckets of the seasonal profile per season (1 when seasonality is off)."""
        if not self.season_seconds:
            return 1
        return max(1, round(self.season_seconds / self.step_seconds / self.season_bucket_steps))

    def season_index(self, bucket: int) -> int:
        """The profile bucket that the step bucket ``bucket`` falls in."""
        return (bucket // self.season_bucket_steps) % self.season_steps

    @property
    def season_gamma(self) -> float:
        """gamma per update: a day's updates of a profile bucket move it as one of gamma."""
        if self.season_bucket_steps == 1:
            return self.gamma
        return 1.0 - float((1.0 - self.gamma) ** (1.0 / self.season_bucket_steps))


@dataclass(frozen=True, slots=True)
class Forecaster:
    """Forecaster state. Create with :func:`warm_start` (``warm_start([], config)`` is empty)."""

    config: ForecastConfig
    level: float = 0.0
    trend: float = 0.0
    season: tuple[float, ...] = ()
    residual_var: float = 0.0
    updates: int = 0
    last_bucket: int | None = None  # last completed (applied) bucket
    open_bucket: int | None = None  # bucket being accumulated
    open_sum: float = 0.0
    open_count: int = 0
    open_newest: float = 0.0
    """The newest observation in the open bucket (its mean lags a ramp within it)."""
    last_value: float = 0.0

    @property
    def ready(self) -> bool:
        """Whether at least one bucket has been applied."""
        return self.updates > 0


def _fwd(cfg: ForecastConfig, x: float) -> float:
    x = max(x, 0.0)
    return math.log1p(x) if cfg.log_space else x


def _inv(cfg: ForecastConfig, y: float) -> float:
    return max(math.expm1(y), 0.0) if cfg.log_space else max(y, 0.0)


def _apply(f: Forecaster, bucket: int, value: float) -> Forecaster:
    """Apply one completed bucket (advancing over empty buckets first)."""
    cfg = f.config
    m = cfg.season_steps
    season = list(f.season) if f.season else [0.0] * m
    y = _fwd(cfg, value)
    if f.updates == 0:
        s0 = season[cfg.season_index(bucket)]
        return replace(
            f,
            level=y - s0,
            trend=0.0,
            season=tuple(season),
            updates=1,
            last_bucket=bucket,
            last_value=value,
        )
    level, trend = f.level, f.trend
    last = f.last_bucket if f.last_bucket is not None else bucket - 1
    for _ in range(max(bucket - last - 1, 0)):  # gaps: no observation, no update
        level += cfg.phi * trend
        trend *= cfg.phi
    s = season[cfg.season_index(bucket)]
    pred = level + cfg.phi * trend + s
    err = y - pred
    new_level = cfg.alpha * (y - s) + (1 - cfg.alpha) * (level + cfg.phi * trend)
    new_trend = cfg.beta * (new_level - level) + (1 - cfg.beta) * cfg.phi * trend
    if m > 1:
        g = cfg.season_gamma
        season[cfg.season_index(bucket)] = g * (y - new_level) + (1 - g) * s
    rho = cfg.residual_smoothing if f.updates > 1 else 1.0
    # Winsorise at 4 sigma once warm, so one outage does not blow the quantile up for days.
    # Before that, clip at a doubling (in log space): the first minutes of a new deployment go
    # from a trickle to full load, a level shift that the level absorbs, not noise.
    if f.updates > 20 and f.residual_var > 0:
        bound = 4.0 * math.sqrt(f.residual_var)
        err = min(max(err, -bound), bound)
    elif cfg.log_space:
        err = min(max(err, -EARLY_ERROR_BOUND), EARLY_ERROR_BOUND)
    return replace(
        f,
        level=new_level,
        trend=new_trend,
        season=tuple(season),
        residual_var=(1 - rho) * f.residual_var + rho * err * err,
        updates=f.updates + 1,
        last_bucket=bucket,
        last_value=value,
    )


def observe(f: Forecaster, t_seconds: float, value: float) -> Forecaster:
    """Add one observation at ``t_seconds``. NaN/inf values are ignored; late ones too."""
    if not math.isfinite(value) or not math.isfinite(t_seconds):
        return f
    b = math.floor(t_seconds / f.config.step_seconds)
    if f.open_bucket is None:
        return replace(f, open_bucket=b, open_sum=value, open_count=1, open_newest=value)
    if b < f.open_bucket:
        return f
    if b == f.open_bucket:
        return replace(
            f, open_sum=f.open_sum + value, open_count=f.open_count + 1, open_newest=value
        )
    done = _apply(f, f.open_bucket, _open_value(f))
    return replace(done, open_bucket=b, open_sum=value, open_count=1, open_newest=value)


def _open_value(f: Forecaster) -> float:
    """What the open bucket counts as when it is applied: its mean; for the very first bucket
    of a forecaster with no history, its newest observation. A new deployment's first minute
    usually climbs from nothing (the operator reads every pass, several to a bucket): the
    climb's mean is a level it has already left, and starting there made the first bucket's
    forecast plan below what was measured, then read the climb as an error of the second
    and widen the band (a scale-down, then a scale-up, in the operator's first minutes)."""
    if f.updates == 0:
        return f.open_newest
    return f.open_sum / f.open_count


def _initial_season(cfg: ForecastConfig, buckets: Sequence[tuple[int, float]]) -> tuple[float, ...]:
    """Seasonal profile from whole seasons of history (zeros with fewer than two)."""
    m = cfg.season_steps
    if m <= 1 or not buckets:
        return ()
    first, last = buckets[0][0], buckets[-1][0]
    if last - first + 1 < 2 * m * cfg.season_bucket_steps:
        return ()
    sums = [0.0] * m
    counts = [0] * m
    total = 0.0
    n = 0
    for b, v in buckets:
        y = _fwd(cfg, v)
        sums[cfg.season_index(b)] += y
        counts[cfg.season_index(b)] += 1
        total += y
        n += 1
    mean = total / n
    return tuple((sums[i] / counts[i] - mean) if counts[i] else 0.0 for i in range(m))


def warm_start(points: Iterable[tuple[float, float]], config: ForecastConfig) -> Forecaster:
    """A forecaster that has seen ``points`` ((t_seconds, value), any order, gaps allowed).

    The season is initialised from the history's average daily profile when it spans two
    seasons or more, then every bucket is replayed through the update equations.
    """
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    newest = (-math.inf, 0.0)
    for t, v in points:
        if not (math.isfinite(t) and math.isfinite(v)):
            continue
        b = math.floor(t / config.step_seconds)
        sums[b] = sums.get(b, 0.0) + v
        counts[b] = counts.get(b, 0) + 1
        newest = max(newest, (t, v))
    buckets = [(b, sums[b] / counts[b]) for b in sorted(sums)]
    f = Forecaster(config=config, season=_initial_season(config, buckets))
    if not buckets:
        return f
    for b, v in buckets[:-1]:
        f = _apply(f, b, v)
    b_last, v_last = buckets[-1]
    # The newest bucket stays open: more observations for it may still come.
    return replace(
        f,
        open_bucket=b_last,
        open_sum=v_last * counts[b_last],
        open_count=counts[b_last],
        open_newest=newest[1],
    )


def forecast(f: Forecaster, steps: int, k_sigma: float = 0.0) -> tuple[float, ...]:
    """Mean forecast (``k_sigma`` = 0) or upper quantile for the ``steps`` buckets after now.

    The bucket being accumulated now is applied tentatively (as if complete), so index 0 is
    the next bucket. An empty forecaster repeats the open bucket's mean (or zeros).
    """
    cfg = f.config
    if steps <= 0:
        return ()
    if f.open_count and f.open_bucket is not None:
        f = _apply(f, f.open_bucket, _open_value(f))
    if not f.ready:
        return tuple([0.0] * steps)
    m = cfg.season_steps
    season = f.season or (0.0,) * m
    start = (f.last_bucket if f.last_bucket is not None else 0) + 1
    sigma1 = math.sqrt(max(f.residual_var, 0.0))
    out: list[float] = []
    damp = 0.0
    phi_h = 1.0
    for h in range(1, steps + 1):
        phi_h *= cfg.phi
        damp += phi_h
        mu = f.level + damp * f.trend + season[cfg.season_index(start + h - 1)]
        sigma = sigma1 * math.sqrt(1.0 + (h - 1) * cfg.alpha * cfg.alpha)
        value = _inv(cfg, mu + k_sigma * sigma)
        if k_sigma > 0:
            value = min(value, cfg.max_upper_ratio * _inv(cfg, mu))
        out.append(value)
    return tuple(out)


def horizon(f: Forecaster, steps: int, k_sigma: float = 0.0) -> tuple[float, ...]:
    """What the planner wants: index 0 = now, then the next ``steps - 1`` buckets.

    Index 0 is the load seen now (the newest observation), raised to the next bucket's
    forecast if that is higher; a surge is never planned below. (Not the current bucket's
    mean so far: the operator observes every pass, several to a bucket, and the mean lags a
    climb within the bucket; the replay observes once a bucket, where the two agree.)
    """
    if steps <= 0:
        return ()
    fc = forecast(f, steps, k_sigma)
    now = f.open_newest if f.open_count else fc[0]
    return (max(now, fc[0]), *fc[: steps - 1])


def backtest_mape(
    points: Sequence[tuple[float, float]],
    config: ForecastConfig,
    split_seconds: float,
    steps_ahead: int,
    k_sigma: float = 0.0,
    min_actual: float = 0.0,
) -> tuple[float, float, float]:
    """Walk-forward test: warm-start on points before ``split_seconds``, then, after each
    later point, forecast ``steps_ahead`` buckets ahead.

    Returns (forecast MAPE %, last-value MAPE %, share of actuals at or below the forecast).
    Actuals at or below ``min_actual`` are not scored (gaps, outages).
    """
    pts = sorted(points)
    f = warm_start([p for p in pts if p[0] < split_seconds], config)
    test = [p for p in pts if p[0] >= split_seconds]
    err = 0.0
    naive = 0.0
    covered = 0
    n = 0
    for i, (t, v) in enumerate(test):
        f = observe(f, t, v)
        if i + steps_ahead >= len(test):
            break
        actual = test[i + steps_ahead][1]
        if actual <= min_actual:
            continue
        pred = forecast(f, steps_ahead, k_sigma)[steps_ahead - 1]
        err += abs(pred - actual) / actual
        naive += abs(v - actual) / actual
        covered += pred >= actual
        n += 1
    if n == 0:
        return math.nan, math.nan, math.nan
    return 100.0 * err / n, 100.0 * naive / n, covered / n


def tune(
    points: Sequence[tuple[float, float]],
    config: ForecastConfig,
    steps_ahead: int = 1,
    min_actual: float = 0.0,
) -> ForecastConfig:
    """Pick alpha and gamma (gamma 0 = no season) by backtest on the history itself.

    The first two thirds warm up, the last third scores; deterministic, a small grid. Returns
    ``config`` unchanged when the history is too short to score.
    """
    pts = sorted(points)
    if len(pts) < 12:
        return config
    split = pts[(2 * len(pts)) // 3][0]
    best = config
    best_err = math.inf
    for alpha in (0.3, 0.5, 0.7, 0.9):
        for gamma in (0.0, 0.1, 0.3):
            cand = replace(config, alpha=alpha, gamma=gamma)
            if gamma == 0.0:
                cand = replace(cand, season_seconds=None)
            err, _, _ = backtest_mape(pts, cand, split, steps_ahead, min_actual=min_actual)
            if math.isfinite(err) and err < best_err - 1e-12:
                best, best_err = cand, err
    return best
