"""Reads vLLM and DCGM metrics for a deployment from one region's Prometheus.

Built on prometheus-api-client's ``PrometheusConnect``. One :class:`MetricsReader` per region
(per Prometheus URL). Every failure mode becomes a typed reading (see :mod:`.readings`): the
reader never raises for an unreachable Prometheus, a timeout, an HTTP error, an empty result or
a NaN, and it stops querying after the first connection failure so a dead Prometheus costs one
timeout per read, not one per query.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wattscale.metrics.capacity import CapacityObservation
from wattscale.metrics.config import MetricsConfig
from wattscale.metrics.queries import AGE_NAME_LABEL, DeploymentTarget, QueryBuilder
from wattscale.metrics.readings import (
    DemandHistory,
    DemandPoint,
    DeploymentReadings,
    GpuPowerSample,
    Reading,
    ReadingStatus,
    finite_or_none,
)

log = logging.getLogger(__name__)

_MAX_TIMEOUTS_PER_READ = 2
CONNECTIONS_PER_PROMETHEUS = 32
"""Kept-alive connections to one Prometheus: kopf's handler threads read the same region's
Prometheus at once (requests' default pool of 10 discarded connections, with a warning per
read, at 200 deployments)."""
_GPU_FIELDS = ("gpu_power_watts", "gpu_energy_joules", "gpu_utilization_ratio")


class PromClient(Protocol):
    """The two calls of ``PrometheusConnect`` the reader uses (a seam for unit tests)."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        """Instant query; returns the ``data.result`` list."""
        ...

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Range query; returns the ``data.result`` list."""
        ...


class QueryFailedError(Exception):
    """A query could not be answered; ``unreachable`` when Prometheus itself is not there."""

    def __init__(self, reason: str, *, unreachable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True)
class _Sample:
    labels: Mapping[str, str]
    value: float


def _parse_vector(result: Any) -> list[_Sample]:
    """Parse an instant-query result (vector or scalar) into samples; NaN is kept as NaN."""
    if not isinstance(result, list):
        raise QueryFailedError(f"unexpected result type {type(result).__name__}", unreachable=False)
    if len(result) == 2 and not isinstance(result[0], dict):  # a scalar: [ts, "v"]
        return [_Sample({}, float(result[1]))]
    samples = []
    for item in result:
        try:
            labels = item.get("metric", {}) or {}
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise QueryFailedError(f"malformed sample: {exc!r}", unreachable=False) from exc
        samples.append(_Sample(labels, value))
    return samples


def _scalar(samples: list[_Sample]) -> float | None:
    """The value of a one-element vector (None if empty; NaN stays NaN)."""
    if not samples:
        return None
    return samples[0].value


