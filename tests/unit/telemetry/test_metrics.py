"""The operator's metrics integrate rates into counters and use bounded, unit-named families."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from wattscale.telemetry.metrics import DeploymentRates, OperatorMetrics, RegionRates

pytestmark = pytest.mark.unit


def _rates(price_cost: float = 1.5, measured: float | None = None) -> DeploymentRates:
    return DeploymentRates(
        namespace="ml",
        deployment="llama",
        currency="USD",
        regions=(
            RegionRates(
                region="us-west",
                desired_replicas=3,
                ready_replicas=2,
                traffic_weight_ratio=1.0,
                power_watts_modelled=2000.0,
                power_watts_measured=measured,
                energy_cost_per_hour=price_cost,
                gpu_cost_per_hour=7.5,
                carbon_grams_per_hour=400.0,
            ),
        ),
        counterfactual_cost_per_hour=10.0,
        ttft_target_seconds=0.5,
        tpot_target_seconds=0.05,
        ttft_p95_seconds=0.31,
        tpot_p95_seconds=None,
        capacity_tokens_per_second=6500.0,
        capacity_hint_tokens_per_second=6000.0,
        demand_tokens_per_second=12000.0,
    )


def _value(m: OperatorMetrics, name: str, **labels: str) -> float:
    value = m.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} missing"
    return value


def test_counters_integrate_rates_over_elapsed_time() -> None:
    m = OperatorMetrics()
    m.record(_rates(), elapsed_seconds=1800)
    m.record(_rates(), elapsed_seconds=1800)
    dep = {"namespace": "ml", "deployment": "llama"}
    region = {**dep, "region": "us-west"}
    assert _value(m, "wattscale_energy_cost_total", **region, currency="USD") == pytest.approx(1.5)
    assert _value(m, "wattscale_gpu_cost_total", **region, currency="USD") == pytest.approx(7.5)
    assert _value(m, "wattscale_energy_joules_total", **region) == pytest.approx(2000 * 3600)
    assert _value(m, "wattscale_carbon_grams_total", **region) == pytest.approx(400)
    assert _value(m, "wattscale_counterfactual_cost_total", **dep, currency="USD") == 10
    assert _value(m, "wattscale_desired_replicas", **region) == 3


def test_measured_power_wins_over_the_model_for_energy() -> None:
    m = OperatorMetrics()
    m.record(_rates(measured=1000.0), elapsed_seconds=3600)
    region = {"namespace": "ml", "deployment": "llama", "region": "us-west"}
    assert _value(m, "wattscale_energy_joules_total", **region) == pytest.approx(1000 * 3600)
    assert _value(m, "wattscale_power_watts", **region, source="modelled") == 2000


def test_negative_prices_are_credited_not_lost() -> None:
    m = OperatorMetrics()
    m.record(_rates(price_cost=-0.4), elapsed_seconds=3600)
    region = {"namespace": "ml", "deployment": "llama", "region": "us-west", "currency": "USD"}
    assert _value(m, "wattscale_energy_cost_total", **region) == 0
    assert _value(m, "wattscale_energy_credit_total", **region) == pytest.approx(0.4)


def test_missing_latency_is_not_exported_as_zero() -> None:
    m = OperatorMetrics()
    m.record(_rates(), elapsed_seconds=30)
    text = generate_latest(m.registry).decode()
    assert 'wattscale_observed_p95_seconds{deployment="llama",metric="ttft",namespace="ml"}' in text
    assert 'metric="tpot",namespace="ml"} ' not in text.split("wattscale_observed_p95")[-1]


def test_forget_drops_gauges_of_a_deleted_deployment() -> None:
    m = OperatorMetrics()
    m.record(_rates(), elapsed_seconds=30)
    m.forget("ml", "llama", ["us-west"])
    labels = {"namespace": "ml", "deployment": "llama", "region": "us-west"}
    assert m.registry.get_sample_value("wattscale_desired_replicas", labels) is None
