"""Power model fitting: idle and full-load watts per GPU product from DCGM readings.

Pure (numpy only). Board power is close to affine in utilisation, ``P(u) = idle + (max - idle) u``
(far from proportional: an idle H100 holding a model still draws ~100-150 W). Given per-GPU
(utilisation, watts) samples, a robust line (Theil-Sen) gives ``idle`` at u=0 and ``max`` at
u=1. The fit is blended with the configured model (``Region.spec.gpus[].idleWatts/maxWatts``) by
confidence, which grows with the number of samples and the utilisation range they cover: a fleet
that always runs at 90-100 % tells us its power there, but little about idle power, so the
level at the observed utilisation is kept and only the slope is blended.

Cost accounting then uses :func:`power_watts`: the measured DCGM power when that reading is
usable, the model otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from wattscale.metrics.capacity import theil_sen
from wattscale.metrics.readings import GpuPowerSample, Reading


@dataclass(frozen=True, slots=True)
class PowerModel:
    """Affine power model of one GPU product."""

    gpu_product: str
    idle_watts: float
    max_watts: float
    source: str
    """"configured" (no data), "fitted" or "blended" (fit mixed with the configured model)."""
    samples: int = 0
    utilization_span: float = 0.0
    residual_watts: float = 0.0
    confidence: float = 0.0

    def watts(self, utilization_ratio: float) -> float:
        """Board power of one GPU at ``utilization_ratio`` (clamped to [0, 1])."""
        u = min(1.0, max(0.0, utilization_ratio))
        return self.idle_watts + (self.max_watts - self.idle_watts) * u


@dataclass(frozen=True, slots=True)
class PowerFitConfig:
    """Thresholds of the fit."""

    min_samples: int = 10
    full_confidence_samples: int = 100
    full_confidence_span: float = 0.6
    """A utilisation range this wide (e.g. 0.2 to 0.8) gives full confidence in the slope."""
    board_limit_watts: float | None = None


def fit_power_model(
    samples: Iterable[GpuPowerSample],
    gpu_product: str,
    configured: PowerModel | None = None,
    config: PowerFitConfig | None = None,
) -> PowerModel:
    """Fit ``idle`` and ``max`` watts for one product; blend with ``configured`` by confidence.

    Samples of other products are ignored. Without enough samples the configured model is
    returned unchanged (or None-like zero model with source "configured" if there is none).
    """
    cfg = config or PowerFitConfig()
    pts = [
        (s.utilization_ratio, s.power_watts)
        for s in samples
        if s.gpu_product == gpu_product
        and math.isfinite(s.utilization_ratio)
        and math.isfinite(s.power_watts)
        and 0.0 <= s.utilization_ratio <= 1.0
        and s.power_watts > 0.0
    ]
    fallback = configured or PowerModel(gpu_product, 0.0, 0.0, "configured")
    if len(pts) < cfg.min_samples:
        return fallback
    u = np.array([p[0] for p in pts], dtype=np.float64)
    w = np.array([p[1] for p in pts], dtype=np.float64)
    span = float(np.quantile(u, 0.95) - np.quantile(u, 0.05))
    if span < 0.05:
        # No slope information: keep the configured slope, shift it to the measured level.
        if configured is None:
            return fallback
        level = float(np.median(w))
        shift = level - configured.watts(float(np.median(u)))
        conf = min(1.0, len(pts) / cfg.full_confidence_samples) * 0.5
        return _clamp(
            PowerModel(
                gpu_product,
                configured.idle_watts + conf * shift,
                configured.max_watts + conf * shift,
                "blended",
                len(pts),
                span,
                float(np.median(np.abs(w - level))),
                conf,
            ),
            cfg,
        )
    a, b = theil_sen(u, w)
    resid = w - (a + b * u)
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    conf = min(1.0, len(pts) / cfg.full_confidence_samples) * min(
        1.0, span / cfg.full_confidence_span
    )
    fitted = _clamp(PowerModel(gpu_product, a, a + b, "fitted", len(pts), span, mad, conf), cfg)
    if configured is None or conf >= 1.0:
        return fitted
    # Blend the slope only: the level at the utilisation actually observed is well measured
    # whatever the spread, the extrapolation to 0 and 1 is what needs the configured model.
    centre = float(np.median(u))
    level = a + b * centre
    slope = conf * b + (1 - conf) * (configured.max_watts - configured.idle_watts)
    idle = level - slope * centre
    return _clamp(
        PowerModel(gpu_product, idle, idle + slope, "blended", len(pts), span, mad, conf), cfg
    )


def _clamp(model: PowerModel, cfg: PowerFitConfig) -> PowerModel:
    idle = max(0.0, model.idle_watts)
    peak = max(idle, model.max_watts)
    if cfg.board_limit_watts is not None:
        peak = min(peak, cfg.board_limit_watts)
        idle = min(idle, peak)
    return PowerModel(
        model.gpu_product,
        idle,
        peak,
        model.source,
        model.samples,
        model.utilization_span,
        model.residual_watts,
        model.confidence,
    )


def fit_power_models(
    samples: Iterable[GpuPowerSample],
    configured: dict[str, PowerModel] | None = None,
    config: PowerFitConfig | None = None,
) -> dict[str, PowerModel]:
    """Fit one model per GPU product present in ``samples`` or in ``configured``."""
    pts = list(samples)
    products = {s.gpu_product for s in pts} | set(configured or {})
    return {p: fit_power_model(pts, p, (configured or {}).get(p), config) for p in sorted(products)}


def power_watts(
    measured: Reading,
    model: PowerModel,
    utilization_ratio: float,
    gpus: int,
) -> tuple[float, str]:
    """Power of ``gpus`` GPUs: the measured DCGM reading when usable and complete, else the model.

    Returns (watts, source) with source "measured" or "model". A Partial, Stale or Missing
    measurement falls back to the model (a sum over some GPUs would under-count).
    """
    modelled = model.watts(utilization_ratio) * gpus
    if measured.ok and measured.value is not None:
        return measured.value, "measured"
    return modelled, "model"
