"""Unit tests: power-model fitting from synthetic DCGM samples, and measured-vs-model power."""

from __future__ import annotations

import random

import pytest

from wattscale.metrics import (
    GpuPowerSample,
    PowerFitConfig,
    PowerModel,
    Reading,
    ReadingStatus,
    fit_power_model,
    fit_power_models,
    power_watts,
)

pytestmark = pytest.mark.unit

H100 = "NVIDIA H100 80GB HBM3"


def samples(
    n: int,
    idle: float,
    peak: float,
    lo: float = 0.0,
    hi: float = 1.0,
    product: str = H100,
    noise: float = 8.0,
    seed: int = 1,
) -> list[GpuPowerSample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        u = rng.uniform(lo, hi)
        out.append(
            GpuPowerSample(product, f"GPU-{i}", u, idle + (peak - idle) * u + rng.gauss(0, noise))
        )
    return out


def test_recovers_idle_and_max_watts() -> None:
    m = fit_power_model(samples(200, 120.0, 690.0), H100)
    assert m.source == "fitted"
    assert m.idle_watts == pytest.approx(120.0, abs=10)
    assert m.max_watts == pytest.approx(690.0, abs=10)
    assert m.confidence == pytest.approx(1.0)
    assert m.watts(0.5) == pytest.approx(405.0, abs=10)


def test_robust_to_outliers() -> None:
    pts = samples(200, 120.0, 690.0)
    rng = random.Random(4)
    pts += [GpuPowerSample(H100, "GPU-x", rng.uniform(0, 1), 5.0) for _ in range(30)]  # glitches
    m = fit_power_model(pts, H100)
    assert m.idle_watts == pytest.approx(120.0, abs=15)
    assert m.max_watts == pytest.approx(690.0, abs=15)


def test_too_few_samples_keep_the_configured_model() -> None:
    configured = PowerModel(H100, 100.0, 700.0, "configured")
    assert fit_power_model(samples(5, 150.0, 600.0), H100, configured) == configured
    empty = fit_power_model([], H100)
    assert empty.source == "configured"
    assert empty.max_watts == 0.0


def test_narrow_utilisation_range_blends_with_configured() -> None:
    configured = PowerModel(H100, 100.0, 700.0, "configured")
    # Always busy at 85-95 %: slope poorly known; blend towards the configured model.
    m = fit_power_model(samples(100, 150.0, 650.0, lo=0.85, hi=0.95), H100, configured)
    assert m.source == "blended"
    assert 0.0 < m.confidence < 1.0
    assert 50.0 <= m.idle_watts <= 170.0
    # Near the observed utilisation the model agrees with the data.
    assert m.watts(0.9) == pytest.approx(600.0, abs=25)


def test_flat_utilisation_shifts_configured_level() -> None:
    configured = PowerModel(H100, 100.0, 700.0, "configured")
    pts = [GpuPowerSample(H100, "g", 1.0, 620.0) for _ in range(100)]
    m = fit_power_model(pts, H100, configured)
    assert m.source == "blended"
    assert configured.watts(1.0) > m.watts(1.0) > 620.0 - 1


def test_clamped_to_board_limit_and_non_negative() -> None:
    m = fit_power_model(
        samples(200, -50.0, 900.0, noise=1.0), H100, config=PowerFitConfig(board_limit_watts=700.0)
    )
    assert m.idle_watts == 0.0
    assert m.max_watts == 700.0


def test_fits_each_product_separately() -> None:
    pts = samples(100, 120.0, 690.0) + samples(100, 60.0, 300.0, product="NVIDIA L4", seed=2)
    models = fit_power_models(
        pts, {"NVIDIA A100": PowerModel("NVIDIA A100", 60, 400, "configured")}
    )
    assert set(models) == {H100, "NVIDIA L4", "NVIDIA A100"}
    assert models["NVIDIA L4"].max_watts == pytest.approx(300.0, abs=10)
    assert models["NVIDIA A100"].source == "configured"


def test_measured_power_when_usable_else_model() -> None:
    model = PowerModel(H100, 100.0, 700.0, "fitted")
    ok = Reading(1234.0, ReadingStatus.OK, 1.0, 2)
    assert power_watts(ok, model, 0.5, 2) == (1234.0, "measured")
    for bad in (
        Reading.missing("prometheus unreachable"),
        Reading(300.0, ReadingStatus.PARTIAL, 1.0, 1),
        Reading(300.0, ReadingStatus.STALE, 900.0, 2),
    ):
        assert power_watts(bad, model, 0.5, 2) == (800.0, "model")
