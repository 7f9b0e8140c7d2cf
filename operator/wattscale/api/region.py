"""The Region CRD: one cluster in one grid region, with its energy feeds and GPU economics.

Written by the platform team, cluster-scoped. InferenceDeployments name Regions in
``spec.placement.regions``; the operator reads each Region's feeds and prices every replica-hour
there.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from wattscale.api.base import ApiModel, DecimalString, Rule
from wattscale.api.common import LABEL_VALUE_PATTERN, NAME_PATTERN, SUBDOMAIN_PATTERN, Condition
from wattscale.api.names import REGION_NAME_RULE
from wattscale.api.sources import CarbonSource, GridEventSource, PriceSource, SecretKeyRef


class ClusterRef(ApiModel):
    """How to reach the region's cluster: a kubeconfig in a Secret on the hub."""

    kubeconfigSecretRef: SecretKeyRef = Field(
        description="Secret key holding a kubeconfig for the member cluster."
    )


class PrometheusEndpoint(ApiModel):
    """Where this region's vLLM and DCGM metrics can be queried."""

    url: str = Field(
        min_length=1,
        pattern=r"^https?://",
        description="Prometheus HTTP API base URL, e.g. http://prometheus.monitoring:9090.",
    )
    bearerTokenSecretRef: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token, if the endpoint needs one."
    )
    timeoutSeconds: int = Field(default=10, ge=1, le=120, description="Query timeout, seconds.")


class Energy(ApiModel):
    """The region's electricity: where prices, carbon and grid events come from."""

    currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency of all costs here."
    )
    pue: DecimalString = Field(
        default=Decimal("1.2"),
        description="Power usage effectiveness of the data centre (facility / IT power), >= 1.",
    )
    price: PriceSource | None = Field(default=None, description="Electricity price source.")
    carbon: CarbonSource | None = Field(default=None, description="Grid carbon intensity source.")
    gridEvents: GridEventSource | None = Field(
        default=None, description="Grid events (demand response, grid stress) source."
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="double(self.pue) >= 1.0 && double(self.pue) <= 3.0",
            check=lambda m: 1 <= m.pue <= 3,
            message="pue must be between 1.0 and 3.0",
            field="pue",
        ),
    )


class GpuOffer(ApiModel):
    """What one GPU product costs and draws in this region, and how many there are."""

    product: str = Field(
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
        description="GPU product (node label nvidia.com/gpu.product).",
    )
    hourlyCost: DecimalString = Field(
        description="Cost of holding one GPU for an hour, in the region's currency: rental "
        "price for a cloud renter, amortised capex (or 0) for an owner who pays only power.",
    )
    idleWatts: int = Field(
        ge=0, le=5000, description="Board power of one idle GPU holding a model, W."
    )
    maxWatts: int = Field(ge=1, le=5000, description="Board power of one GPU at full load, W.")
    hostWattsPerGpu: int = Field(
        default=0, ge=0, le=5000, description="Host (CPU, memory, fans) power per GPU, W."
    )
    available: int = Field(
        ge=0, le=1_000_000, description="GPUs of this product wattscale may use here."
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.idleWatts <= self.maxWatts",
            check=lambda m: m.idleWatts <= m.maxWatts,
            message="must be <= maxWatts",
            field="idleWatts",
            detail=lambda m: f"must be <= maxWatts (got {m.idleWatts} > {m.maxWatts})",
        ),
        Rule(
            cel="double(self.hourlyCost) >= 0.0",
            check=lambda m: m.hourlyCost >= 0,
            message="hourlyCost must not be negative",
            field="hourlyCost",
        ),
    )


class Latency(ApiModel):
    """Network round-trip time from this region to a user population."""

    population: str = Field(min_length=1, description="User population, e.g. us-east-users.")
    rttMs: int = Field(ge=0, le=10000, description="Round-trip time, milliseconds.")


PodSecurityLevel = Literal["restricted", "baseline", "privileged"]


