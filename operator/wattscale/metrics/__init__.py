"""Measured truth: vLLM and DCGM readings through Prometheus, capacity and power learning.

Public API:

* :class:`MetricsReader` (one per region's Prometheus): :meth:`~MetricsReader.read` returns
  :class:`DeploymentReadings` of typed :class:`Reading` values; ``read_demand_history``,
  ``read_capacity_history`` and ``read_gpu_power_samples`` feed the forecaster and learners.
* :class:`MetricsConfig`: metric and label names, selection, windows, timeouts.
* :class:`QueryBuilder`: every PromQL string, built in one place.
* :class:`CapacityLearner` / :func:`estimate_capacity`: output tokens/s per replica within the SLO.
* :func:`fit_power_model` / :func:`fit_power_models` / :func:`power_watts`: idle and max watts.
"""

from wattscale.metrics.capacity import (
    CapacityEstimate,
    CapacityLearner,
    CapacityLearnerConfig,
    CapacityObservation,
    LatencySlo,
    Verdict,
    estimate_capacity,
)
from wattscale.metrics.config import (
    DcgmLabels,
    DcgmMetricNames,
    MetricsConfig,
    VllmLabels,
    VllmMetricNames,
)
from wattscale.metrics.power import (
    PowerFitConfig,
    PowerModel,
    fit_power_model,
    fit_power_models,
    power_watts,
)
from wattscale.metrics.queries import DeploymentTarget, QueryBuilder
from wattscale.metrics.reader import MetricsReader, PromClient
from wattscale.metrics.readings import (
    DemandHistory,
    DemandPoint,
    DeploymentReadings,
    GpuPowerSample,
    Reading,
    ReadingStatus,
)


def observation_from_readings(
    readings: DeploymentReadings,
    *,
    window_seconds: float | None = None,
    replicas_changed: bool = False,
) -> CapacityObservation | None:
    """The capacity-learning window of one read, or None when load or replicas are unknown.

    Latency readings that are not usable are passed as None (the learner then refuses the
    window if no latency is left). ``window_seconds`` is the reader's rate window
    (``MetricsConfig.rate_window_seconds``; None: the learner assumes 120 s);
    ``replicas_changed`` says the serving replicas changed within that window (scaled, became
    Ready, restarted), which the learner cannot always see from ``pods_reporting`` alone. The
    learner refuses such windows, and those whose latencies are a backlog from before, as
    ``transient``.
    """
    per_replica = readings.generation_tokens_per_second_per_replica()
    if per_replica is None:
        return None
    waiting = readings.waiting_requests
    return CapacityObservation(
        tokens_per_second_per_replica=per_replica,
        ttft_p95_seconds=readings.ttft_p95_seconds.value
        if readings.ttft_p95_seconds.usable
        else None,
        tpot_p95_seconds=readings.tpot_p95_seconds.value
        if readings.tpot_p95_seconds.usable
        else None,
        waiting_requests_per_replica=(waiting.value / readings.pods_reporting)
        if waiting.usable and waiting.value is not None
        else None,
        replicas=readings.pods_reporting,
        t_seconds=readings.observed_at.timestamp(),
        window_seconds=window_seconds,
        source=readings.region,
        replicas_changed=replicas_changed,
    )


__all__ = [
    "CapacityEstimate",
    "CapacityLearner",
    "CapacityLearnerConfig",
    "CapacityObservation",
    "DcgmLabels",
    "DcgmMetricNames",
    "DemandHistory",
    "DemandPoint",
    "DeploymentReadings",
    "DeploymentTarget",
    "GpuPowerSample",
    "LatencySlo",
    "MetricsConfig",
    "MetricsReader",
    "PowerFitConfig",
    "PowerModel",
    "PromClient",
    "QueryBuilder",
    "Reading",
    "ReadingStatus",
    "Verdict",
    "VllmLabels",
    "VllmMetricNames",
    "estimate_capacity",
    "fit_power_model",
    "fit_power_models",
    "observation_from_readings",
    "power_watts",
]
