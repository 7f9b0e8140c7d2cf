"""A vLLM + dcgm-exporter emulator for tests: real metric families, a simple serving model.

Tests only; the product never imports this. What it emulates, at the real interface:

* one ``/pods/<pod>/metrics`` endpoint per vLLM replica with vLLM's metric families and labels
  (``model_name``, ``engine``): ``vllm:num_requests_running|waiting``, ``vllm:kv_cache_usage_perc``,
  ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``, ``vllm:request_success_total``
  (``finished_reason``), histograms ``vllm:time_to_first_token_seconds`` and
  ``vllm:inter_token_latency_seconds`` with vLLM's bucket boundaries. ``legacy_names=True``
  serves an older vLLM instead (``vllm:gpu_cache_usage_perc``,
  ``vllm:time_per_output_token_seconds``, no ``engine`` label);
* one ``/dcgm/metrics`` endpoint, like a dcgm-exporter on the node with Kubernetes pod mapping
  on: ``DCGM_FI_DEV_POWER_USAGE`` (W), ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ, counter),
  ``DCGM_FI_DEV_GPU_UTIL`` (%), labelled ``gpu``, ``UUID``, ``pci_bus_id``, ``device``,
  ``modelName``, ``Hostname``, ``DCGM_FI_DRIVER_VERSION``, ``container``, ``namespace``, ``pod``;
* ``/sd``: Prometheus HTTP service discovery listing those endpoints with the target labels a
  Kubernetes pod-SD + ``labelmap`` config would produce (``namespace``, ``pod``,
  ``wattscale_io_deployment``, and ``wattscale_io_variant`` for a ``variant`` other than the
  first, whose pods carry none), so scaling the emulator changes what Prometheus scrapes;
* ``/control`` (POST JSON) and ``/state`` (GET) for the e2e suite: ``{"replicas": 3}``,
  ``{"tokens_per_second": 2000}`` (add ``"trace": true, "time_compression": 60`` for the Azure
  trace shape), ``{"kill_pod": "<pod>"}`` / ``{"revive_pod": "<pod>"}``.

Serving model (per replica, continuous batching, fluid in small time steps): requests arrive
(Poisson, round-robin over replicas), wait in a FIFO queue, are admitted while the batch has
room (``max_num_seqs``, KV-cache tokens), pay their prefill (``prefill_seconds_per_token``), then
decode one token per engine step of ``base_step_seconds + per_seq_step_seconds x batch``. So TPOT
grows with the batch, TTFT with the queue, and both with load per replica; adding replicas
brings them down. GPU power is ``idle + (max - idle) x intensity`` where intensity is the share
of the replica's token throughput ceiling in use (also exported as GPU_UTIL).

The load profile is a constant rate or a time-compressed slice of the Azure LLM conversation
trace (its request-rate shape and real prompt/output token counts), scaled to a chosen mean
output tokens/s. :func:`measure_capacity` finds the true per-replica capacity under an SLO by
running the same model in virtual time, for tests to compare with what was learned.

Run standalone::

    python -m tests.fakes.vllm_emulator --port 18000 --replicas 2 --tokens-per-second 3000
"""

from __future__ import annotations

import argparse
import bisect
import csv
import heapq
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from wattscale.metrics.config import VLLM_TPOT_BUCKETS_SECONDS, VLLM_TTFT_BUCKETS_SECONDS

TTFT_BUCKETS_SECONDS = VLLM_TTFT_BUCKETS_SECONDS
TPOT_BUCKETS_SECONDS = VLLM_TPOT_BUCKETS_SECONDS
"""vLLM's bucket boundaries (vllm/v1/metrics/loggers.py), as the operator records them."""

DEFAULT_TRACE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "traces"
    / "azure_llm_2023_conv.csv"
).resolve()


@dataclass(frozen=True)
class EngineParams:
    """One replica's performance model (defaults: roughly an 8B model on one H100)."""

    base_step_seconds: float = 0.008
    per_seq_step_seconds: float = 0.00008
    prefill_seconds_per_token: float = 1 / 30000
    max_num_seqs: int = 256
    prefill_chunk_tokens: int = 512
    kv_cache_tokens: int = 600_000
    jitter_sigma: float = 0.08
    gpus_per_replica: int = 1
    gpu_product: str = "NVIDIA H100 80GB HBM3"
    idle_watts: float = 110.0
    max_watts: float = 690.0
    power_noise_watts: float = 4.0

    def intensity(self, tokens_per_second: float, prompt_per_output: float) -> float:
        """Share of the replica's throughput ceiling in use (0..1)."""
        k = prompt_per_output * self.prefill_seconds_per_token + self.per_seq_step_seconds
        return max(0.0, min(1.0, tokens_per_second * k))


