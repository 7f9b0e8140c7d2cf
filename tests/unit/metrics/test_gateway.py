"""The wake query of scale to zero: templated per deployment, summed over regions, never a
made-up zero when a Prometheus does not answer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wattscale.api.inference import DEFAULT_WAKE_QUERY
from wattscale.metrics.gateway import read_waiting, wake_query
from wattscale.metrics.reader import QueryFailedError

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class _Sample:
    value: float


class _Prometheus:
    def __init__(self, *values: float, fails: bool = False) -> None:
        self.values = values
        self.fails = fails

    def query(self, promql: str) -> list[_Sample]:
        if self.fails:
            raise QueryFailedError("prometheus unreachable", unreachable=True)
        return [_Sample(v) for v in self.values]


def test_placeholders_are_replaced_and_escaped() -> None:
    q = wake_query(DEFAULT_WAKE_QUERY, name="llama", namespace="ml", model='org/m"x')
    assert 'inference_pool="llama"' in q
    assert 'model_name="org/m\\"x"' in q
    assert "$" not in q
    custom = wake_query('sum(q{ns="$namespace",n="$name"})', name="a", namespace="b", model="m")
    assert custom == 'sum(q{ns="b",n="a"})'


def test_the_default_reads_the_endpoint_pickers_queue_and_failures() -> None:
    assert "inference_extension_flow_control_queue_size" in DEFAULT_WAKE_QUERY
    assert "inference_objective_request_error_total" in DEFAULT_WAKE_QUERY


def test_regions_are_summed_and_no_series_counts_as_zero() -> None:
    reading = read_waiting(
        [("a", _Prometheus(2.0, 1.0)), ("b", _Prometheus())],  # type: ignore[list-item]
        "q",
    )
    assert reading.waiting_requests == 3.0
    assert reading.problems == ()


def test_one_failed_query_makes_the_reading_unknown() -> None:
    reading = read_waiting(
        [("a", _Prometheus(0.0)), ("b", _Prometheus(fails=True))],  # type: ignore[list-item]
        "q",
    )
    assert reading.waiting_requests is None
    assert reading.problems == ("b: wake query failed: prometheus unreachable",)


def test_no_prometheus_at_all_is_unknown() -> None:
    assert read_waiting([], "q").waiting_requests is None


def test_the_emulated_endpoint_picker_exports_what_the_default_query_reads() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.fakes.gateway_emulator import GatewayEmulator

    epp = GatewayEmulator(pool="llama", model="m")
    epp.set_waiting(4)
    epp.fail(2)
    samples = {
        s.name: s
        for family in text_string_to_metric_families(epp.exposition())
        for s in family.samples
    }
    queue = samples["inference_extension_flow_control_queue_size"]
    assert queue.value == 4
    assert queue.labels["inference_pool"] == "llama"
    errors = samples["inference_objective_request_error_total"]
    assert errors.value == 2
    assert errors.labels["model_name"] == "m"
