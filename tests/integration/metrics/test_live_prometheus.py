"""Integration: the reader against a real Prometheus scraping the vLLM/DCGM emulator.

Each reading is checked against what the emulator was told to do: rates within a few percent,
latency quantiles in the right histogram bucket, power and energy against the emulated GPUs;
and the degradation cases with a real server: a pod endpoint gone, Prometheus stopped.
"""

from __future__ import annotations

import bisect
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.vllm_emulator import (
    TPOT_BUCKETS_SECONDS,
    TTFT_BUCKETS_SECONDS,
    ConstantLoad,
    Emulator,
)
from tests.integration.metrics.live import WINDOW_SECONDS, Stack, settle
from wattscale.metrics import ReadingStatus, fit_power_model

pytestmark = pytest.mark.integration


def same_or_adjacent_bucket(measured: float, exact: float, bounds: tuple[float, ...]) -> bool:
    """histogram_quantile interpolates inside a bucket: it must land in the bucket that holds
    the exact quantile (or the next one, as the windows are not perfectly aligned)."""
    return abs(bisect.bisect_left(bounds, measured) - bisect.bisect_left(bounds, exact)) <= 1


def test_rates_gauges_and_pods_match_the_offered_load(shared_stack: Stack) -> None:
    d = shared_stack.deployments["steady"]
    r = shared_stack.reader().read(d.target)
    assert r.prometheus_reachable
    assert r.pods_reporting == 2
    assert r.pods_expected == 2
    # 2,000 output tok/s of 1,000-in/200-out requests: 10 req/s, 10,000 prompt tok/s.
    assert r.generation_tokens_per_second.status is ReadingStatus.OK
    assert r.generation_tokens_per_second.value == pytest.approx(2000.0, rel=0.04)
    # Prompt tokens and requests are counted at admission, 1,000 tokens at a time: a 5-s window
    # holds ~50 requests, so +-1 request is 2 %, and rate()'s extrapolation over 1-s scrapes
    # (late on a loaded machine) adds a request or two more. Output tokens flow smoothly.
    assert r.prompt_tokens_per_second.value == pytest.approx(10000.0, rel=0.10)
    assert r.request_rate_per_second.value == pytest.approx(10.0, rel=0.10)
    # Little's law: in flight ~ 10 req/s x (~0.2 s of decode) per the model; bounded sanity.
    assert r.running_requests.value is not None
    assert 2 <= r.running_requests.value <= 60
    assert r.waiting_requests.value == 0.0
    assert r.kv_cache_usage_ratio.value is not None
    assert 0.0 < r.kv_cache_usage_ratio.value < 0.2
    assert r.generation_tokens_per_second.age_seconds is not None
    assert r.generation_tokens_per_second.age_seconds < 3.0
    assert r.generation_tokens_per_second_per_replica() == pytest.approx(1000.0, rel=0.04)


def test_latency_quantiles_land_in_the_right_bucket(shared_stack: Stack) -> None:
    d = shared_stack.deployments["steady"]
    r = shared_stack.reader().read(d.target)
    exact_ttft95, exact_tpot95 = d.emulator.exact_quantiles(d.emulator.now - WINDOW_SECONDS)
    exact_ttft50, exact_tpot50 = d.emulator.exact_quantiles(d.emulator.now - WINDOW_SECONDS, 0.5)
    for reading, exact, bounds in (
        (r.ttft_p95_seconds, exact_ttft95, TTFT_BUCKETS_SECONDS),
        (r.ttft_p50_seconds, exact_ttft50, TTFT_BUCKETS_SECONDS),
        (r.tpot_p95_seconds, exact_tpot95, TPOT_BUCKETS_SECONDS),
        (r.tpot_p50_seconds, exact_tpot50, TPOT_BUCKETS_SECONDS),
    ):
        assert reading.status is ReadingStatus.OK
        assert reading.value is not None
        assert same_or_adjacent_bucket(reading.value, exact, bounds), (reading.value, exact)


def test_gpu_power_energy_and_utilisation(shared_stack: Stack) -> None:
    d = shared_stack.deployments["steady"]
    r = shared_stack.reader().read(d.target)
    assert r.gpus_reporting == 2
    emulated = d.emulator.total_power_watts()
    assert r.gpu_power_watts.status is ReadingStatus.OK
    assert r.gpu_power_watts.value == pytest.approx(emulated, rel=0.05)
    # Energy over the window ~ power x window (the counter is in mJ; the reading in J).
    assert r.gpu_energy_joules.value is not None
    assert r.gpu_energy_joules.value == pytest.approx(emulated * WINDOW_SECONDS, rel=0.15)
    assert r.gpu_utilization_ratio.value is not None
    assert 0.1 < r.gpu_utilization_ratio.value < 0.6
    samples = shared_stack.reader().read_gpu_power_samples(d.target)
    assert len(samples) == 2
    assert {s.gpu_product for s in samples} == {"NVIDIA H100 80GB HBM3"}
    for s in samples:
        params = d.emulator.params
        model_watts = (
            params.idle_watts + (params.max_watts - params.idle_watts) * s.utilization_ratio
        )
        assert s.power_watts == pytest.approx(model_watts, rel=0.05)
    # Too few points for a fit: the configured model stands.
    assert fit_power_model(samples, "NVIDIA H100 80GB HBM3").source == "configured"


def test_older_vllm_names_are_read(shared_stack: Stack) -> None:
    d = shared_stack.deployments["legacy"]
    r = shared_stack.reader().read(d.target)
    assert r.kv_cache_usage_ratio.status is ReadingStatus.OK  # vllm:gpu_cache_usage_perc
    assert r.tpot_p95_seconds.status is ReadingStatus.OK  # vllm:time_per_output_token_seconds
    assert r.generation_tokens_per_second.value == pytest.approx(800.0, rel=0.05)