class LoadProfile(Protocol):
    """Requests per second at time t (seconds since start) and a request's token counts."""

    def rate_rps(self, t_seconds: float) -> float: ...

    def sample_tokens(self, rng: random.Random) -> tuple[int, int]: ...

    def mean_output_tokens(self) -> float: ...

    def mean_prompt_tokens(self) -> float: ...


@dataclass(frozen=True)
class ConstantLoad:
    """A constant output-token rate with fixed-size requests."""

    tokens_per_second: float
    prompt_tokens: int = 1000
    output_tokens: int = 200

    def rate_rps(self, t_seconds: float) -> float:
        return self.tokens_per_second / self.output_tokens

    def sample_tokens(self, rng: random.Random) -> tuple[int, int]:
        return self.prompt_tokens, self.output_tokens

    def mean_output_tokens(self) -> float:
        return float(self.output_tokens)

    def mean_prompt_tokens(self) -> float:
        return float(self.prompt_tokens)


@dataclass(frozen=True)
class RampLoad:
    """Output tokens/s moving linearly from ``start`` to ``end`` over ``duration_seconds``."""

    start_tokens_per_second: float
    end_tokens_per_second: float
    duration_seconds: float
    prompt_tokens: int = 1000
    output_tokens: int = 200
    start_at_seconds: float = 0.0
    """Emulated time at which the ramp starts (``Emulator.now`` when it is installed)."""

    def rate_rps(self, t_seconds: float) -> float:
        f = min(1.0, max(0.0, (t_seconds - self.start_at_seconds) / self.duration_seconds))
        tps = self.start_tokens_per_second + f * (
            self.end_tokens_per_second - self.start_tokens_per_second
        )
        return tps / self.output_tokens

    def sample_tokens(self, rng: random.Random) -> tuple[int, int]:
        return self.prompt_tokens, self.output_tokens

    def mean_output_tokens(self) -> float:
        return float(self.output_tokens)

    def mean_prompt_tokens(self) -> float:
        return float(self.prompt_tokens)


