"""Unit tests: the PromQL strings the reader sends, and the config that shapes them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wattscale.metrics import DcgmLabels, MetricsConfig, QueryBuilder, VllmLabels
from wattscale.metrics.queries import DeploymentTarget, escape_label_value

pytestmark = pytest.mark.unit

T = DeploymentTarget("llm", "llama")


def test_default_selector_uses_deployment_label() -> None:
    q = QueryBuilder(MetricsConfig())
    assert q.vllm_selector(T) == '{namespace="llm",wattscale_io_deployment="llama"}'


def test_pod_regex_selection_escapes_the_name() -> None:
    q = QueryBuilder(MetricsConfig(selection="pod_regex"))
    sel = q.vllm_selector(DeploymentTarget("llm", "llama.3"))
    assert sel == '{namespace="llm",pod=~"llama\\\\.3-[a-z0-9]+-[a-z0-9]+"}'


def test_relabelled_names_and_extra_matchers() -> None:
    cfg = MetricsConfig(
        vllm_labels=VllmLabels(namespace="kubernetes_namespace", pod="kubernetes_pod_name"),
        dcgm_labels=DcgmLabels(namespace="exported_namespace", pod="exported_pod"),
        extra_matchers={"cluster": "eu-1"},
        filter_by_model=True,
    )
    q = QueryBuilder(cfg)
    t = DeploymentTarget("llm", "llama", model="meta-llama/Llama-3.1-8B")
    assert q.vllm_selector(t) == (
        '{kubernetes_namespace="llm",wattscale_io_deployment="llama",'
        'model_name="meta-llama/Llama-3.1-8B",cluster="eu-1"}'
    )
    power = q.gpu_power(t)
    assert 'DCGM_FI_DEV_POWER_USAGE{exported_namespace="llm",cluster="eu-1"}' in power
    assert '"exported_pod", "(.*)"' in power
    assert '"kubernetes_pod_name", "(.*)"' in power
    assert "and on (ws_namespace,ws_pod)" in power


def test_label_values_are_escaped() -> None:
    assert escape_label_value('a"b\\c') == 'a\\"b\\\\c'
    q = QueryBuilder()
    assert 'wattscale_io_deployment="x\\"y"' in q.vllm_selector(DeploymentTarget("n", 'x"y'))


def test_rates_and_gauges() -> None:
    q = QueryBuilder(MetricsConfig(rate_window_seconds=60))
    sel = '{namespace="llm",wattscale_io_deployment="llama"}'
    assert q.generation_tokens_rate(T) == f"sum(rate(vllm:generation_tokens_total{sel}[60s]))"
    assert q.prompt_tokens_rate(T) == f"sum(rate(vllm:prompt_tokens_total{sel}[60s]))"
    assert q.request_rate(T) == f"sum(rate(vllm:request_success_total{sel}[60s]))"
    assert q.running_requests(T) == f"sum(vllm:num_requests_running{sel})"
    assert q.waiting_requests(T) == f"sum(vllm:num_requests_waiting{sel})"
    assert q.pods_reporting(T) == (
        f"count(count by (namespace,pod) (vllm:num_requests_running{sel}))"
    )


def test_new_names_first_then_old_names() -> None:
    q = QueryBuilder()
    sel = '{namespace="llm",wattscale_io_deployment="llama"}'
    assert q.kv_cache_usage(T) == (
        f"(avg(vllm:kv_cache_usage_perc{sel})) or (avg(vllm:gpu_cache_usage_perc{sel}))"
    )
    tpot = q.tpot_quantile(T, 0.95)
    assert tpot.index("vllm:inter_token_latency_seconds_bucket") < tpot.index(
        "vllm:time_per_output_token_seconds_bucket"
    )
    assert tpot.startswith("(histogram_quantile(0.95, sum by (le) (rate(")


def test_quantile_query() -> None:
    q = QueryBuilder(MetricsConfig(rate_window_seconds=30))
    sel = '{namespace="llm",wattscale_io_deployment="llama"}'
    assert q.ttft_quantile(T, 0.5) == (
        f"histogram_quantile(0.5, sum by (le) "
        f"(rate(vllm:time_to_first_token_seconds_bucket{sel}[30s])))"
    )


def test_dcgm_queries() -> None:
    q = QueryBuilder(MetricsConfig(rate_window_seconds=60, dcgm_selection="pod_regex"))
    pod = '"llama-[a-z0-9]+-[a-z0-9]+"'
    assert q.gpu_power(T) == f'sum(DCGM_FI_DEV_POWER_USAGE{{namespace="llm",pod=~{pod}}})'
    assert q.gpu_energy(T) == (
        f'sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{namespace="llm",pod=~{pod}}}[60s]))'
        " / 1000"
    )
    assert q.gpu_utilization(T).endswith(") / 100")
    assert q.gpu_power_by_gpu(T).startswith("max by (UUID,modelName) (")


def test_ages_query_tags_each_name() -> None:
    ages = QueryBuilder().vllm_ages(T)
    assert "label_replace(time() - max(timestamp(vllm:num_requests_running{" in ages
    assert '"ws_name", "vllm:time_to_first_token_seconds_count", "", "")' in ages


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pod_regex_template": "no-placeholder"},
        {"extra_matchers": {"bad-name": "x"}},
        {"vllm_labels": {"pod": "has space"}},
        {"rate_window_seconds": 0},
        {"vllm_names": {"running": ()}},
        {"unknown_field": 1},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MetricsConfig.model_validate(kwargs)