def test_idle_deployment_reads_zero_load_and_missing_latency(shared_stack: Stack) -> None:
    d = shared_stack.deployments["idle"]
    r = shared_stack.reader().read(d.target)
    assert r.pods_reporting == 1
    # A real zero: the pod is there and served nothing.
    assert r.generation_tokens_per_second.status is ReadingStatus.OK
    assert r.generation_tokens_per_second.value == 0.0
    # No requests in the window: histogram_quantile is NaN -> Missing, not 0 s.
    assert r.ttft_p95_seconds.status is ReadingStatus.MISSING
    assert "NaN" in r.ttft_p95_seconds.reason
    assert r.tpot_p50_seconds.value is None


def test_unknown_deployment_is_missing_not_zero(shared_stack: Stack) -> None:
    from wattscale.metrics import DeploymentTarget

    r = shared_stack.reader().read(DeploymentTarget("team-a", "nope"))
    assert r.prometheus_reachable
    assert r.pods_reporting == 0
    for name, reading in r.readings().items():
        assert reading.status is ReadingStatus.MISSING, name
        assert reading.value is None, name


def test_demand_history_for_warm_start(shared_stack: Stack) -> None:
    d = shared_stack.deployments["steady"]
    end = datetime.now(tz=UTC) - timedelta(seconds=1)
    history = shared_stack.reader().read_demand_history(
        d.target, end - timedelta(seconds=3), end, step_seconds=1.0
    )
    assert history.status is ReadingStatus.OK
    assert len(history.points) >= 2
    for p in history.points:
        assert p.tokens_per_second == pytest.approx(2000.0, rel=0.06)
    assert history.points[-1].t_seconds == pytest.approx(end.timestamp(), abs=1.0)


def test_pod_endpoint_gone_gives_partial_then_scale_down_is_ok(own_stack) -> None:  # type: ignore[no-untyped-def]
    emu = Emulator(ConstantLoad(3000.0), replicas=3, namespace="ns", deployment="gemma", seed=5)
    stack = own_stack({"d": emu})
    stack.wait_for_pods("d", 3)
    stack.wait_for_window("d")
    reader = stack.reader()
    target = stack.deployments["d"].target
    assert reader.read(target).generation_tokens_per_second.status is ReadingStatus.OK

    victim = emu.pods()[0]
    emu.set_endpoint_alive(victim, False)  # crashed: still discovered, scrape fails
    deadline = time.monotonic() + 10
    r = reader.read(target)
    while r.pods_reporting != 2 and time.monotonic() < deadline:
        settle(0.5)
        r = reader.read(target)
    assert r.pods_reporting == 2
    assert r.pods_expected == 3
    for name in ("generation_tokens_per_second", "ttft_p95_seconds", "gpu_power_watts"):
        reading = r.readings()[name]
        assert reading.status is ReadingStatus.PARTIAL, name
        assert reading.value is not None
        assert "2 of 3" in reading.reason
    assert r.gpus_reporting == 2  # its GPU series are joined to the reporting pods only
    # Issue 14 item 4: MetricsComplete names the pod Prometheus failed to scrape.
    assert reader.unscraped_pods(target) == [victim]

    # The same pod removed from discovery (scaled down): 2 of 2, Ok again.
    emu.set_endpoint_alive(victim, True)
    emu.set_replicas(2)
    stack.wait_for_pods("d", 2)
    deadline = time.monotonic() + 10
    r = reader.read(target)
    while r.pods_expected != 2 and time.monotonic() < deadline:
        settle(0.5)
        r = reader.read(target)
    assert r.pods_reporting == 2
    assert r.generation_tokens_per_second.status is ReadingStatus.OK


def test_prometheus_stopped_gives_missing_quickly(own_stack) -> None:  # type: ignore[no-untyped-def]
    emu = Emulator(ConstantLoad(1000.0), replicas=1, namespace="ns", deployment="phi", seed=6)
    stack = own_stack({"d": emu})
    stack.wait_for_pods("d", 1)
    reader = stack.reader()
    target = stack.deployments["d"].target
    assert reader.read(target).prometheus_reachable
    stack.prometheus.stop()
    started = time.monotonic()
    r = reader.read(target)
    assert time.monotonic() - started < 5
    assert not r.prometheus_reachable
    for name, reading in r.readings().items():
        assert reading.status is ReadingStatus.MISSING, name
        assert reading.value is None, name
        assert "unreachable" in reading.reason, name
    end = datetime.now(tz=UTC)
    history = reader.read_demand_history(target, end - timedelta(minutes=5), end)
    assert history.status is ReadingStatus.MISSING
    assert history.points == ()


def test_pod_regex_selection_reads_the_same(shared_stack: Stack) -> None:
    # Clusters that keep no pod labels: select by the Deployment's pod-name pattern instead.
    d = shared_stack.deployments["steady"]
    by_label = shared_stack.reader().read(d.target)
    by_regex = shared_stack.reader(selection="pod_regex", dcgm_selection="pod_regex").read(d.target)
    assert by_regex.pods_reporting == 2
    assert by_regex.gpus_reporting == 2
    assert by_regex.generation_tokens_per_second.status is ReadingStatus.OK
    assert by_regex.generation_tokens_per_second.value == pytest.approx(
        by_label.generation_tokens_per_second.value, rel=0.03
    )
    assert by_regex.gpu_power_watts.value == pytest.approx(by_label.gpu_power_watts.value, rel=0.05)
