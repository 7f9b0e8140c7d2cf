"""Unit tests of the test emulator itself: its exposition parses as vLLM's and DCGM's would,
and its model behaves (throughput follows load, latency grows with load per replica)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.vllm_emulator import ConstantLoad, Emulator, TraceLoad, run_virtual

pytestmark = pytest.mark.unit


def families(text: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text.decode()):
        out[fam.name] = [(s.name, s.labels, s.value) for s in fam.samples]
    return out


def test_vllm_exposition_has_current_names_and_labels() -> None:
    emu = Emulator(ConstantLoad(1000.0), replicas=1)
    for _ in range(40):
        emu.advance(0.05)
    body = emu.pod_metrics(emu.pods()[0])
    assert body is not None
    fams = families(body)
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:request_success",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
    ):
        assert name in fams, name
    _, labels, _ = fams["vllm:num_requests_running"][0]
    assert labels == {"model_name": "meta-llama/Llama-3.1-8B-Instruct", "engine": "0"}
    buckets = [s for s in fams["vllm:inter_token_latency_seconds"] if s[0].endswith("_bucket")]
    assert [b[1]["le"] for b in buckets][:3] == ["0.01", "0.025", "0.05"]
    assert fams["vllm:generation_tokens"][0][0] == "vllm:generation_tokens_total"


def test_legacy_exposition() -> None:
    emu = Emulator(ConstantLoad(1000.0), replicas=1, legacy_names=True)
    emu.advance(0.5)
    body = emu.pod_metrics(emu.pods()[0])
    assert body is not None
    fams = families(body)
    assert "vllm:gpu_cache_usage_perc" in fams
    assert "vllm:time_per_output_token_seconds" in fams
    assert "vllm:kv_cache_usage_perc" not in fams
    assert "engine" not in fams["vllm:num_requests_running"][0][1]


def test_dcgm_exposition() -> None:
    emu = Emulator(ConstantLoad(1000.0), replicas=2)
    emu.advance(1.0)
    fams = families(emu.dcgm_metrics())
    power = fams["DCGM_FI_DEV_POWER_USAGE"]
    assert len(power) == 2
    assert {s[1]["pod"] for s in power} == set(emu.pods())
    assert set(power[0][1]) >= {"gpu", "UUID", "modelName", "Hostname", "namespace", "pod"}
    energy = fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    assert energy[0][2] > 0
    # dcgm-exporter writes the counter without a _total suffix (Python's parser adds one).
    assert b"\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in emu.dcgm_metrics()


def test_dead_or_removed_pod_serves_nothing() -> None:
    emu = Emulator(ConstantLoad(100.0), replicas=2)
    pod = emu.pods()[0]
    emu.set_endpoint_alive(pod, False)
    assert emu.pod_metrics(pod) is None
    emu.set_replicas(1)
    assert len(emu.sd_targets("127.0.0.1:1")) == 2  # one pod + the DCGM endpoint


def test_throughput_follows_load_and_latency_grows_with_it() -> None:
    low = run_virtual(ConstantLoad(500.0), seconds=60.0, warmup_seconds=10.0)
    high = run_virtual(ConstantLoad(2500.0), seconds=60.0, warmup_seconds=10.0)
    assert low[0] == pytest.approx(500.0, rel=0.1)
    assert high[0] == pytest.approx(2500.0, rel=0.1)
    assert high[1] > low[1]  # TTFT p95
    assert high[2] > low[2]  # TPOT p95
    # Two replicas at the same total load: each half as loaded, lower latency.
    split = run_virtual(ConstantLoad(2500.0), seconds=60.0, warmup_seconds=10.0, replicas=2)
    assert split[0] == pytest.approx(1250.0, rel=0.1)
    assert split[1] < high[1]


def test_trace_profile_has_mean_one_shape() -> None:
    load = TraceLoad(1000.0)
    mean = sum(load.shape) / len(load.shape)
    assert mean == pytest.approx(1.0)
    assert load.mean_output_tokens() == pytest.approx(211, abs=1)
    assert max(load.shape) > 1.3


def test_sd_labels_a_pod_with_its_variant_the_first_with_none() -> None:
    first = Emulator(ConstantLoad(0.0), replicas=1)
    other = Emulator(ConstantLoad(0.0), replicas=1, variant="a100")
    assert "wattscale_io_variant" not in first.sd_targets("127.0.0.1:1")[0]["labels"]
    labels = other.sd_targets("127.0.0.1:1")[0]["labels"]
    assert labels["wattscale_io_variant"] == "a100"
    assert labels["wattscale_io_deployment"] == "llama"
    assert labels["pod"].startswith("llama-a100-")
