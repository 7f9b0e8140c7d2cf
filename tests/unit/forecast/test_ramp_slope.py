"""The ramp the sizing extrapolates (forecast/recent.py's ramp_slope): the least-squares slope
of the sizing window's readings, when it clears its standard error: a climb read through bursty
readings is one; noise around a level and a single step are not."""

from __future__ import annotations

import math
import random

import pytest

from wattscale.forecast.recent import NOISE_Z, RecentDemand, observe_recent, ramp_slope

pytestmark = pytest.mark.unit

STEP = 60.0
WINDOW = 420.0  # the sizing window of a 300-s cold start and two 60-s intervals


def _read(values: list[float]) -> RecentDemand:
    r = RecentDemand()
    for i, v in enumerate(values):
        r = observe_recent(r, i * STEP, v)
    return r


def _bursty(values: list[float], sigma: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [v * math.exp(rng.gauss(0.0, sigma)) for v in values]


def test_a_steady_ramp_is_read_at_its_slope_and_level() -> None:
    ramp = [20_000.0 + 1_000.0 * m for m in range(10)]
    slope, level = ramp_slope(_read(ramp), WINDOW, NOISE_Z)
    assert slope * STEP == pytest.approx(1_000.0)
    assert level == pytest.approx(ramp[-1])


def test_a_climb_through_bursty_readings_is_a_ramp() -> None:
    # +4 % a minute with 5 % noise a reading: every few minutes a reading falls back, so the
    # smallest rise between the last three readings (the ramp before) was 0 most of the time.
    climbs = [_bursty([30_000.0 * 1.04**m for m in range(12)], 0.05, seed) for seed in range(20)]
    falls_back = sum(any(b <= a for a, b in zip(c[-3:], c[-2:], strict=False)) for c in climbs)
    assert falls_back >= 5
    slopes = [ramp_slope(_read(c), WINDOW, NOISE_Z)[0] * STEP for c in climbs]
    true_rise = 30_000.0 * 1.04**11 * 0.04
    assert all(s > 0.5 * true_rise for s in slopes)


def test_noise_around_a_level_is_no_ramp() -> None:
    levels = [_bursty([30_000.0] * 12, 0.05, seed) for seed in range(50)]
    found = sum(ramp_slope(_read(v), WINDOW, NOISE_Z)[0] > 0 for v in levels)
    # Two standard errors one-sided: about one window in forty, by chance.
    assert found <= 5


def test_one_step_between_flat_readings_is_no_ramp() -> None:
    slope, level = ramp_slope(_read([20_000.0] * 7 + [30_000.0]), WINDOW, NOISE_Z)
    assert (slope, level) == (0.0, 30_000.0)


def test_too_few_readings_tell_no_slope() -> None:
    assert ramp_slope(_read([1_000.0, 2_000.0, 3_000.0]), WINDOW, NOISE_Z) == (0.0, 3_000.0)
    assert ramp_slope(RecentDemand(), WINDOW, NOISE_Z) == (0.0, 0.0)


def test_readings_that_share_their_rate_window_must_rise_further() -> None:
    # Readings of a 120-s rate every 60 s share half their window, so their noise: the
    # least-squares error, which takes them for independent, is widened by sqrt(2).
    # A slow climb (+0.3 % a minute) through 1 % noise: near the edge of what clears 2 standard
    # errors, so the wider error drops about half the windows that cleared it.
    climbs = [_bursty([30_000.0 * 1.003**m for m in range(12)], 0.01, seed) for seed in range(20)]
    alone = sum(ramp_slope(_read(c), WINDOW, NOISE_Z)[0] > 0 for c in climbs)
    shared = sum(ramp_slope(_read(c), WINDOW, NOISE_Z, lag_seconds=120.0)[0] > 0 for c in climbs)
    assert alone >= 12
    assert shared <= alone - 4