class MetricsReader:
    """Reads one region's Prometheus for the deployments the operator manages.

    ``headers`` carries e.g. ``Authorization: Bearer ...``; ``disable_ssl`` skips TLS
    verification. ``client`` replaces ``PrometheusConnect`` (tests); ``clock`` returns unix
    seconds.
    """

    def __init__(
        self,
        url: str,
        config: MetricsConfig | None = None,
        *,
        region: str | None = None,
        headers: dict[str, str] | None = None,
        disable_ssl: bool = False,
        client: PromClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.config = config or MetricsConfig()
        self.region = region
        self.queries = QueryBuilder(self.config)
        self._clock = clock
        if client is None:
            # One quick retry on connect errors; HTTP 5xx are reported, not retried for long.
            retry = Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504])
            session = requests.Session()
            session.verify = not disable_ssl
            client = PrometheusConnect(
                url=url,
                headers=headers,
                disable_ssl=disable_ssl,
                retry=retry,
                timeout=self.config.query_timeout_seconds,
                session=session,
            )
            # After PrometheusConnect mounted its own adapter (requests' default pool) for
            # this URL: the same retry, with a pool as large as the threads that share it.
            session.mount(
                url, HTTPAdapter(max_retries=retry, pool_maxsize=CONNECTIONS_PER_PROMETHEUS)
            )
        self._client: PromClient = client

    # -- low level ---------------------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {"timeout": f"{self.config.query_timeout_seconds:g}s"}

    def query(self, promql: str) -> list[_Sample]:
        """Run an instant query; raise :class:`QueryFailedError` (never anything else)."""
        try:
            result = self._client.custom_query(promql, params=self._params())
        except requests.exceptions.Timeout as exc:
            raise QueryFailedError(f"query timed out: {exc}", unreachable=False) from exc
        except requests.exceptions.ConnectionError as exc:
            raise QueryFailedError(f"prometheus unreachable: {exc}", unreachable=True) from exc
        except PrometheusApiClientException as exc:
            text = str(exc)
            timeout = "timeout" in text.lower() or "503" in text
            reason = f"query timed out: {text}" if timeout else f"query failed: {text}"
            raise QueryFailedError(reason[:500], unreachable=False) from exc
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise QueryFailedError(f"query failed: {exc!r}"[:500], unreachable=False) from exc
        return _parse_vector(result)

    def query_range(
        self, promql: str, start: datetime, end: datetime, step_seconds: float
    ) -> list[tuple[Mapping[str, str], list[tuple[float, float]]]]:
        """Run a range query: a list of (labels, [(t, value), ...]); raises QueryFailedError."""
        step = f"{step_seconds:g}s"
        try:
            result = self._client.custom_query_range(
                promql, start_time=start, end_time=end, step=step, params=self._params()
            )
        except requests.exceptions.Timeout as exc:
            raise QueryFailedError(f"query timed out: {exc}", unreachable=False) from exc
        except requests.exceptions.ConnectionError as exc:
            raise QueryFailedError(f"prometheus unreachable: {exc}", unreachable=True) from exc
        except (PrometheusApiClientException, requests.exceptions.RequestException) as exc:
            raise QueryFailedError(f"query failed: {exc}"[:500], unreachable=False) from exc
        out = []
        try:
            for item in result:
                points = [(float(t), float(v)) for t, v in item.get("values", [])]
                out.append((item.get("metric", {}) or {}, points))
        except (TypeError, ValueError, AttributeError) as exc:
            raise QueryFailedError(f"malformed range result: {exc!r}", unreachable=False) from exc
        return out

    # -- the main read -----------------------------------------------------------------------

    def read(
        self,
        target: DeploymentTarget,
        *,
        expected_pods: int | None = None,
        expected_gpus: int | None = None,
        gpu: bool = True,
    ) -> DeploymentReadings:
        """Read every quantity of ``target`` now.

        ``expected_pods`` is what the controller knows from Kubernetes (ready replicas); the
        reader also counts the deployment's scrape targets (``up``), and any pod known but not
        reporting makes the readings Partial. ``expected_gpus`` (ready replicas x GPUs per
        replica) does the same for the GPU readings; ``gpu=False`` leaves them out (Missing).
        """
        session = _Session(self)
        q = self.queries
        cfg = self.config
        now = self._clock()

        pods_value = session.scalar(q.pods_reporting(target))
        pods_reporting = (
            int(pods_value) if pods_value is not None and math.isfinite(pods_value) else 0
        )
        targets_value = session.scalar(q.targets_total(target))
        down_value = session.scalar(q.targets_down(target))
        known = [
            v
            for v in (
                expected_pods,
                int(targets_value) if targets_value is not None else None,
                pods_reporting + int(down_value) if down_value is not None else None,
            )
            if v is not None
        ]
        pods_expected = max(known) if known else None

        ages = session.ages(q.vllm_ages(target))
        names = q.vllm_sample_names()

        def age_of(group: str) -> float | None:
            values = [ages[n] for n in names[group] if n in ages]
            return min(values) if values else None

        def make(promql: str, group: str) -> Reading:
            return session.reading(
                promql, age_of(group), pods_reporting, pods_expected, cfg.stale_after_seconds
            )

        q50, q95 = cfg.quantiles
        ttft50 = make(q.ttft_quantile(target, q50), "ttft")
        ttft95 = make(q.ttft_quantile(target, q95), "ttft")
        tpot50 = make(q.tpot_quantile(target, q50), "tpot")
        tpot95 = make(q.tpot_quantile(target, q95), "tpot")

        if gpu:
            gpus, gpus_reporting = self._gpu_readings(
                session, target, pods_reporting, pods_expected, expected_gpus
            )
        else:
            gone = Reading.missing("GPU readings are per deployment, not per variant")
            gpus, gpus_reporting = dict.fromkeys(_GPU_FIELDS, gone), 0

        vllm = {
            "request_rate_per_second": make(q.request_rate(target), "requests"),
            "prompt_tokens_per_second": make(q.prompt_tokens_rate(target), "prompt"),
            "generation_tokens_per_second": make(q.generation_tokens_rate(target), "generation"),
            "running_requests": make(q.running_requests(target), "running"),
            "waiting_requests": make(q.waiting_requests(target), "waiting"),
            "kv_cache_usage_ratio": make(q.kv_cache_usage(target), "kv_cache"),
        }
        return DeploymentReadings(
            namespace=target.namespace,
            deployment=target.deployment,
            region=self.region,
            observed_at=datetime.fromtimestamp(now, tz=UTC),
            prometheus_reachable=not session.connect_failed,
            pods_reporting=pods_reporting,
            pods_expected=pods_expected,
            ttft_p50_seconds=ttft50,
            ttft_p95_seconds=ttft95,
            tpot_p50_seconds=tpot50,
            tpot_p95_seconds=tpot95,
            gpus_reporting=gpus_reporting,
            notes=tuple(session.notes),
            variant=target.variant,
            **vllm,
            **gpus,
        )

    def _gpu_readings(
        self,
        session: _Session,
        target: DeploymentTarget,
        pods_reporting: int,
        pods_expected: int | None,
        expected_gpus: int | None,
    ) -> tuple[dict[str, Reading], int]:
        """Power, energy and utilisation of the target's GPUs, and how many GPUs report."""
        q, stale_after = self.queries, self.config.stale_after_seconds
        gpus_value = session.scalar(q.gpus_reporting(target))
        gpus_reporting = (
            int(gpus_value) if gpus_value is not None and math.isfinite(gpus_value) else 0
        )
        dcgm_age = session.scalar(q.dcgm_age(target))

        def gpu(promql: str) -> Reading:
            reading = session.reading(promql, dcgm_age, pods_reporting, pods_expected, stale_after)
            if (
                reading.status is ReadingStatus.OK
                and expected_gpus is not None
                and gpus_reporting < expected_gpus
            ):
                return Reading(
                    reading.value,
                    ReadingStatus.PARTIAL,
                    reading.age_seconds,
                    pods_reporting,
                    f"{gpus_reporting} of {expected_gpus} GPUs reporting",
                )
            return reading

        readings = {
            "gpu_power_watts": gpu(q.gpu_power(target)),
            "gpu_energy_joules": gpu(q.gpu_energy(target)),
            "gpu_utilization_ratio": gpu(q.gpu_utilization(target)),
        }
        return readings, gpus_reporting

    def read_variants(
        self, target: DeploymentTarget, expected_pods: Mapping[str, int | None]
    ) -> dict[str, DeploymentReadings]:
        """Each variant's readings (``expected_pods``: variant label value -> Ready pods, ``""``
        for the first variant), from one query per reading grouped by the variant label, not
        one per variant. Each equals :meth:`read` of ``target`` narrowed to the variant
        (``DeploymentTarget.variant``), GPU readings aside (Missing: they are per deployment).
        """
        split = MetricsReader(
            self.url,
            self.config,
            region=self.region,
            client=_VariantSplit(self, target, list(expected_pods)),
            clock=self._clock,
        )
        return {
            v: split.read(replace(target, variant=v), expected_pods=n, gpu=False)
            for v, n in expected_pods.items()
        }

    def unscraped_pods(self, target: DeploymentTarget) -> list[str] | None:
        """Names of the deployment's pods Prometheus failed to scrape (None: cannot tell)."""
        try:
            samples = self.query(self.queries.unscraped_pods(target))
        except QueryFailedError:
            return None
        pod = self.config.vllm_labels.pod
        return sorted({s.labels[pod] for s in samples if s.labels.get(pod)})

    # -- history -----------------------------------------------------------------------------

    def read_demand_history(
        self,
        target: DeploymentTarget,
        start: datetime,
        end: datetime,
        step_seconds: float = 60.0,
    ) -> DemandHistory:
        """Demand (output tokens/s, the live reading's ``generation_tokens_per_second`` and the
        capacity hint's unit) between start and end.

        Gaps (no pods, Prometheus retention) are simply absent points; NaN points are dropped.
        On failure the history is empty with status Missing and the reason.
        """
        try:
            series = self.query_range(
                self.queries.generation_tokens_rate(target), start, end, step_seconds
            )
        except QueryFailedError as exc:
            return DemandHistory((), ReadingStatus.MISSING, step_seconds, exc.reason)
        if not series:
            return DemandHistory((), ReadingStatus.MISSING, step_seconds, "no series")
        points = tuple(
            DemandPoint(t, v) for t, v in series[0][1] if finite_or_none(v) is not None and v >= 0
        )
        status = ReadingStatus.OK if points else ReadingStatus.MISSING
        return DemandHistory(points, status, step_seconds, "" if points else "no finite points")

    def read_capacity_history(
        self,
        target: DeploymentTarget,
        start: datetime,
        end: datetime,
        step_seconds: float | None = None,
    ) -> list[CapacityObservation]:
        """(output tokens/s per replica, TTFT p95, TPOT p95) over time, to warm-start the
        capacity learner after a restart. Steps where any part is missing are left out.

        ``step_seconds`` (None: a minute, at most half the rate window): the learner refuses
        the windows around a change of the replica count as transients only if it sees the
        change between two windows close enough to bracket it; sampled sparser than the
        rate window, a window with a scale-down inside it passes as steady evidence."""
        if step_seconds is None:
            step_seconds = min(60.0, self.config.rate_window_seconds / 2.0)
        q = self.queries
        _, q95 = self.config.quantiles
        wanted = {
            "gen": q.generation_tokens_rate(target),
            "pods": q.pods_reporting(target),
            "ttft": q.ttft_quantile(target, q95),
            "tpot": q.tpot_quantile(target, q95),
            "waiting": q.waiting_requests(target),
        }
        columns: dict[str, dict[float, float]] = {}
        for key, promql in wanted.items():
            try:
                series = self.query_range(promql, start, end, step_seconds)
            except QueryFailedError as exc:
                log.warning("capacity history: %s", exc.reason)
                return []
            columns[key] = dict(series[0][1]) if series else {}
        out = []
        for t in sorted(columns["gen"]):
            pods = columns["pods"].get(t)
            gen = finite_or_none(columns["gen"].get(t))
            if pods is None or pods <= 0 or gen is None:
                continue
            waiting = finite_or_none(columns["waiting"].get(t))
            out.append(
                CapacityObservation(
                    tokens_per_second_per_replica=gen / pods,
                    ttft_p95_seconds=finite_or_none(columns["ttft"].get(t)),
                    tpot_p95_seconds=finite_or_none(columns["tpot"].get(t)),
                    waiting_requests_per_replica=None if waiting is None else waiting / pods,
                    replicas=int(pods),
                    t_seconds=t,
                    window_seconds=float(self.config.rate_window_seconds),
                    source=self.region or "",
                )
            )
        return out

    def read_gpu_power_samples(self, target: DeploymentTarget) -> list[GpuPowerSample]:
        """Per-GPU (product, utilisation, watts) averaged over the window, for power fitting.

        Returns an empty list on any failure (power fitting simply gets no new points).
        """
        d = self.config.dcgm_labels
        try:
            power = self.query(self.queries.gpu_power_by_gpu(target))
            util = self.query(self.queries.gpu_utilization_by_gpu(target))
        except QueryFailedError as exc:
            log.warning("gpu power samples: %s", exc.reason)
            return []
        util_by_uuid = {s.labels.get(d.gpu_uuid, ""): s.value for s in util}
        out = []
        for s in power:
            uuid = s.labels.get(d.gpu_uuid, "")
            u = finite_or_none(util_by_uuid.get(uuid))
            w = finite_or_none(s.value)
            if u is None or w is None:
                continue
            out.append(GpuPowerSample(s.labels.get(d.gpu_product, "unknown"), uuid, u, w))
        return out