class TraceLoad:
    """The Azure conversation trace: its arrival-rate shape (binned, time-compressed) and its
    real (prompt, output) token counts, scaled to ``mean_tokens_per_second`` output tokens/s.

    ``time_compression`` 60 plays the trace's hour in one minute; ``bin_seconds`` is the bin of
    the rate shape in trace time. ``flat=True`` keeps the token mix but makes the rate constant
    (for measuring the true capacity of that mix).
    """

    def __init__(
        self,
        mean_tokens_per_second: float,
        *,
        path: Path = DEFAULT_TRACE,
        time_compression: float = 1.0,
        bin_seconds: float = 60.0,
        max_output_tokens: int | None = None,
        flat: bool = False,
    ) -> None:
        rows = list(csv.DictReader(path.open()))
        if not rows:
            raise ValueError(f"empty trace {path}")
        self.t_rel = [float(r["t_rel_s"]) for r in rows]
        self.tokens = [
            (
                int(r["context_tokens"]),
                min(int(r["generated_tokens"]), max_output_tokens or 10**9) or 1,
            )
            for r in rows
        ]
        self.duration_seconds = self.t_rel[-1]
        self.time_compression = time_compression
        self.bin_seconds = bin_seconds
        n_bins = int(self.duration_seconds // bin_seconds) + 1
        counts = [0] * n_bins
        for t in self.t_rel:
            counts[int(t // bin_seconds)] += 1
        mean_count = sum(counts) / n_bins
        self.shape = [1.0 if flat else c / mean_count for c in counts]  # mean 1
        self._mean_out = sum(o for _, o in self.tokens) / len(self.tokens)
        self._mean_prompt = sum(p for p, _ in self.tokens) / len(self.tokens)
        self.mean_tokens_per_second = mean_tokens_per_second

    def shape_at(self, t_seconds: float) -> float:
        """Relative load (mean 1) at emulated time t, looping over the trace."""
        trace_t = (t_seconds * self.time_compression) % self.duration_seconds
        return self.shape[min(len(self.shape) - 1, int(trace_t // self.bin_seconds))]

    def rate_rps(self, t_seconds: float) -> float:
        return self.mean_tokens_per_second * self.shape_at(t_seconds) / self._mean_out

    def sample_tokens(self, rng: random.Random) -> tuple[int, int]:
        return self.tokens[rng.randrange(len(self.tokens))]

    def mean_output_tokens(self) -> float:
        return self._mean_out

    def mean_prompt_tokens(self) -> float:
        return self._mean_prompt


@dataclass
class _Request:
    arrival: float
    prompt_tokens: int
    output_tokens: int
    prefill_left: int = 0
    start_step: int = 0


class _Histogram:
    """A cumulative histogram with weighted observations (vLLM's buckets)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        if count <= 0:
            return
        self.counts[bisect.bisect_left(self.bounds, value)] += count
        self.total += count
        self.sum += value * count

    def cumulative(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, c in zip(self.bounds, self.counts, strict=False):
            acc += c
            out.append((repr(float(bound)), float(acc)))
        out.append(("+Inf", float(self.total)))
        return out


@dataclass
class Replica:
    """One emulated vLLM pod (and its GPUs): an engine that runs step by step.

    Each engine step decodes one token for every sequence in the batch and prefills up to
    ``prefill_chunk_tokens`` of the oldest admitted prompts (chunked prefill); it lasts
    ``base + per_seq x batch + chunk x prefill_seconds_per_token``. The inter-token latency a
    sequence sees is the step time, so it grows with the batch and with prefill interference;
    TTFT is queueing + prefill + the step that emits the first token.
    """

    pod: str
    params: EngineParams
    rng: random.Random
    gpu_uuids: list[str]
    waiting: deque[_Request] = field(default_factory=deque)
    prefilling: deque[_Request] = field(default_factory=deque)
    decoding: list[tuple[int, int, _Request]] = field(default_factory=list)
    """Heap of (finish step, sequence number, request)."""
    step_index: int = 0
    engine_time: float = 0.0
    prompt_tokens_total: float = 0.0
    generation_tokens_total: float = 0.0
    success_stop: int = 0
    success_length: int = 0
    ttft: _Histogram = field(default_factory=lambda: _Histogram(TTFT_BUCKETS_SECONDS))
    tpot: _Histogram = field(default_factory=lambda: _Histogram(TPOT_BUCKETS_SECONDS))
    energy_millijoules: list[float] = field(default_factory=list)
    power_watts: list[float] = field(default_factory=list)
    util_percent: list[float] = field(default_factory=list)
    endpoint_alive: bool = True
    recent_tokens: float = 0.0
    """Exponentially smoothed output tokens/s (drives the power model)."""
    ttft_log: list[tuple[float, float]] = field(default_factory=list)
    """(emulated time, TTFT seconds) of each first token, when ``keep_logs``."""
    tpot_log: list[tuple[float, float, int]] = field(default_factory=list)
    """(emulated time, inter-token seconds, tokens), when ``keep_logs``."""
    keep_logs: bool = False
    _seq: int = 0
    _kv_prompt: int = 0
    _kv_start_sum: int = 0
    _power_time: float = 0.0

    def __post_init__(self) -> None:
        n = self.params.gpus_per_replica
        self.energy_millijoules = [0.0] * n
        self.power_watts = [self.params.idle_watts] * n
        self.util_percent = [0.0] * n

    @property
    def running(self) -> int:
        """Sequences in the batch (prefilling or decoding), as vLLM's num_requests_running."""
        return len(self.prefilling) + len(self.decoding)

    @property
    def kv_used_tokens(self) -> float:
        decoded = len(self.decoding) * self.step_index - self._kv_start_sum
        return float(self._kv_prompt + max(0, decoded))

    def _admit(self) -> None:
        p = self.params
        kv = self.kv_used_tokens
        while self.waiting and self.running < p.max_num_seqs:
            req = self.waiting[0]
            if req.arrival > self.engine_time:
                break
            if kv + req.prompt_tokens + req.output_tokens > p.kv_cache_tokens and self.running:
                break
            self.waiting.popleft()
            req.prefill_left = req.prompt_tokens
            kv += req.prompt_tokens
            self._kv_prompt += req.prompt_tokens
            self.prefilling.append(req)

    def advance_to(self, until: float) -> None:
        """Run engine steps until the engine clock reaches ``until``."""
        p = self.params
        produced_before = self.generation_tokens_total
        while True:
            self._admit()
            if not self.prefilling and not self.decoding:
                # Idle: jump to the next arrival (or to the end of this advance).
                nxt = self.waiting[0].arrival if self.waiting else until
                if nxt >= until:
                    self.engine_time = max(self.engine_time, until)
                    break
                self.engine_time = max(self.engine_time, nxt)
                continue
            batch = len(self.decoding)
            chunk = min(p.prefill_chunk_tokens, sum(r.prefill_left for r in self.prefilling))
            step = p.base_step_seconds + p.per_seq_step_seconds * batch
            step += chunk * p.prefill_seconds_per_token
            if self.engine_time + step > until:
                break
            self.engine_time += step
            self.step_index += 1
            now = self.engine_time
            if batch:
                itl = step * math.exp(self.rng.gauss(0.0, p.jitter_sigma))
                self.tpot.observe(itl, batch)
                if self.keep_logs:
                    self.tpot_log.append((now, itl, batch))
                self.generation_tokens_total += batch
            left = chunk
            while left > 0 and self.prefilling:
                req = self.prefilling[0]
                take = min(left, req.prefill_left)
                req.prefill_left -= take
                left -= take
                self.prompt_tokens_total += take
                if req.prefill_left == 0:
                    self.prefilling.popleft()
                    ttft = (now - req.arrival) * math.exp(self.rng.gauss(0.0, p.jitter_sigma))
                    self.ttft.observe(ttft)
                    if self.keep_logs:
                        self.ttft_log.append((now, ttft))
                    self.generation_tokens_total += 1
                    req.start_step = self.step_index
                    self._kv_start_sum += self.step_index
                    self._seq += 1
                    heapq.heappush(
                        self.decoding, (self.step_index + req.output_tokens - 1, self._seq, req)
                    )
            while self.decoding and self.decoding[0][0] <= self.step_index:
                _, _, req = heapq.heappop(self.decoding)
                self._kv_prompt -= req.prompt_tokens
                self._kv_start_sum -= req.start_step
                if req.output_tokens >= 1000:
                    self.success_length += 1
                else:
                    self.success_stop += 1
        self._update_power(until - self._power_time, self.generation_tokens_total - produced_before)
        self._power_time = max(self._power_time, until)

    def _update_power(self, dt: float, produced: float) -> None:
        p = self.params
        if dt <= 0:
            return
        alpha = min(1.0, dt / 2.0)
        self.recent_tokens += alpha * (produced / dt - self.recent_tokens)
        for g in range(p.gpus_per_replica):
            intensity = p.intensity(self.recent_tokens, self.prompt_per_output)
            watts = p.idle_watts + (p.max_watts - p.idle_watts) * intensity
            watts += self.rng.gauss(0.0, p.power_noise_watts)
            self.power_watts[g] = watts
            self.util_percent[g] = round(100.0 * intensity, 1)
            self.energy_millijoules[g] += watts * dt * 1000.0

    prompt_per_output: float = 5.0


class _VllmCollector(Collector):
    def __init__(self, replica: Replica, model: str, legacy_names: bool) -> None:
        self.replica = replica
        self.model = model
        self.legacy = legacy_names

    def collect(self) -> Iterator[Any]:
        r = self.replica
        names = ["model_name"] if self.legacy else ["model_name", "engine"]
        values = [self.model] if self.legacy else [self.model, "0"]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=names)
            g.add_metric(values, value)
            return g

        yield gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            r.running,
        )
        yield gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            len(r.waiting),
        )
        kv = min(1.0, r.kv_used_tokens / r.params.kv_cache_tokens)
        if self.legacy:
            yield gauge(
                "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", kv
            )
        else:
            yield gauge(
                "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv
            )
        for name, doc, total in (
            ("vllm:prompt_tokens", "Number of prefill tokens processed.", r.prompt_tokens_total),
            (
                "vllm:generation_tokens",
                "Number of generation tokens processed.",
                r.generation_tokens_total,
            ),
        ):
            c = CounterMetricFamily(name, doc, labels=names)
            c.add_metric(values, float(math.floor(total)))
            yield c
        c = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=[*names, "finished_reason"],
        )
        c.add_metric([*values, "stop"], float(r.success_stop))
        c.add_metric([*values, "length"], float(r.success_length))
        yield c
        ttft = HistogramMetricFamily(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            labels=names,
        )
        ttft.add_metric(values, buckets=r.ttft.cumulative(), sum_value=r.ttft.sum)
        yield ttft
        tpot_name = (
            "vllm:time_per_output_token_seconds"
            if self.legacy
            else "vllm:inter_token_latency_seconds"
        )
        tpot = HistogramMetricFamily(
            tpot_name, "Histogram of inter-token latency in seconds.", labels=names
        )
        tpot.add_metric(values, buckets=r.tpot.cumulative(), sum_value=r.tpot.sum)
        yield tpot


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Emulator:
    """The emulated deployment: replicas behind a round-robin load balancer, one DCGM node."""

    def __init__(
        self,
        load: LoadProfile,
        *,
        replicas: int = 1,
        params: EngineParams | None = None,
        namespace: str = "llm",
        deployment: str = "llama",
        model: str = "meta-llama/Llama-3.1-8B-Instruct",
        hostname: str = "gpu-node-0",
        legacy_names: bool = False,
        seed: int = 7,
        keep_logs: bool = False,
        poisson: bool = True,
        variant: str = "",
    ) -> None:
        self.load = load
        self.variant = variant
        """The variant its pods serve (``""``: the first, whose pods carry no variant label)."""
        self.poisson = poisson
        self.params = params or EngineParams()
        self.namespace = namespace
        self.deployment = deployment
        self.model = model
        self.hostname = hostname
        self.legacy_names = legacy_names
        self.rng = random.Random(seed)
        self.keep_logs = keep_logs
        self.now = 0.0
        self.lock = threading.RLock()
        self.replicas: list[Replica] = []
        self._registries: dict[str, CollectorRegistry] = {}
        self._next_pod = 0
        self._next_gpu = 0
        self._rr = 0
        self._arrival_debt = 0.0
        self.rs_hash = f"{self.rng.getrandbits(40):010x}"
        self.set_replicas(replicas)

    # -- control -----------------------------------------------------------------------------

    def set_load(self, load: LoadProfile) -> None:
        with self.lock:
            self.load = load

    def set_replicas(self, n: int) -> None:
        """Scale to ``n`` replicas: new pods start empty; removed pods' requests are dropped."""
        with self.lock:
            while len(self.replicas) < n:
                suffix = "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                workload = f"{self.deployment}-{self.variant}" if self.variant else self.deployment
                pod = f"{workload}-{self.rs_hash[:10]}-{suffix}"
                uuids = []
                for _ in range(self.params.gpus_per_replica):
                    uuids.append(f"GPU-{self.rng.getrandbits(128):032x}")
                    self._next_gpu += 1
                rep = Replica(
                    pod,
                    self.params,
                    random.Random(self.rng.getrandbits(32)),
                    uuids,
                    keep_logs=self.keep_logs,
                )
                rep.engine_time = self.now
                rep._power_time = self.now
                self.replicas.append(rep)
                reg = CollectorRegistry(auto_describe=False)
                reg.register(_VllmCollector(rep, self.model, self.legacy_names))
                self._registries[pod] = reg
            while len(self.replicas) > n:
                rep = self.replicas.pop()
                self._registries.pop(rep.pod, None)

    def set_endpoint_alive(self, pod: str, alive: bool) -> None:
        """Make a pod's /metrics fail (503) while it stays in service discovery."""
        with self.lock:
            for rep in self.replicas:
                if rep.pod == pod:
                    rep.endpoint_alive = alive

    def pods(self) -> list[str]:
        with self.lock:
            return [r.pod for r in self.replicas]

    # -- simulation --------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Advance the emulated world by ``dt`` seconds."""
        with self.lock:
            self.now += dt
            if not self.replicas:
                return
            expected = self.load.rate_rps(self.now - dt / 2) * dt + self._arrival_debt
            if self.poisson:
                n = self._poisson(expected)
                self._arrival_debt = 0.0
            else:  # evenly spaced arrivals: rates exact for accuracy tests
                n = int(expected)
                self._arrival_debt = expected - n
            if self.poisson:
                arrivals = sorted(self.now - dt * self.rng.random() for _ in range(n))
            else:
                arrivals = [self.now - dt + dt * (i + 0.5) / max(1, n) for i in range(n)]
            for arrival in arrivals:
                prompt, output = self.load.sample_tokens(self.rng)
                rep = self.replicas[self._rr % len(self.replicas)]
                self._rr += 1
                rep.waiting.append(_Request(arrival, prompt, output))
            ratio = self.load.mean_prompt_tokens() / max(1.0, self.load.mean_output_tokens())
            for rep in self.replicas:
                rep.prompt_per_output = ratio
                rep.advance_to(self.now)

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        if lam > 50:
            return max(0, round(self.rng.gauss(lam, math.sqrt(lam))))
        limit, k, prod = math.exp(-lam), 0, self.rng.random()
        while prod > limit:
            k += 1
            prod *= self.rng.random()
        return k

    # -- exposition --------------------------------------------------------------------------

    def pod_metrics(self, pod: str) -> bytes | None:
        """The pod's /metrics in Prometheus text format, or None if it is gone or dead."""
        with self.lock:
            reg = self._registries.get(pod)
            rep = next((r for r in self.replicas if r.pod == pod), None)
            if reg is None or rep is None or not rep.endpoint_alive:
                return None
            return generate_latest(reg)

    def dcgm_metrics(self) -> bytes:
        """The node's dcgm-exporter /metrics (text format as dcgm-exporter writes it)."""
        families = (
            ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "power"),
            (
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                "counter",
                "Total energy consumption since boot (in mJ).",
                "energy",
            ),
            ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "util"),
        )
        lines: list[str] = []
        with self.lock:
            for name, kind, doc, what in families:
                lines.append(f"# HELP {name} {doc}")
                lines.append(f"# TYPE {name} {kind}")
                index = 0
                for rep in self.replicas:
                    for g, uuid in enumerate(rep.gpu_uuids):
                        value = {
                            "power": rep.power_watts[g],
                            "energy": math.floor(rep.energy_millijoules[g]),
                            "util": rep.util_percent[g],
                        }[what]
                        labels = {
                            "gpu": str(index),
                            "UUID": uuid,
                            "pci_bus_id": f"00000000:{index + 0x18:02X}:00.0",
                            "device": f"nvidia{index}",
                            "modelName": self.params.gpu_product,
                            "Hostname": self.hostname,
                            "DCGM_FI_DRIVER_VERSION": "550.90.07",
                            "container": "vllm",
                            "namespace": self.namespace,
                            "pod": rep.pod,
                        }
                        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                        lines.append(f"{name}{{{text}}} {value}")
                        index += 1
        return ("\n".join(lines) + "\n").encode()

    def sd_targets(self, address: str) -> list[dict[str, Any]]:
        """Prometheus HTTP-SD target groups for ``address`` (host:port of this emulator)."""
        with self.lock:
            groups: list[dict[str, Any]] = [
                {
                    "targets": [address],
                    "labels": {
                        "__metrics_path__": f"/pods/{rep.pod}/metrics",
                        "namespace": self.namespace,
                        "pod": rep.pod,
                        "wattscale_io_deployment": self.deployment,
                        **({"wattscale_io_variant": self.variant} if self.variant else {}),
                        "job": "vllm",
                    },
                }
                for rep in self.replicas
            ]
            groups.append(
                {
                    "targets": [address],
                    "labels": {"__metrics_path__": "/dcgm/metrics", "job": "dcgm-exporter"},
                }
            )
            return groups

    def exact_quantiles(self, since_seconds: float, q: float = 0.95) -> tuple[float, float]:
        """Exact (TTFT, TPOT) quantile over requests since emulated time ``since_seconds``
        (needs ``keep_logs=True``)."""
        with self.lock:
            ttft = [(v, 1) for r in self.replicas for t, v in r.ttft_log if t >= since_seconds]
            tpot = [(v, c) for r in self.replicas for t, v, c in r.tpot_log if t >= since_seconds]
        return weighted_quantile(ttft, q), weighted_quantile(tpot, q)

    def total_power_watts(self) -> float:
        """Current board power of all GPUs."""
        with self.lock:
            return sum(sum(r.power_watts) for r in self.replicas)

    def state(self) -> dict[str, Any]:
        """A summary for humans and the e2e suite."""
        with self.lock:
            return {
                "now_seconds": self.now,
                "replicas": len(self.replicas),
                "pods": [r.pod for r in self.replicas],
                "rate_rps": self.load.rate_rps(self.now),
                "offered_tokens_per_second": self.load.rate_rps(self.now)
                * self.load.mean_output_tokens(),
                "running": sum(r.running for r in self.replicas),
                "waiting": sum(len(r.waiting) for r in self.replicas),
            }


