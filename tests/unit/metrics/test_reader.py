"""Unit tests: the reader's parsing and every degradation path, with a fake client.

One test uses an in-process loopback server that accepts connections and never answers, to
check that a real HTTP timeout through PrometheusConnect becomes a Missing reading.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException

from wattscale.metrics import (
    CapacityObservation,
    DeploymentTarget,
    MetricsConfig,
    MetricsReader,
    QueryBuilder,
    ReadingStatus,
    observation_from_readings,
)

pytestmark = pytest.mark.unit

T = DeploymentTarget("llm", "llama")
NOW = 1_800_000_000.0


def vec(value: float | str, **labels: str) -> list[dict[str, Any]]:
    return [{"metric": labels, "value": [NOW, str(value)]}]


class FakeClient:
    """Answers by exact query string; unknown queries return an empty vector."""

    def __init__(self, answers: dict[str, Any], error: Exception | None = None) -> None:
        self.answers = answers
        self.error = error
        self.calls: list[str] = []
        self.steps: list[str] = []

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append(query)
        if self.error is not None:
            raise self.error
        answer = self.answers.get(query, [])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        self.calls.append(query)
        self.steps.append(step)
        if self.error is not None:
            raise self.error
        return self.answers.get(query, [])


def healthy(q: QueryBuilder, pods: int = 2, age: float = 1.0) -> dict[str, Any]:
    ages = [
        {"metric": {"ws_name": n}, "value": [NOW, str(age)]}
        for group in q.vllm_sample_names().values()
        for n in group
    ]
    return {
        q.pods_reporting(T): vec(pods),
        q.targets_total(T): vec(pods),
        q.targets_down(T): [],
        q.vllm_ages(T): ages,
        q.request_rate(T): vec(10.0),
        q.prompt_tokens_rate(T): vec(10000.0),
        q.generation_tokens_rate(T): vec(2000.0),
        q.running_requests(T): vec(20),
        q.waiting_requests(T): vec(0),
        q.kv_cache_usage(T): vec(0.25),
        q.ttft_quantile(T, 0.5): vec(0.05),
        q.ttft_quantile(T, 0.95): vec(0.09),
        q.tpot_quantile(T, 0.5): vec(0.012),
        q.tpot_quantile(T, 0.95): vec(0.03),
        q.gpus_reporting(T): vec(pods),
        q.dcgm_age(T): vec(age),
        q.gpu_power(T): vec(900.0),
        q.gpu_energy(T): vec(108000.0),
        q.gpu_utilization(T): vec(0.4),
    }


def reader(answers: dict[str, Any], error: Exception | None = None, **cfg: Any) -> MetricsReader:
    return MetricsReader(
        "http://unused",
        MetricsConfig(**cfg),
        region="eu",
        client=FakeClient(answers, error),
        clock=lambda: NOW,
    )


def test_healthy_read() -> None:
    q = QueryBuilder()
    d = reader(healthy(q)).read(T)
    assert d.prometheus_reachable
    assert d.pods_reporting == 2
    assert d.pods_expected == 2
    assert d.gpus_reporting == 2
    assert d.generation_tokens_per_second.value == 2000.0
    assert d.generation_tokens_per_second.status is ReadingStatus.OK
    assert d.generation_tokens_per_second.age_seconds == 1.0
    assert d.ttft_p95_seconds.value == 0.09
    assert d.tpot_p50_seconds.value == 0.012
    assert d.gpu_power_watts.value == 900.0
    assert d.gpu_energy_joules.value == 108000.0
    assert d.region == "eu"
    assert d.observed_at == datetime.fromtimestamp(NOW, tz=UTC)
    assert all(r.ok for r in d.readings().values())
    assert d.generation_tokens_per_second_per_replica() == 1000.0
    obs = observation_from_readings(d)
    assert obs == CapacityObservation(1000.0, 0.09, 0.03, 0.0, 2, NOW, source="eu")


def test_prometheus_down_is_missing_everywhere_and_stops_early() -> None:
    client_error = requests.exceptions.ConnectionError("refused")
    r = reader({}, error=client_error)
    d = r.read(T)
    assert not d.prometheus_reachable
    assert d.pods_reporting == 0
    for name, reading in d.readings().items():
        assert reading.status is ReadingStatus.MISSING, name
        assert reading.value is None, name
        assert "unreachable" in reading.reason
    assert len(r._client.calls) == 1  # type: ignore[attr-defined]
    assert observation_from_readings(d) is None


def test_query_timeout_is_missing_not_zero() -> None:
    q = QueryBuilder()
    answers = healthy(q)
    answers[q.generation_tokens_rate(T)] = requests.exceptions.ReadTimeout("read timed out")
    answers[q.ttft_quantile(T, 0.95)] = PrometheusApiClientException(
        'HTTP Status Code 503 (b\'{"error":"query timed out in expression evaluation"}\')'
    )
    d = reader(answers).read(T)
    assert d.generation_tokens_per_second.status is ReadingStatus.MISSING
    assert d.generation_tokens_per_second.value is None
    assert "timed out" in d.generation_tokens_per_second.reason
    assert d.ttft_p95_seconds.status is ReadingStatus.MISSING
    assert "timed out" in d.ttft_p95_seconds.reason
    assert d.prompt_tokens_per_second.ok  # the other queries still ran
    assert d.prometheus_reachable


def test_bad_query_is_missing() -> None:
    q = QueryBuilder()
    answers = healthy(q)
    answers[q.running_requests(T)] = PrometheusApiClientException("HTTP Status Code 400 (bad)")
    d = reader(answers).read(T)
    assert d.running_requests.status is ReadingStatus.MISSING
    assert "query failed" in d.running_requests.reason


def test_empty_result_is_missing() -> None:
    q = QueryBuilder()
    answers = healthy(q)
    answers[q.kv_cache_usage(T)] = []
    d = reader(answers).read(T)
    assert d.kv_cache_usage_ratio.status is ReadingStatus.MISSING
    assert d.kv_cache_usage_ratio.reason == "no series"


def test_nan_from_histogram_without_samples_is_missing() -> None:
    q = QueryBuilder()
    answers = healthy(q)
    answers[q.ttft_quantile(T, 0.95)] = vec("NaN")
    answers[q.tpot_quantile(T, 0.95)] = vec("+Inf")
    d = reader(answers).read(T)
    assert d.ttft_p95_seconds.status is ReadingStatus.MISSING
    assert "NaN" in d.ttft_p95_seconds.reason
    assert d.tpot_p95_seconds.value is None
    # The window had no finished requests, but the rate itself is a real zero.
    obs = observation_from_readings(d)
    assert obs is not None
    assert obs.ttft_p95_seconds is None


def test_no_pods_at_all_is_missing_not_zero_load() -> None:
    q = QueryBuilder()
    answers = {q.targets_total(T): vec(0)}
    d = reader(answers).read(T)
    assert d.pods_reporting == 0
    assert d.generation_tokens_per_second.status is ReadingStatus.MISSING
    assert d.generation_tokens_per_second.reason == "no pods reporting"


def test_rate_outliving_its_pods_is_missing() -> None:
    q = QueryBuilder()
    answers = healthy(q)
    answers[q.pods_reporting(T)] = []  # all series gone now; rate() still has the window
    d = reader(answers).read(T)
    assert d.generation_tokens_per_second.status is ReadingStatus.MISSING


def test_partial_scrape_from_up_and_expected() -> None:
    q = QueryBuilder()
    answers = healthy(q, pods=2)
    answers[q.targets_total(T)] = vec(3)
    answers[q.targets_down(T)] = vec(1)
    d = reader(answers).read(T)
    assert d.pods_expected == 3
    assert d.generation_tokens_per_second.status is ReadingStatus.PARTIAL
    assert d.generation_tokens_per_second.value == 2000.0
    assert d.generation_tokens_per_second.usable
    assert not d.generation_tokens_per_second.ok
    assert "2 of 3" in d.generation_tokens_per_second.reason
    # The controller's own count wins when it is larger.
    d = reader(healthy(q, pods=2)).read(T, expected_pods=4)
    assert d.pods_expected == 4
    assert d.ttft_p95_seconds.status is ReadingStatus.PARTIAL


def test_missing_gpu_series_make_gpu_readings_partial() -> None:
    q = QueryBuilder()
    d = reader(healthy(q, pods=2)).read(T, expected_pods=2, expected_gpus=4)
    assert d.generation_tokens_per_second.status is ReadingStatus.OK
    assert d.gpu_power_watts.status is ReadingStatus.PARTIAL
    assert d.gpu_power_watts.reason == "2 of 4 GPUs reporting"
    assert reader(healthy(q, pods=2)).read(T, expected_gpus=2).gpu_power_watts.ok


def test_stale_samples() -> None:
    q = QueryBuilder()
    d = reader(healthy(q, age=600.0), stale_after_seconds=90).read(T)
    assert d.running_requests.status is ReadingStatus.STALE
    assert d.running_requests.value == 20
    assert not d.running_requests.usable
    assert d.gpu_power_watts.status is ReadingStatus.STALE
    assert d.running_requests.value_or(99.0) == 99.0


def test_old_vllm_names_come_back_through_or() -> None:
    # The or-query returns whichever side has data; the reader does not care which.
    q = QueryBuilder()
    answers = healthy(q)
    answers[q.kv_cache_usage(T)] = vec(0.5)
    assert reader(answers).read(T).kv_cache_usage_ratio.value == 0.5


def test_malformed_payload_is_missing() -> None:
    q = QueryBuilder()
    answers = healthy(q)
    answers[q.running_requests(T)] = [{"metric": {}, "value": ["x"]}]
    answers[q.waiting_requests(T)] = "garbage"
    d = reader(answers).read(T)
    assert d.running_requests.status is ReadingStatus.MISSING
    assert d.waiting_requests.status is ReadingStatus.MISSING


def test_demand_history() -> None:
    q = QueryBuilder()
    series = [{"metric": {}, "values": [[NOW, "100"], [NOW + 60, "NaN"], [NOW + 120, "150.5"]]}]
    r = reader({q.generation_tokens_rate(T): series})  # what the live demand reading reads
    start = datetime.fromtimestamp(NOW, tz=UTC)
    h = r.read_demand_history(T, start, start, step_seconds=60)
    assert h.status is ReadingStatus.OK
    assert [(p.t_seconds, p.tokens_per_second) for p in h.points] == [
        (NOW, 100.0),
        (NOW + 120, 150.5),
    ]
    down = reader({}, error=requests.exceptions.ConnectionError("x"))
    h = down.read_demand_history(T, start, start)
    assert h.status is ReadingStatus.MISSING
    assert not h.points
    assert reader({}).read_demand_history(T, start, start).reason == "no series"


def test_capacity_history_joins_by_time() -> None:
    q = QueryBuilder()

    def series(*values: str) -> list[dict[str, Any]]:
        return [{"metric": {}, "values": [[NOW + 60 * i, v] for i, v in enumerate(values)]}]

    answers = {
        q.generation_tokens_rate(T): series("2000", "3000", "0"),
        q.pods_reporting(T): series("2", "2", "0"),
        q.ttft_quantile(T, 0.95): series("0.1", "0.2", "NaN"),
        q.tpot_quantile(T, 0.95): series("0.02", "0.05", "NaN"),
        q.waiting_requests(T): series("0", "4", "0"),
    }
    start = datetime.fromtimestamp(NOW, tz=UTC)
    obs = reader(answers).read_capacity_history(T, start, start)
    assert obs == [
        CapacityObservation(1000.0, 0.1, 0.02, 0.0, 2, NOW, window_seconds=120.0, source="eu"),
        CapacityObservation(1500.0, 0.2, 0.05, 2.0, 2, NOW + 60, window_seconds=120.0, source="eu"),
    ]


def test_capacity_history_is_sampled_at_least_twice_per_rate_window() -> None:
    # Sparser than the rate window, a scale-down inside one window would fall between two
    # samples far apart, and the learner would take that window as steady evidence.
    start = datetime.fromtimestamp(NOW, tz=UTC)
    steps = {}
    for window in (120, 8):
        client = FakeClient({})
        r = MetricsReader("http://unused", MetricsConfig(rate_window_seconds=window), client=client)
        r.read_capacity_history(T, start, start)
        steps[window] = set(client.steps)
    assert steps == {120: {"60s"}, 8: {"4s"}}


def test_gpu_power_samples() -> None:
    q = QueryBuilder()
    answers = {
        q.gpu_power_by_gpu(T): [
            {"metric": {"UUID": "GPU-a", "modelName": "H100"}, "value": [NOW, "400"]},
            {"metric": {"UUID": "GPU-b", "modelName": "H100"}, "value": [NOW, "NaN"]},
        ],
        q.gpu_utilization_by_gpu(T): [
            {"metric": {"UUID": "GPU-a", "modelName": "H100"}, "value": [NOW, "0.5"]},
            {"metric": {"UUID": "GPU-b", "modelName": "H100"}, "value": [NOW, "0.5"]},
        ],
    }
    samples = reader(answers).read_gpu_power_samples(T)
    assert [(s.gpu_uuid, s.utilization_ratio, s.power_watts) for s in samples] == [
        ("GPU-a", 0.5, 400.0)
    ]
    assert (
        reader({}, error=requests.exceptions.ConnectionError("x")).read_gpu_power_samples(T) == []
    )


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    t.join(timeout=2)
    for c in held:
        c.close()
    sock.close()


def test_real_http_timeout_through_prometheus_connect(silent_server: str) -> None:
    r = MetricsReader(silent_server, MetricsConfig(query_timeout_seconds=0.3))
    started = time.monotonic()
    d = r.read(T)
    elapsed = time.monotonic() - started
    assert d.generation_tokens_per_second.status is ReadingStatus.MISSING
    assert "timed out" in d.generation_tokens_per_second.reason
    # After two timeouts the rest of the read is skipped: a hung Prometheus costs ~2 timeouts.
    assert elapsed < 3


def test_connection_refused_through_prometheus_connect() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = MetricsReader(f"http://127.0.0.1:{port}", MetricsConfig(query_timeout_seconds=1))
    started = time.monotonic()
    d = r.read(T)
    assert time.monotonic() - started < 5
    assert not d.prometheus_reachable
    assert d.generation_tokens_per_second.status is ReadingStatus.MISSING


def test_unscraped_pods_are_named_from_failed_scrapes() -> None:
    q = QueryBuilder(MetricsConfig())
    promql = q.unscraped_pods(T)
    assert promql == f"max by (pod) (up{q.vllm_selector(T, with_model=False)} == 0)"
    answers = {promql: vec(0, pod="llama-vllm-b") + vec(0, pod="llama-vllm-a") + vec(0)}
    assert reader(answers).unscraped_pods(T) == ["llama-vllm-a", "llama-vllm-b"]
    assert (
        reader({}, error=requests.exceptions.ConnectionError("refused")).unscraped_pods(T) is None
    )


class _SlowEmptyPrometheus(BaseHTTPRequestHandler):
    """Answers every query with an empty vector after a short wait, on HTTP/1.1 keep-alive,
    so that concurrent reads hold their connections at the same time."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(0.2)
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_concurrent_reads_share_one_prometheus_without_discarding_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kopf's handler threads read one region's Prometheus at once; requests' default pool
    (10) discarded connections with a warning per read at 200 deployments (a stressed e2e
    run's operator log)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowEmptyPrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reader = MetricsReader(f"http://127.0.0.1:{server.server_address[1]}")
        caplog.set_level(logging.WARNING, logger="urllib3")
        with ThreadPoolExecutor(max_workers=24) as pool:
            answers = list(pool.map(lambda _: reader.query("up"), range(48)))
    finally:
        server.shutdown()
        server.server_close()
    assert answers == [[]] * 48
    full = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert full == []
