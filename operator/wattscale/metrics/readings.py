"""Typed readings: a value together with how much to trust it.

A reading is never a bare float. When Prometheus is down, a query times out, a series is absent,
a histogram had no samples in the window (NaN) or some pods did not report, the reading says so
in :attr:`Reading.status` and carries ``value=None`` (or the partial value), so the controller can
never mistake "we could not see" for "there is no load".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ReadingStatus(StrEnum):
    """How a reading was obtained; ordered from most to least trustworthy."""

    OK = "Ok"
    """Fresh, and every expected pod reported."""
    PARTIAL = "Partial"
    """Fresh, but fewer pods (or GPUs) reported than are known to exist: sums are low."""
    STALE = "Stale"
    """The newest sample is older than ``stale_after_seconds``: the value is the last known."""
    MISSING = "Missing"
    """No value: Prometheus unreachable, query failed or timed out, no series, or NaN."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured quantity; units are in the name of the field that holds it."""

    value: float | None
    status: ReadingStatus
    age_seconds: float | None = None
    pods_reporting: int = 0
    reason: str = ""

    @property
    def usable(self) -> bool:
        """True when there is a value fresh enough to act on (Ok or Partial)."""
        return self.value is not None and self.status in (ReadingStatus.OK, ReadingStatus.PARTIAL)

    @property
    def ok(self) -> bool:
        """True only for a complete, fresh reading."""
        return self.value is not None and self.status is ReadingStatus.OK

    @classmethod
    def missing(cls, reason: str, pods_reporting: int = 0) -> Reading:
        """A reading with no value and the reason why."""
        return cls(None, ReadingStatus.MISSING, None, pods_reporting, reason)

    def value_or(self, default: float) -> float:
        """The value when usable, else ``default`` (choose a safe default, not 0 for load)."""
        return self.value if self.usable and self.value is not None else default


@dataclass(frozen=True, slots=True)
class DeploymentReadings:
    """Everything measured for one deployment in one region at one instant."""

    namespace: str
    deployment: str
    region: str | None
    observed_at: datetime
    prometheus_reachable: bool
    pods_reporting: int
    pods_expected: int | None
    request_rate_per_second: Reading
    prompt_tokens_per_second: Reading
    generation_tokens_per_second: Reading
    running_requests: Reading
    waiting_requests: Reading
    kv_cache_usage_ratio: Reading
    ttft_p50_seconds: Reading
    ttft_p95_seconds: Reading
    tpot_p50_seconds: Reading
    tpot_p95_seconds: Reading
    gpu_power_watts: Reading
    gpu_energy_joules: Reading
    """Energy over the reader's rate window (``rate_window_seconds``)."""
    gpu_utilization_ratio: Reading
    gpus_reporting: int
    notes: tuple[str, ...] = field(default=())
    variant: str | None = None
    """The variant label value these readings are narrowed to (None: all the pods)."""

    def readings(self) -> dict[str, Reading]:
        """Every reading by field name (handy for status, metrics and logs)."""
        return {
            name: getattr(self, name)
            for name in (
                "request_rate_per_second",
                "prompt_tokens_per_second",
                "generation_tokens_per_second",
                "running_requests",
                "waiting_requests",
                "kv_cache_usage_ratio",
                "ttft_p50_seconds",
                "ttft_p95_seconds",
                "tpot_p50_seconds",
                "tpot_p95_seconds",
                "gpu_power_watts",
                "gpu_energy_joules",
                "gpu_utilization_ratio",
            )
        }

    @property
    def demand_reading_usable(self) -> bool:
        """True when the output-token rate can be trusted as demand (Ok, or Partial)."""
        return self.generation_tokens_per_second.usable

    def generation_tokens_per_second_per_replica(self) -> float | None:
        """Output tokens/s per reporting replica, or None when it cannot be computed."""
        gen = self.generation_tokens_per_second
        if not gen.usable or gen.value is None or self.pods_reporting <= 0:
            return None
        return gen.value / self.pods_reporting


@dataclass(frozen=True, slots=True)
class DemandPoint:
    """One point of demand history: unix time (s) and tokens/s at that time."""

    t_seconds: float
    tokens_per_second: float


@dataclass(frozen=True, slots=True)
class DemandHistory:
    """Demand history for warm-starting a forecaster; empty with a reason when unavailable."""

    points: tuple[DemandPoint, ...]
    status: ReadingStatus
    step_seconds: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GpuPowerSample:
    """One GPU's mean power and utilisation over a window (a point for power-model fitting)."""

    gpu_product: str
    gpu_uuid: str
    utilization_ratio: float
    power_watts: float


def finite_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite float, else None (NaN and +-Inf are not measurements)."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value
