"""What the wattscale policy learns online, as the operator does: capacity and power.

Capacity: the operator's `CapacityLearner` (`wattscale.metrics.capacity`), its prior centred on
the capacity hint (which may be off), fed one window per minute and region from the simulated
vLLM metrics (output tokens/s per replica, p95 TTFT and TPOT, waiting requests), and
re-estimated when the operator would (`metrics.capacity_schedule`, the replay's minute as the
interval: every window at first, on every window near the SLO, else every ten minutes). Power: the
operator's fit (`wattscale.metrics.power.fit_power_model`) of the simulated DCGM power against
utilisation (tokens/s over the capacity believed at the time), blended with the configured affine
model (the Region offer's idle and max watts), refitted every hour.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from wattscale.metrics.capacity import CapacityLearner, CapacityObservation, LatencySlo
from wattscale.metrics.capacity_schedule import EstimateSchedule
from wattscale.metrics.power import PowerModel, fit_power_model
from wattscale.metrics.readings import GpuPowerSample
from wattscale.sim.model import ReplicaModel
from wattscale.sim.policies.base import MinuteReadings

WINDOW_SECONDS = 60.0
POWER_EVERY_MINUTES = 60
POWER_SAMPLES_KEPT = 1440


class Learned:
    """The capacity and power the policy plans with, learned from readings."""

    def __init__(self, model: ReplicaModel, hint_tokens_per_s: float, gpu_product: str) -> None:
        slo = LatencySlo(model.ttft_slo_ms / 1000.0, model.tpot_slo_ms / 1000.0)
        self._learner = CapacityLearner(slo, hint_tokens_per_s)
        self._estimates = EstimateSchedule()
        self._product = gpu_product
        self._configured = PowerModel(gpu_product, model.idle_watts, model.max_watts, "configured")
        self.capacity_tokens_per_s = hint_tokens_per_s
        self.power = self._configured
        self._samples: deque[GpuPowerSample] = deque(maxlen=POWER_SAMPLES_KEPT)
        self._previous_ready: np.ndarray | None = None

    def observe(self, minute: int, regions: tuple[str, ...], readings: MinuteReadings) -> None:
        """Take the previous minute's readings; refresh the estimates now and then."""
        t_end = float(minute) * WINDOW_SECONDS
        before = self._previous_ready
        for i, region in enumerate(regions):
            n = float(readings.ready[i])
            if n <= 0:
                continue
            x = float(readings.tokens_per_s_per_replica[i])
            self._estimates.observe(
                self._learner,
                CapacityObservation(
                    tokens_per_second_per_replica=x,
                    ttft_p95_seconds=float(readings.ttft_p95_s[i]),
                    tpot_p95_seconds=float(readings.tpot_p95_s[i]),
                    waiting_requests_per_replica=float(readings.waiting_requests_per_replica[i]),
                    replicas=round(n),
                    t_seconds=t_end,
                    window_seconds=WINDOW_SECONDS,
                    source=region,
                    replicas_changed=before is not None and float(before[i]) != n,
                ),
            )
            self._samples.append(
                GpuPowerSample(
                    gpu_product=self._product,
                    gpu_uuid=region,
                    utilization_ratio=min(1.0, x / max(self.capacity_tokens_per_s, 1e-9)),
                    power_watts=float(readings.board_watts_per_replica[i]),
                )
            )
        self._previous_ready = readings.ready.copy()
        estimate = self._estimates.current(self._learner, t_end, WINDOW_SECONDS)
        self.capacity_tokens_per_s = estimate.tokens_per_second_per_replica
        if minute % POWER_EVERY_MINUTES == 0:
            self.power = fit_power_model(self._samples, self._product, self._configured)
