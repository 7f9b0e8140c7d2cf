"""What counts as a rise of demand (forecast/recent.py's rise_threshold): a steady ramp, however
steep, is one; a recovery within the readings' own noise is not."""

from __future__ import annotations

import math
import random

import pytest

from wattscale.forecast.recent import (
    RISE_TOLERANCE,
    RecentDemand,
    observe_recent,
    reading_noise,
    rise_threshold,
)

pytestmark = pytest.mark.unit


def _read(values: list[float], step_seconds: float = 2.0) -> RecentDemand:
    r = RecentDemand()
    for i, v in enumerate(values):
        r = observe_recent(r, i * step_seconds, v)
    return r


def test_a_steady_ramp_keeps_the_floor() -> None:
    # +5 % a reading for 30 readings: no noise around the trend, so 1 % still makes a rise.
    ramp = [1000.0 * 1.05**i for i in range(30)]
    assert rise_threshold(_read(ramp)) == pytest.approx(RISE_TOLERANCE)
    linear = [1000.0 + 300.0 * i for i in range(30)]
    assert rise_threshold(_read(linear)) == pytest.approx(RISE_TOLERANCE, abs=1e-3)


def test_noisy_readings_raise_it_to_their_noise() -> None:
    rng = random.Random(3)
    sigma = 0.05
    noisy = [7500.0 * math.exp(rng.gauss(0.0, sigma)) for _ in range(30)]
    threshold = rise_threshold(_read(noisy))
    # About exp(2 sigma) - 1 (~10.5 %), estimated from 30 readings.
    assert 0.06 < threshold < 0.16, threshold


def test_a_recovery_after_a_drain_is_not_a_rise() -> None:
    # Readings after replicas were drained elsewhere (the outage e2e, under load): the level
    # under-reads by half for a few passes and over-reads on the way back.
    rng = random.Random(5)
    level = [7500.0 * math.exp(rng.gauss(0.0, 0.03)) for _ in range(24)]
    readings = [*level, 7911.0, 4017.0, 3868.0, 4607.0, 6327.0, 7934.0, 8323.0]
    before = max(readings[-6:-1])  # the protection window before the newest reading
    assert readings[-1] > before * (1 + RISE_TOLERANCE)  # a rise by the fixed floor alone
    assert readings[-1] <= before * (1 + rise_threshold(_read(readings)))


def test_few_readings_use_the_floor() -> None:
    assert rise_threshold(_read([1000.0, 5000.0, 900.0])) == RISE_TOLERANCE


def _rate_readings(
    seconds: int, window_seconds: int, every_seconds: int, seed: int
) -> tuple[list[float], float]:
    """Readings of a constant load like ``rate(x[window])`` read every ``every_seconds``: each
    the mean of the last ``window_seconds`` of noisy per-second token counts (a reading shares
    most of its window with the one before). Also the readings' own log spread."""
    rng = random.Random(seed)
    per_second = [7500.0 * math.exp(rng.gauss(0.0, 0.2)) for _ in range(seconds)]
    readings = [
        sum(per_second[t - window_seconds : t]) / window_seconds
        for t in range(window_seconds, seconds + 1, every_seconds)
    ]
    logs = [math.log(v) for v in readings]
    mean = sum(logs) / len(logs)
    return readings, math.sqrt(sum((x - mean) ** 2 for x in logs) / len(logs))


def test_readings_whose_rate_windows_overlap_are_judged_by_their_whole_noise() -> None:
    # The operator's default reads a 120 s rate every 30 s (the e2e suite: 8 s every 2 s):
    # four readings share a window, so neighbours differ by far less than the noise of one.
    # Against a constant load, a reading that clears the threshold over the protection window's
    # highest is a false surge (and, with two rises before it, a ramp that buys replicas).
    readings, spread = _rate_readings(4000, window_seconds=8, every_seconds=2, seed=11)
    expected = math.exp(2.0 * spread) - 1.0

    def false_rises(lag_seconds: float) -> tuple[int, list[float]]:
        r, rises, thresholds = RecentDemand(), 0, []
        for i, v in enumerate(readings):
            before = max(readings[max(i - 5, 0) : i], default=None)
            threshold = rise_threshold(r, lag_seconds)
            rises += before is not None and i >= 30 and v > before * (1 + threshold)
            thresholds.append(threshold)
            r = observe_recent(r, i * 2.0, v)
        return rises, thresholds[30:]

    blind, blind_thresholds = false_rises(0.0)
    rises, thresholds = false_rises(8.0)
    median = sorted(thresholds)[len(thresholds) // 2]
    blind_median = sorted(blind_thresholds)[len(blind_thresholds) // 2]
    # Read as independent, the noise is understated about sqrt(6) times; a rate window apart,
    # the estimate is the readings' own spread.
    assert blind_median < 0.6 * expected, (blind_median, expected)
    assert 0.7 * expected < median < 1.4 * expected, (median, expected)
    assert rises <= 0.2 * blind, (rises, blind, len(readings))


def test_a_ramp_from_nothing_is_not_noise() -> None:
    # The e2e suite's start: users ramp from 0 to 7,500 tok/s at 250 tok/s a second, read
    # through an 8 s rate window every 2 s; 20 s after the ramp ended, its readings are still
    # among the last 30. A linear ramp has no second difference: only its two kinks (smoothed
    # by the rate window) have some. In log space the ramp's curvature read as 29.6 % of noise.
    per_second = [min(250.0 * t, 7500.0) for t in range(60)]
    readings = [sum(per_second[max(t - 8, 0) : t]) / 8 for t in range(2, 60, 2)]
    assert reading_noise(_read(readings), lag_seconds=8.0) < 0.05
    # Once the kinks are older than the last 30 readings, nothing is left of them.
    settled = _read([*readings, *[7500.0] * 30])
    assert reading_noise(settled, lag_seconds=8.0) == pytest.approx(0.0)
