"""What the wattscale policy learns online, as the operator does: capacity and power.

Capacity: the operator's `CapacityLearner` (`wattscale.metrics.capacity`), its prior centred on
the capacity hint (which may be off), fed one window per minute and region from the simulated
vLLM metrics (output tokens/s per replica, p95 TTFT and TPOT, waiting requests). Power: the
operator's fit (`wattscale.metrics.power.fit_power_model`) of the simulated DCGM power against
utilisation (tokens/s over the capacity believed at the time), blended with the configured affine
model (the Region offer's idle and max watts). The capacity estimate is refreshed by the
operator's rule (`controller/memory.py`, `capacity_estimate`): every window while few windows are
held or when a window came near the SLO or queued, otherwise every
`ESTIMATE_REFRESH_INTERVALS` intervals; the power fit hourly.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from wattscale.metrics.capacity import CapacityLearner, CapacityObservation, LatencySlo
from wattscale.metrics.power import PowerModel, fit_power_model
from wattscale.metrics.readings import GpuPowerSample
from wattscale.sim.model import ReplicaModel
from wattscale.sim.policies.base import MinuteReadings

WINDOW_SECONDS = 60.0
# The operator's estimate refresh rule (wattscale.controller.memory; a unit test checks they
# agree): the sim's interval is one minute.
ESTIMATE_REFRESH_INTERVALS = 10
ESTIMATE_EVERY_WINDOW_BELOW = 30
NEAR_SLO = 0.8
POWER_EVERY_MINUTES = 60
POWER_SAMPLES_KEPT = 1440


class Learned:
    """The capacity and power the policy plans with, learned from readings."""

    def __init__(self, model: ReplicaModel, hint_tokens_per_s: float, gpu_product: str) -> None:
        slo = LatencySlo(model.ttft_slo_ms / 1000.0, model.tpot_slo_ms / 1000.0)
        self._learner = CapacityLearner(slo, hint_tokens_per_s)
        self._product = gpu_product
        self._configured = PowerModel(gpu_product, model.idle_watts, model.max_watts, "configured")
        self.capacity_tokens_per_s = hint_tokens_per_s
        self.power = self._configured
        self._samples: deque[GpuPowerSample] = deque(maxlen=POWER_SAMPLES_KEPT)
        self._previous_ready: np.ndarray | None = None
        self._windows = 0
        self._news = False
        self._estimate_minute = 0

    def observe(self, minute: int, regions: tuple[str, ...], readings: MinuteReadings) -> None:
        """Take the previous minute's readings; refresh the estimates now and then."""
        t_end = float(minute) * WINDOW_SECONDS
        before = self._previous_ready
        for i, region in enumerate(regions):
            n = float(readings.ready[i])
            if n <= 0:
                continue
            x = float(readings.tokens_per_s_per_replica[i])
            window = CapacityObservation(
                tokens_per_second_per_replica=x,
                ttft_p95_seconds=float(readings.ttft_p95_s[i]),
                tpot_p95_seconds=float(readings.tpot_p95_s[i]),
                waiting_requests_per_replica=float(readings.waiting_requests_per_replica[i]),
                replicas=round(n),
                t_seconds=t_end,
                window_seconds=WINDOW_SECONDS,
                source=region,
                replicas_changed=before is not None and float(before[i]) != n,
            )
            self._learner.observe(window)
            self._windows += 1
            ratio = self._learner.slo.ratio(window)
            self._news |= (ratio is not None and ratio >= NEAR_SLO) or (
                window.waiting_requests_per_replica or 0.0
            ) > 0.0
            self._samples.append(
                GpuPowerSample(
                    gpu_product=self._product,
                    gpu_uuid=region,
                    utilization_ratio=min(1.0, x / max(self.capacity_tokens_per_s, 1e-9)),
                    power_watts=float(readings.board_watts_per_replica[i]),
                )
            )
        self._previous_ready = readings.ready.copy()
        if self._estimate_due(minute):
            self.capacity_tokens_per_s = self._learner.estimate(t_end).tokens_per_second_per_replica
            self._estimate_minute, self._windows, self._news = minute, 0, False
        if minute % POWER_EVERY_MINUTES == 0:
            self.power = fit_power_model(self._samples, self._product, self._configured)

    def _estimate_due(self, minute: int) -> bool:
        """The operator's rule: a new window arrived, and it is news (near the SLO or queued),
        or few windows are held, or ``ESTIMATE_REFRESH_INTERVALS`` intervals have passed."""
        if self._windows == 0:
            return False
        return (
            self._news
            or len(self._learner.observations) < ESTIMATE_EVERY_WINDOW_BELOW
            or minute - self._estimate_minute >= ESTIMATE_REFRESH_INTERVALS
        )
