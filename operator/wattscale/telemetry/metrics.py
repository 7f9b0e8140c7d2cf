"""The operator's own Prometheus metrics: replicas, power, energy, money, carbon, SLO, decisions.

Units are in the names, counters end in ``_total``, and label sets are bounded: per
InferenceDeployment (namespace, deployment), per region, per signal source, per reason code.
Counters of energy, money and carbon are integrated here from the rates the control loop sees
(``rate x elapsed seconds``), so that Grafana's ``increase()`` over a day is "cost today".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

NS = "wattscale"
DEP = ("namespace", "deployment")
DEP_REGION = (*DEP, "region")


@dataclass(frozen=True)
class RegionRates:
    """What one InferenceDeployment runs and spends in one region right now."""

    region: str
    desired_replicas: int
    ready_replicas: int
    traffic_weight_ratio: float
    power_watts_modelled: float
    power_watts_measured: float | None
    energy_cost_per_hour: float
    gpu_cost_per_hour: float
    carbon_grams_per_hour: float
    variants: tuple[tuple[str, int], ...] = ()
    """Replicas wanted per variant, with ``spec.engine.variants`` (empty without)."""


@dataclass(frozen=True)
class DeploymentRates:
    """Everything the loop exports for one InferenceDeployment after one decision."""

    namespace: str
    deployment: str
    currency: str
    regions: tuple[RegionRates, ...]
    counterfactual_cost_per_hour: float
    ttft_target_seconds: float
    tpot_target_seconds: float
    ttft_p95_seconds: float | None
    tpot_p95_seconds: float | None
    capacity_tokens_per_second: float
    capacity_hint_tokens_per_second: float | None
    demand_tokens_per_second: float | None
    gateway_waiting_requests: float | None = None
    """What the scale-to-zero wake query read (None: not read, or unknown)."""


@dataclass
class OperatorMetrics:
    """All metric families, registered on one registry (a fresh one per test)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self._replica_metrics(r)
        self._cost_metrics(r)
        self._slo_metrics(r)
        self._feed_and_loop_metrics(r)

    def _replica_metrics(self, r: CollectorRegistry) -> None:
        """Replicas, traffic and power per deployment and region."""
        self.desired_replicas = Gauge(
            f"{NS}_desired_replicas", "Replicas the operator wants", DEP_REGION, registry=r
        )
        self.ready_replicas = Gauge(
            f"{NS}_ready_replicas", "Ready replicas", DEP_REGION, registry=r
        )
        self.variant_desired_replicas = Gauge(
            f"{NS}_variant_desired_replicas",
            "Replicas the operator wants per GPU variant (with spec.engine.variants)",
            (*DEP_REGION, "variant"),
            registry=r,
        )
        self._variants: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.traffic_weight = Gauge(
            f"{NS}_traffic_weight_ratio",
            "Share of traffic sent to the region",
            DEP_REGION,
            registry=r,
        )
        self.power_watts = Gauge(
            f"{NS}_power_watts",
            "Power drawn incl. PUE; source=modelled|measured",
            (*DEP_REGION, "source"),
            registry=r,
        )

    def _cost_metrics(self, r: CollectorRegistry) -> None:
        """Energy, cost and carbon, and the counterfactual the savings are measured against."""
        self.energy_joules = Counter(
            f"{NS}_energy_joules", "Energy used incl. PUE", DEP_REGION, registry=r
        )
        self.energy_cost = Counter(
            f"{NS}_energy_cost",
            "Electricity cost, in currency",
            (*DEP_REGION, "currency"),
            registry=r,
        )
        self.energy_credit = Counter(
            f"{NS}_energy_credit",
            "Money earned while prices were negative (counters cannot go down), in currency",
            (*DEP_REGION, "currency"),
            registry=r,
        )
        self.gpu_cost = Counter(
            f"{NS}_gpu_cost", "GPU-hour cost, in currency", (*DEP_REGION, "currency"), registry=r
        )
        self.cost_per_hour = Gauge(
            f"{NS}_cost_per_hour",
            "Total cost rate, currency/h",
            (*DEP_REGION, "currency"),
            registry=r,
        )
        self.carbon_grams = Counter(
            f"{NS}_carbon_grams", "Emissions, gCO2eq", DEP_REGION, registry=r
        )
        self.carbon_grams_per_hour = Gauge(
            f"{NS}_carbon_grams_per_hour", "Emission rate, gCO2eq/h", DEP_REGION, registry=r
        )
        self.counterfactual_cost = Counter(
            f"{NS}_counterfactual_cost",
            "Cost the SLO-safe count would have had in the home region, in currency",
            (*DEP, "currency"),
            registry=r,
        )
        self.counterfactual_cost_per_hour = Gauge(
            f"{NS}_counterfactual_cost_per_hour",
            "Counterfactual cost rate, currency/h",
            (*DEP, "currency"),
            registry=r,
        )

    def _slo_metrics(self, r: CollectorRegistry) -> None:
        """The SLO, what was observed against it, capacity, demand and decisions."""
        self.slo_target_seconds = Gauge(
            f"{NS}_slo_target_seconds",
            "SLO p95 target; metric=ttft|tpot",
            (*DEP, "metric"),
            registry=r,
        )
        self.observed_p95_seconds = Gauge(
            f"{NS}_observed_p95_seconds",
            "Observed p95; metric=ttft|tpot",
            (*DEP, "metric"),
            registry=r,
        )
        self.capacity = Gauge(
            f"{NS}_capacity_tokens_per_second",
            "Output tokens/s per replica within the SLO; source=used|hint",
            (*DEP, "source"),
            registry=r,
        )
        self.demand = Gauge(
            f"{NS}_demand_tokens_per_second", "Observed output token demand", DEP, registry=r
        )
        self.gateway_waiting = Gauge(
            f"{NS}_gateway_waiting_requests",
            "Requests waiting for (or failed by) the deployment at the gateway, as the "
            "scale-to-zero wake query reads them",
            DEP,
            registry=r,
        )
        self.decisions = Counter(
            f"{NS}_decisions", "Decisions taken, by reason code", (*DEP, "reason"), registry=r
        )

    def _feed_and_loop_metrics(self, r: CollectorRegistry) -> None:
        """The feeds and Regions, and the control loop's own timings."""
        self.signal_age = Gauge(
            f"{NS}_signal_age_seconds",
            "Age of the newest data point of a feed",
            ("region", "kind", "source"),
            registry=r,
        )
        self.signal_errors = Counter(
            f"{NS}_signal_fetch_errors",
            "Failed feed reads, by error class",
            ("region", "kind", "source", "error"),
            registry=r,
        )
        self.region_price = Gauge(
            f"{NS}_region_price_per_kwh", "Electricity price", ("region", "currency"), registry=r
        )
        self.region_carbon = Gauge(
            f"{NS}_region_carbon_grams_per_kwh", "Grid carbon intensity", ("region",), registry=r
        )
        self.region_available = Gauge(
            f"{NS}_region_available",
            "1 when the region's cluster answers",
            ("region",),
            registry=r,
        )
        self.planner_seconds = Histogram(
            f"{NS}_planner_duration_seconds",
            "Time to compute one plan",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            f"{NS}_reconcile_duration_seconds",
            "Time for one control-loop pass of one InferenceDeployment",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

    def record(self, rates: DeploymentRates, elapsed_seconds: float) -> None:
        """Set gauges from ``rates`` and integrate counters over ``elapsed_seconds``."""
        dep = (rates.namespace, rates.deployment)
        hours = max(0.0, elapsed_seconds) / 3600.0
        for reg in rates.regions:
            labels = (*dep, reg.region)
            self.desired_replicas.labels(*labels).set(reg.desired_replicas)
            self.ready_replicas.labels(*labels).set(reg.ready_replicas)
            for variant, replicas in reg.variants:
                self.variant_desired_replicas.labels(*labels, variant).set(replicas)
                self._variants.setdefault(dep, set()).add((reg.region, variant))
            self.traffic_weight.labels(*labels).set(reg.traffic_weight_ratio)
            self.power_watts.labels(*labels, "modelled").set(reg.power_watts_modelled)
            if reg.power_watts_measured is not None:
                self.power_watts.labels(*labels, "measured").set(reg.power_watts_measured)
            power = (
                reg.power_watts_measured
                if reg.power_watts_measured is not None
                else reg.power_watts_modelled
            )
            self.energy_joules.labels(*labels).inc(power * max(0.0, elapsed_seconds))
            money = (*labels, rates.currency)
            self.energy_cost.labels(*money).inc(max(0.0, reg.energy_cost_per_hour) * hours)
            self.energy_credit.labels(*money).inc(max(0.0, -reg.energy_cost_per_hour) * hours)
            self.gpu_cost.labels(*money).inc(reg.gpu_cost_per_hour * hours)
            self.cost_per_hour.labels(*money).set(reg.energy_cost_per_hour + reg.gpu_cost_per_hour)
            self.carbon_grams.labels(*labels).inc(reg.carbon_grams_per_hour * hours)
            self.carbon_grams_per_hour.labels(*labels).set(reg.carbon_grams_per_hour)
        self.counterfactual_cost.labels(*dep, rates.currency).inc(
            max(0.0, rates.counterfactual_cost_per_hour) * hours
        )
        self.counterfactual_cost_per_hour.labels(*dep, rates.currency).set(
            rates.counterfactual_cost_per_hour
        )
        self.slo_target_seconds.labels(*dep, "ttft").set(rates.ttft_target_seconds)
        self.slo_target_seconds.labels(*dep, "tpot").set(rates.tpot_target_seconds)
        for metric, value in (("ttft", rates.ttft_p95_seconds), ("tpot", rates.tpot_p95_seconds)):
            if value is not None:
                self.observed_p95_seconds.labels(*dep, metric).set(value)
        self.capacity.labels(*dep, "used").set(rates.capacity_tokens_per_second)
        if rates.capacity_hint_tokens_per_second is not None:
            self.capacity.labels(*dep, "hint").set(rates.capacity_hint_tokens_per_second)
        if rates.demand_tokens_per_second is not None:
            self.demand.labels(*dep).set(rates.demand_tokens_per_second)
        if rates.gateway_waiting_requests is not None:
            self.gateway_waiting.labels(*dep).set(rates.gateway_waiting_requests)

    def forget(self, namespace: str, deployment: str, regions: Iterable[str]) -> None:
        """Drop the gauges of a deleted InferenceDeployment (counters stay until restart)."""
        dep = (namespace, deployment)
        for region in regions:
            for gauge in (self.desired_replicas, self.ready_replicas, self.traffic_weight):
                _remove(gauge, (*dep, region))
            for source in ("modelled", "measured"):
                _remove(self.power_watts, (*dep, region, source))
            _remove(self.carbon_grams_per_hour, (*dep, region))
        for region, variant in self._variants.pop(dep, set()):
            _remove(self.variant_desired_replicas, (*dep, region, variant))
        _remove(self.gateway_waiting, dep)


def _remove(gauge: Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def serve(metrics: OperatorMetrics, port: int, address: str = "0.0.0.0") -> None:
    """Expose ``/metrics`` on ``address:port`` in a background thread."""
    start_http_server(port, addr=address, registry=metrics.registry)