class _Session:
    """One read: remembers a connection failure so later queries are not attempted."""

    def __init__(self, reader: MetricsReader) -> None:
        self.reader = reader
        self.unreachable = False
        self.unreachable_reason = ""
        self.timeouts = 0
        self.connect_failed = False
        self.notes: list[str] = []

    def _run(self, promql: str) -> list[_Sample] | str:
        if self.unreachable:
            return self.unreachable_reason
        try:
            return self.reader.query(promql)
        except QueryFailedError as exc:
            if exc.unreachable:
                self.unreachable = True
                self.connect_failed = True
                self.unreachable_reason = exc.reason
            elif exc.reason.startswith("query timed out"):
                self.timeouts += 1
                if self.timeouts >= _MAX_TIMEOUTS_PER_READ:
                    # An overloaded or hung Prometheus: don't spend a timeout on every query.
                    self.unreachable = True
                    self.unreachable_reason = f"skipped after {self.timeouts} timeouts: " + (
                        exc.reason
                    )
            if exc.reason not in self.notes:
                self.notes.append(exc.reason)
            return exc.reason

    def scalar(self, promql: str) -> float | None:
        result = self._run(promql)
        if isinstance(result, str):
            return None
        return _scalar(result)

    def ages(self, promql: str) -> dict[str, float]:
        result = self._run(promql)
        if isinstance(result, str):
            return {}
        return {
            s.labels[AGE_NAME_LABEL]: s.value
            for s in result
            if AGE_NAME_LABEL in s.labels and math.isfinite(s.value)
        }

    def reading(
        self,
        promql: str,
        age_seconds: float | None,
        pods_reporting: int,
        pods_expected: int | None,
        stale_after_seconds: float,
    ) -> Reading:
        result = self._run(promql)
        if isinstance(result, str):
            return Reading.missing(result, pods_reporting)
        if not result:
            reason = "no pods reporting" if pods_reporting == 0 else "no series"
            return Reading.missing(reason, pods_reporting)
        if pods_reporting == 0:
            # A rate over the window can outlive the pods; with none reporting now it is not
            # a measurement of the present.
            return Reading.missing("no pods reporting", 0)
        value = finite_or_none(result[0].value)
        if value is None:
            return Reading.missing("no samples in window (NaN)", pods_reporting)
        age = None if age_seconds is None else max(0.0, age_seconds)
        if age is not None and age > stale_after_seconds:
            return Reading(
                value, ReadingStatus.STALE, age, pods_reporting, f"newest sample {age:.0f}s old"
            )
        if pods_expected is not None and pods_reporting < pods_expected:
            return Reading(
                value,
                ReadingStatus.PARTIAL,
                age,
                pods_reporting,
                f"{pods_reporting} of {pods_expected} pods reporting",
            )
        return Reading(value, ReadingStatus.OK, age, pods_reporting)