class EmulatorServer:
    """Serves an :class:`Emulator` over HTTP on 127.0.0.1 and runs its clock in real time."""

    def __init__(self, emulator: Emulator, port: int = 0, tick_seconds: float = 0.05) -> None:
        self.emulator = emulator
        self.tick_seconds = tick_seconds
        handler = _make_handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmulatorServer:
        t1 = threading.Thread(target=self.httpd.serve_forever, name="emulator-http", daemon=True)
        t2 = threading.Thread(target=self._tick, name="emulator-clock", daemon=True)
        self._threads = [t1, t2]
        for t in self._threads:
            t.start()
        return self

    def _tick(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_seconds):
            now = time.monotonic()
            self.emulator.advance(now - last)
            last = now

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _make_handler(server: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    emu = server.emulator

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            text = "text/plain; version=0.0.4; charset=utf-8"
            if path == "/sd":
                body = json.dumps(emu.sd_targets(server.address)).encode()
                self._send(200, body, "application/json")
            elif path == "/dcgm/metrics":
                self._send(200, emu.dcgm_metrics(), text)
            elif path.startswith("/pods/") and path.endswith("/metrics"):
                pod = path[len("/pods/") : -len("/metrics")]
                body = emu.pod_metrics(pod)
                if body is None:
                    self._send(503, b"pod not serving\n", "text/plain")
                else:
                    self._send(200, body, text)
            elif path == "/state":
                self._send(200, json.dumps(emu.state()).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/control":
                self._send(404, b"not found\n", "text/plain")
                return
            length = int(self.headers.get("Content-Length", "0"))
            try:
                cmd = json.loads(self.rfile.read(length) or b"{}")
                if "replicas" in cmd:
                    emu.set_replicas(int(cmd["replicas"]))
                if "tokens_per_second" in cmd:
                    tps = float(cmd["tokens_per_second"])
                    if cmd.get("trace"):
                        compression = float(cmd.get("time_compression", 60.0))
                        emu.set_load(TraceLoad(tps, time_compression=compression))
                    else:
                        emu.set_load(ConstantLoad(tps))
                if "kill_pod" in cmd:
                    emu.set_endpoint_alive(str(cmd["kill_pod"]), False)
                if "revive_pod" in cmd:
                    emu.set_endpoint_alive(str(cmd["revive_pod"]), True)
            except (ValueError, TypeError, KeyError) as exc:
                self._send(400, f"{exc}\n".encode(), "text/plain")
                return
            self._send(200, json.dumps(emu.state()).encode(), "application/json")

    return Handler


# -- ground truth ------------------------------------------------------------------------------


def weighted_quantile(values: list[tuple[float, int]], q: float = 0.95) -> float:
    """Exact quantile of (value, count) pairs (NaN when empty)."""
    if not values:
        return math.nan
    values = sorted(values)
    total = sum(c for _, c in values)
    target, acc = q * total, 0
    for v, c in values:
        acc += c
        if acc >= target:
            return v
    return values[-1][0]


def run_virtual(
    load: LoadProfile,
    *,
    seconds: float,
    params: EngineParams | None = None,
    replicas: int = 1,
    dt: float = 0.05,
    seed: int = 11,
    warmup_seconds: float = 30.0,
) -> tuple[float, float, float]:
    """Run the model without HTTP in virtual time; return (output tokens/s per replica,
    exact p95 TTFT, exact p95 TPOT) measured after the warm-up."""
    emu = Emulator(load, replicas=replicas, params=params, seed=seed, keep_logs=True)
    t = 0.0
    while t < warmup_seconds:
        emu.advance(dt)
        t += dt
    gen0 = sum(r.generation_tokens_total for r in emu.replicas)
    for r in emu.replicas:
        r.ttft_log.clear()
        r.tpot_log.clear()
    while t < warmup_seconds + seconds:
        emu.advance(dt)
        t += dt
    gen = sum(r.generation_tokens_total for r in emu.replicas) - gen0
    ttft = [(v, 1) for r in emu.replicas for _, v in r.ttft_log]
    tpot = [(v, c) for r in emu.replicas for _, v, c in r.tpot_log]
    return gen / seconds / replicas, weighted_quantile(ttft), weighted_quantile(tpot)


def measure_capacity(
    ttft_slo_seconds: float | None,
    tpot_slo_seconds: float | None,
    *,
    params: EngineParams | None = None,
    prompt_tokens: int = 1000,
    output_tokens: int = 200,
    load_factory: Callable[[float], LoadProfile] | None = None,
    seconds: float = 240.0,
    iterations: int = 12,
) -> float:
    """True capacity: the largest constant output tokens/s per replica whose exact p95 TTFT and
    TPOT (over ``seconds`` of steady state) meet the SLO, by bisection on the model."""
    params = params or EngineParams()

    def make(tps: float) -> LoadProfile:
        if load_factory is not None:
            return load_factory(tps)
        return ConstantLoad(tps, prompt_tokens, output_tokens)

    probe = make(1.0)
    k = (probe.mean_prompt_tokens() / probe.mean_output_tokens()) * params.prefill_seconds_per_token
    ceiling = 1.0 / (k + params.per_seq_step_seconds)
    lo, hi = 0.0, ceiling * 1.05

    def meets(tps: float) -> bool:
        _, ttft, tpot = run_virtual(make(tps), seconds=seconds, params=params)
        ok = True
        if ttft_slo_seconds is not None:
            ok = ok and ttft <= ttft_slo_seconds
        if tpot_slo_seconds is not None:
            ok = ok and tpot <= tpot_slo_seconds
        return ok

    for _ in range(iterations):
        mid = (lo + hi) / 2
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: serve an emulated deployment until interrupted."""
    ap = argparse.ArgumentParser(
        prog="python -m tests.fakes.vllm_emulator", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--port", type=int, default=18000)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--tokens-per-second", type=float, default=1000.0, help="mean output tokens/s")
    ap.add_argument("--trace", action="store_true", help="drive with the Azure trace shape")
    ap.add_argument("--time-compression", type=float, default=60.0)
    ap.add_argument("--namespace", default="llm")
    ap.add_argument("--deployment", default="llama")
    ap.add_argument("--model", default="meta-llama/Llama-3.1-8B-Instruct")
    ap.add_argument("--legacy-names", action="store_true", help="serve older vLLM metric names")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--variant", default="", help="the pods' variant label (none: the first)")
    ap.add_argument("--gpus-per-replica", type=int, default=1)
    ap.add_argument("--gpu-product", default=EngineParams.gpu_product)
    args = ap.parse_args(argv)
    params = EngineParams(gpus_per_replica=args.gpus_per_replica, gpu_product=args.gpu_product)
    load: LoadProfile
    if args.trace:
        load = TraceLoad(args.tokens_per_second, time_compression=args.time_compression)
    else:
        load = ConstantLoad(args.tokens_per_second)
    emu = Emulator(
        load,
        replicas=args.replicas,
        namespace=args.namespace,
        deployment=args.deployment,
        model=args.model,
        legacy_names=args.legacy_names,
        seed=args.seed,
        params=params,
        variant=args.variant,
    )
    server = EmulatorServer(emu, port=args.port).start()
    print(f"vllm emulator on http://{server.address} (SD at /sd, control at /control)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()


__all__ = [
    "ConstantLoad",
    "Emulator",
    "EmulatorServer",
    "EngineParams",
    "LoadProfile",
    "RampLoad",
    "TraceLoad",
    "measure_capacity",
    "run_virtual",
    "weighted_quantile",
]
