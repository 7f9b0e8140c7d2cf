"""What counts as a rise of demand (forecast/recent.py's rise_threshold): a steady ramp, however
steep, is one; a recovery within the readings' own noise is not."""

from __future__ import annotations

import math
import random

import pytest

from wattscale.forecast.recent import RISE_TOLERANCE, RecentDemand, observe_recent, rise_threshold

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