class _VariantSplit:
    """Answers each variant's per-variant queries of one deployment from one query per reading
    grouped by the variant label, sent on first use; any other query goes live."""

    def __init__(
        self, reader: MetricsReader, target: DeploymentTarget, variants: list[str]
    ) -> None:
        self._reader = reader
        self._label = reader.config.vllm_labels.variant
        per = reader.queries.vllm_reads()
        grouped = QueryBuilder(reader.config, by_variant=True).vllm_reads()
        whole = replace(target, variant=None)
        self._asked: dict[str, tuple[str, str]] = {
            per[kind](replace(target, variant=v)): (grouped[kind](whole), v)
            for kind in per
            for v in variants
        }
        self._answers: dict[str, list[_Sample] | QueryFailedError] = {}

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        asked = self._asked.get(query)
        if asked is None:
            return self._reader._client.custom_query(query, params=params)
        grouped, variant = asked
        if grouped not in self._answers:
            try:
                self._answers[grouped] = self._reader.query(grouped)
            except QueryFailedError as err:
                self._answers[grouped] = err
        got = self._answers[grouped]
        if isinstance(got, QueryFailedError):  # told to each variant, as a live query would be
            raise QueryFailedError(got.reason, unreachable=got.unreachable)
        now = self._reader._clock()
        return [
            {"metric": _age_label(s.labels), "value": [now, repr(s.value)]}
            for s in got
            if s.labels.get(self._label, "") == variant
        ]

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return self._reader._client.custom_query_range(
            query, start_time, end_time, step, params=params
        )


def _age_label(labels: Mapping[str, str]) -> dict[str, str]:
    """Only the label a reading is told apart by (the sample name of an age)."""
    return {AGE_NAME_LABEL: labels[AGE_NAME_LABEL]} if AGE_NAME_LABEL in labels else {}