class ModelCacheOffer(ApiModel):
    """A model weights cache the Region's owner offers, referenced by InferenceDeployments by
    name (``spec.engine.modelCache.name``)."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Name deployments use.")
    persistentVolumeClaim: str | None = Field(
        default=None,
        pattern=SUBDOMAIN_PATTERN,
        max_length=253,
        description="A PVC, present in each namespace that uses the cache in this cluster.",
    )
    hostPath: str | None = Field(
        default=None,
        pattern=r"^/[^/]",
        max_length=4096,
        description=(
            "A node directory holding the cache (node-local NVMe), chosen by the Region's "
            "owner only. Needs podSecurity: privileged (restricted and baseline refuse "
            "hostPath volumes)."
        ),
    )
    readOnly: bool = Field(
        default=False,
        description="Mount the cache read-only (weights pre-loaded by the Region's owner).",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.persistentVolumeClaim) != has(self.hostPath)",
            check=lambda m: (m.persistentVolumeClaim is None) != (m.hostPath is None),
            message="set exactly one of persistentVolumeClaim or hostPath",
        ),
        Rule(
            cel="!has(self.hostPath) || !self.hostPath.contains('..')",
            check=lambda m: m.hostPath is None or ".." not in m.hostPath,
            message="hostPath must not contain '..'",
            field="hostPath",
        ),
    )


class RegionWorkloads(ApiModel):
    """What the Region's owner lets InferenceDeployments run in this region, and how."""

    allowedNamespaces: list[Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]] | None = (
        Field(
            default=None,
            max_length=256,
            description=(
                "Hub namespaces whose InferenceDeployments may place replicas here. Absent: "
                "every namespace the operator watches; empty: none."
            ),
            json_schema_extra={"x-kubernetes-list-type": "set"},
        )
    )
    podSecurity: PodSecurityLevel = Field(
        default="restricted",
        description=(
            "Pod Security Standard enforced (pod-security.kubernetes.io/enforce) on the "
            "namespaces the operator creates in this cluster. Namespaces that already exist "
            "are left as they are."
        ),
    )
    modelCaches: list[ModelCacheOffer] = Field(
        default_factory=list,
        max_length=16,
        description="Model caches offered here, referenced by name.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=(
                "self.podSecurity == 'privileged' || "
                "!has(self.modelCaches) || self.modelCaches.all(c, !has(c.hostPath))"
            ),
            check=lambda m: (
                m.podSecurity == "privileged" or all(c.hostPath is None for c in m.modelCaches)
            ),
            message=(
                "a hostPath model cache needs podSecurity: privileged (restricted and baseline "
                "refuse hostPath volumes); offer a PVC instead"
            ),
            field="modelCaches",
        ),
        Rule(
            cel=None,  # x-kubernetes-list-type: map keyed on name refuses duplicates
            check=lambda m: len({c.name for c in m.modelCaches}) == len(m.modelCaches),
            message="each model cache name may be listed once",
            field="modelCaches",
        ),
    )

    def admits(self, namespace: str) -> bool:
        """Whether InferenceDeployments of this hub namespace may place replicas here."""
        return self.allowedNamespaces is None or namespace in self.allowedNamespaces

    def model_cache(self, name: str) -> ModelCacheOffer | None:
        return next((c for c in self.modelCaches if c.name == name), None)


class RegionSpec(ApiModel):
    """What the platform team declares about a region."""

    clusterRef: ClusterRef | None = Field(
        default=None, description="The member cluster; the hub itself when empty."
    )
    prometheus: PrometheusEndpoint | None = Field(
        default=None, description="Where this region's vLLM and DCGM metrics live."
    )
    energy: Energy = Field(default_factory=Energy, description="Electricity feeds and PUE.")
    gpus: list[GpuOffer] = Field(
        min_length=1,
        max_length=32,
        description="GPU products offered here, with cost, power and quota.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["product"],
        },
    )
    latency: list[Latency] = Field(
        default_factory=list,
        max_length=64,
        description="RTT to user populations, for the latency budget.",
    )
    workloads: RegionWorkloads = Field(
        default_factory=RegionWorkloads,
        description=(
            "Which namespaces may run here, the Pod Security level of the namespaces the "
            "operator creates, and the model caches offered."
        ),
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=None,  # x-kubernetes-list-type: map keyed on product refuses duplicates
            check=lambda m: len({g.product for g in m.gpus}) == len(m.gpus),
            message="each GPU product may be listed once",
            field="gpus",
        ),
    )


class SignalStatus(ApiModel):
    """The last value read from one feed, and how old it is."""

    kind: Literal["price", "carbon", "gridEvents"] = Field(description="Which feed.")
    value: str | None = Field(default=None, description="Latest value with unit, as text.")
    fetchedAt: datetime | None = Field(default=None, description="When it was fetched.")
    fresh: bool = Field(default=False, description="False when missing or older than allowed.")
    error: str | None = Field(default=None, description="The last error, if the read failed.")


class RegionStatus(ApiModel):
    """What the operator knows about the region now."""

    observedGeneration: int | None = Field(default=None, description="Last generation read.")
    reachable: bool | None = Field(default=None, description="The cluster answered last check.")
    pricePerKwh: DecimalString | None = Field(default=None, description="Current price/kWh.")
    carbonGramsPerKwh: int | None = Field(default=None, description="Current gCO2eq/kWh.")
    signals: list[SignalStatus] = Field(default_factory=list, description="Per-feed state.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reachable, ...")


class Region(ApiModel):
    """A cluster in one grid region, with its energy feeds and GPU economics."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (REGION_NAME_RULE,)

    apiVersion: Literal["wattscale.io/v1alpha1"] = Field(description="wattscale.io/v1alpha1")
    kind: Literal["Region"] = Field(description="Region")
    metadata: dict[str, object] = Field(default_factory=dict, description="Standard metadata.")
    spec: RegionSpec = Field(description="What the platform team declares.")
    status: RegionStatus | None = Field(default=None, description="Observed state.")
