"""Demand at 1-minute resolution: a rate series gets the per-request traces' burstiness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wattscale.sim.load import build_load, burstiness_factors, read_trace

pytestmark = pytest.mark.unit


def _rate_series(path: Path) -> Path:
    rows = ["t_start_s,rate_rps"] + [f"{600 * k},{10 + (k % 6)}" for k in range(144)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_the_shipped_factors_are_real_minute_to_minute_variation() -> None:
    f = burstiness_factors()
    assert f.size >= 100
    assert float(np.mean(f)) == pytest.approx(1.0, abs=0.01)
    assert 0.05 < float(np.std(f)) < 0.3


def test_a_rate_series_gets_bursts_and_keeps_its_peak_scaling(tmp_path: Path) -> None:
    shape = read_trace(_rate_series(tmp_path / "rates.csv"))
    smooth = build_load(shape, 1440, 7000.0)
    bursty = build_load(shape, 1440, 7000.0, burst=burstiness_factors())
    assert float(bursty.output_tokens_per_s.max()) == pytest.approx(7000.0)
    step = lambda x: float(np.mean(np.abs(np.diff(x))))  # noqa: E731
    assert step(bursty.output_tokens_per_s) > 5 * step(smooth.output_tokens_per_s)
    # Requests follow tokens minute by minute.
    ratio = bursty.requests_per_s / bursty.output_tokens_per_s
    assert np.allclose(ratio, ratio[0])


def test_a_per_request_trace_keeps_its_own_burstiness(tmp_path: Path) -> None:
    rows = ["timestamp,t_rel_s,context_tokens,generated_tokens"]
    rows += [f"x,{t},100,{50 + (t % 7)}" for t in range(0, 3600, 2)]
    path = tmp_path / "req.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    shape = read_trace(path)
    plain = build_load(shape, 120, 7000.0)
    with_burst = build_load(shape, 120, 7000.0, burst=burstiness_factors())
    assert np.array_equal(plain.output_tokens_per_s, with_burst.output_tokens_per_s)


def test_a_per_request_trace_is_tiled_in_whole_minutes(tmp_path: Path) -> None:
    """A trace ends at its last request, so its last minute is cut short (Azure's 59th holds
    22 s): kept, tiling would put a dip the data do not have at every tile boundary."""
    rows = ["timestamp,t_rel_s,context_tokens,generated_tokens"]
    rows += [f"x,{t},100,50" for t in range(0, 200, 2)]  # every 2 s, the last at 198 s
    path = tmp_path / "req.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    shape = read_trace(path)
    assert shape.output_tokens_per_s.size == 3  # minutes 0-2; 180-198 s is dropped
    tiled = build_load(shape, 12, 7000.0).output_tokens_per_s
    assert float(tiled.min()) == pytest.approx(float(tiled.max()))  # no dip at the seams


def test_the_minutes_before_the_start_continue_the_tiling_at_the_periods_scale(
    tmp_path: Path,
) -> None:
    # A deployment that was running had measured the trace's minutes before the start: the
    # tiling run backwards, scaled as the period is (its busiest minute sets the scale, not
    # the history's), and the period itself is unchanged by it.
    shape = read_trace(_rate_series(tmp_path / "rates.csv"))  # one day of 10-minute windows
    plain = build_load(shape, 720, 7000.0, tz_offset_hours=2.0, burst=burstiness_factors())
    load = build_load(
        shape, 720, 7000.0, tz_offset_hours=2.0, burst=burstiness_factors(), history_minutes=1440
    )
    assert np.array_equal(load.output_tokens_per_s, plain.output_tokens_per_s)
    assert load.history_tokens_per_s.shape == (1440,)
    smooth = build_load(shape, 1440, 7000.0, history_minutes=1440)
    # The trace is one day long: the day before the start is the same day, tiled.
    assert np.allclose(smooth.history_tokens_per_s, smooth.output_tokens_per_s)
    assert float(load.output_tokens_per_s.max()) == pytest.approx(7000.0)
    assert float(load.history_tokens_per_s.min()) > 0
    assert float(plain.history_tokens_per_s.shape[0]) == 0
