"""The InferenceDeployment CRD: a model served by vLLM, its latency SLO and where it may run.

Written by an ML team. The operator keeps enough vLLM replicas to meet ``spec.slo`` and places
them in the allowed regions where a replica-hour costs least; what it did is in ``status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from wattscale.api.base import ApiModel, DecimalString, Rule
from wattscale.api.common import (
    ENV_NAME_PATTERN,
    LABEL_VALUE_PATTERN,
    NAME_PATTERN,
    QUANTITY_PATTERN,
    SECRET_KEY_PATTERN,
    SUBDOMAIN_PATTERN,
    Condition,
    Decision,
    NamespacedName,
)
from wattscale.api.names import INFERENCE_NAME_RULE

Objective = Literal["cost", "carbon", "balanced"]
Mode = Literal["Active", "DryRun", "Paused"]
RegionName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=32)]
MAX_REPLICAS = 10_000
"""More replicas than any fleet runs; bounds the planner's integers and the CRD's."""

DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"


class SecretKeySelector(ApiModel):
    """A key of a Secret in the InferenceDeployment's namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=SUBDOMAIN_PATTERN, description="Secret name."
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY_PATTERN,
        description="Key within the Secret.",
    )


class EnvVar(ApiModel):
    """An environment variable for the vLLM container: a literal value or a Secret key."""

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=ENV_NAME_PATTERN,
        description="Variable name, e.g. HF_TOKEN.",
    )
    value: str | None = Field(default=None, description="Literal value.")
    secretKeyRef: SecretKeySelector | None = Field(
        default=None, description="Take the value from a Secret key (e.g. a Hugging Face token)."
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.value) != has(self.secretKeyRef)",
            check=lambda m: (m.value is None) != (m.secretKeyRef is None),
            message="set exactly one of value or secretKeyRef",
        ),
    )


class ModelCache(ApiModel):
    """Where model weights are cached, so that a new replica loads faster.

    Either a cache the Region's owner offers (``name``: a PVC or a node path they chose, see
    Region ``spec.workloads.modelCaches``) or a PVC of this namespace. A node path cannot be
    chosen here: ``hostPath`` is kept in the schema only to refuse it with a message naming the
    replacement (it would let anyone who may create an InferenceDeployment mount any node path).
    """

    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=63,
        description=(
            "A model cache every region in placement.regions offers (Region "
            "spec.workloads.modelCaches[].name)."
        ),
    )
    persistentVolumeClaim: str | None = Field(
        default=None,
        pattern=SUBDOMAIN_PATTERN,
        max_length=253,
        description=(
            "A PVC of this namespace (ReadOnlyMany/ReadWriteMany) holding the cache, in every "
            "member cluster."
        ),
    )
    hostPath: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "No longer accepted: a node path is the Region owner's to choose. Reference a "
            "cache the Region offers with name instead."
        ),
    )
    mountPath: str = Field(
        default="/root/.cache/huggingface",
        pattern=r"^/",
        max_length=4096,
        description="Where the cache is mounted in the pod (HF_HOME points there).",
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.hostPath)",
            check=lambda m: m.hostPath is None,
            message=(
                "hostPath is no longer accepted: ask the Region owner for a named cache "
                "(Region spec.workloads.modelCaches) and set modelCache.name to it"
            ),
            field="hostPath",
        ),
        Rule(
            cel="has(self.name) != has(self.persistentVolumeClaim)",
            check=lambda m: (m.name is None) != (m.persistentVolumeClaim is None),
            message="set exactly one of name or persistentVolumeClaim",
        ),
    )


VARIANT_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_VARIANTS = 4


class Variant(ApiModel):
    """One way to serve the model: a GPU product, GPUs per replica and extra vLLM arguments."""

    name: str = Field(
        min_length=1,
        max_length=15,
        pattern=VARIANT_NAME_PATTERN,
        description="Variant name (a-z, 0-9 and '-', starting with a letter), e.g. h100-tp1.",
    )
    gpuProduct: str = Field(
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
        description="GPU product (nvidia.com/gpu.product and the Region's spec.gpus[].product).",
    )
    gpusPerReplica: int = Field(
        default=1, ge=1, le=16, description="GPUs per replica (the tensor-parallel size)."
    )
    args: list[str] = Field(
        default_factory=list,
        description="Extra `vllm serve` arguments after engine.args, e.g. --quantization=fp8.",
    )
    tokensPerSecondPerReplica: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Output tokens/s one replica serves within the SLO (a prior, learned online; "
        "unset: spec.capacity.tokensPerSecondPerReplica).",
    )


class Engine(ApiModel):
    """The vLLM engine: container image, arguments and the GPUs one replica needs."""

    image: str = Field(default=DEFAULT_VLLM_IMAGE, min_length=1, description="vLLM image.")
    args: list[str] = Field(
        default_factory=list,
        description="Extra `vllm serve` arguments, e.g. --max-model-len=8192.",
    )
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables.")
    gpusPerReplica: int = Field(
        default=1, ge=1, le=16, description="GPUs per replica (the tensor-parallel size)."
    )
    gpuProduct: str = Field(
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
        description=(
            "GPU product, matched against the node label nvidia.com/gpu.product and the "
            "Region's spec.gpus[].product, e.g. NVIDIA-H100-80GB-HBM3."
        ),
    )
    cpu: Quantity = Field(default="8", description="CPU request per replica (a Quantity, e.g. 8).")
    memory: Quantity = Field(default="64Gi", description="Memory request per replica (a Quantity).")
    shmSize: Quantity = Field(
        default="16Gi", description="Size of the /dev/shm volume (a Quantity)."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port vLLM listens on.")
    modelCache: ModelCache | None = Field(default=None, description="Model weights cache volume.")
    variants: list[Variant] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_VARIANTS,
        description=(
            "GPU variants the operator chooses from, per region (unset: one variant, from "
            "gpuProduct and gpusPerReplica). gpuProduct must equal variants[0].gpuProduct: the "
            "first variant is the workload <name>-vllm the deployment ran before."
        ),
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.variants) || self.variants[0].gpuProduct == self.gpuProduct",
            check=lambda m: not m.variants or m.variants[0].gpuProduct == m.gpuProduct,
            message="with variants, gpuProduct must equal variants[0].gpuProduct (the first "
            "variant is the workload <name>-vllm)",
            field="gpuProduct",
        ),
        Rule(
            cel="!has(self.variants) || self.variants.all(v, "
            "self.variants.exists_one(w, w.name == v.name))",
            check=lambda m: not m.variants or len({v.name for v in m.variants}) == len(m.variants),
            message="variant names must be unique",
            field="variants",
        ),
    )

    def resolved_variants(self, capacity_hint: int | None) -> list[ResolvedVariant]:
        """The variants in force: ``variants``, or one implicit variant (name empty) from
        gpuProduct, gpusPerReplica and the deployment's ``capacity_hint``."""
        if not self.variants:
            return [ResolvedVariant("", self.gpuProduct, self.gpusPerReplica, (), capacity_hint)]
        return [
            ResolvedVariant(
                v.name,
                v.gpuProduct,
                v.gpusPerReplica,
                tuple(v.args),
                v.tokensPerSecondPerReplica or capacity_hint,
            )
            for v in self.variants
        ]


@dataclass(frozen=True)
class ResolvedVariant:
    """A variant as the controller uses it (the implicit one has the name "")."""

    name: str
    gpu_product: str
    gpus_per_replica: int
    args: tuple[str, ...]
    capacity_hint: int | None


class Slo(ApiModel):
    """The latency objective and the replica bounds."""

    ttftP95Ms: int = Field(
        ge=1, le=600_000, description="p95 time to first token target, milliseconds."
    )
    tpotP95Ms: int = Field(
        ge=1, le=60_000, description="p95 time per output token target, milliseconds."
    )
    e2eP95Ms: int | None = Field(
        default=None,
        ge=1,
        le=3_600_000,
        description="Optional p95 end-to-end request latency, milliseconds.",
    )
    minReplicas: int = Field(
        default=1, ge=0, le=MAX_REPLICAS, description="Never fewer replicas than this."
    )
    maxReplicas: int = Field(
        ge=1,
        le=MAX_REPLICAS,
        description=(
            "Never more replicas than this, in all regions, except while a region that an"
            " announced grid event caps is emptied: its replacements start before its"
            " replicas go."
        ),
    )
    minRegions: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Spread over at least this many regions (for resilience).",
    )
    headroomPercent: int | None = Field(
        default=None,
        ge=0,
        le=400,
        description=(
            "Capacity kept above the expected demand peak, percent. Unset (the default): "
            "derived from the measured forecast error and a 90 % target utilisation."
        ),
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            check=lambda m: m.minReplicas <= m.maxReplicas,
            message="must be >= minReplicas",
            field="maxReplicas",
            detail=lambda m: f"must be >= minReplicas (got {m.maxReplicas} < {m.minReplicas})",
        ),
        Rule(
            cel="self.minRegions <= self.maxReplicas",
            check=lambda m: m.minRegions <= m.maxReplicas,
            message="minRegions must be <= maxReplicas: each region needs a replica",
            field="minRegions",
        ),
    )


class UserPopulation(ApiModel):
    """A group of users whose requests must meet the SLO, with their share of the traffic."""

    name: str = Field(min_length=1, description="Population name, as in Region spec.latency.")
    sharePercent: int = Field(ge=0, le=100, description="Share of requests, percent.")


class Placement(ApiModel):
    """Where replicas may run and what the operator optimises."""

    regions: list[RegionName] = Field(
        min_length=1,
        max_length=64,
        description="Names of the Region objects this deployment may run in.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    homeRegion: RegionName | None = Field(
        default=None,
        description=(
            "The region a static deployment would use; the baseline savings are measured "
            "against. Defaults to the first of regions."
        ),
    )
    objective: Objective = Field(
        default="cost",
        description=(
            "cost: minimise money (GPU-hours + electricity); carbon: minimise emissions; "
            "balanced: money with carbon priced at carbonPricePerTonne."
        ),
    )
    carbonPricePerTonne: DecimalString | None = Field(
        default=None,
        description="Internal carbon price per tonne CO2eq, in the regions' currency.",
    )
    minSavingsPercent: int = Field(
        default=5,
        ge=0,
        le=100,
        description="Move replicas only when the saving beats the move's cost by this percent.",
    )
    maxShiftPerStep: int = Field(
        default=2,
        ge=1,
        le=MAX_REPLICAS,
        description="At most this many replicas change region per step.",
    )
    coldStartSeconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="How long a new replica takes to load its model and become Ready.",
    )
    scaleDownStabilizationSeconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="Scale down only when lower targets held this long (like the HPA's window).",
    )
    drainSeconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="Keep a shifted-away replica this long before removal.",
    )
    users: list[UserPopulation] = Field(
        default_factory=list,
        description="User populations and their traffic shares, for the latency budget.",
    )
    httpRoute: NamespacedName | None = Field(
        default=None,
        description=(
            "A Gateway API HTTPRoute in this namespace: its backendRefs named <name>-<region> "
            "get the traffic weights (per mille); nothing else in the route is changed."
        ),
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=None,  # x-kubernetes-list-type: set makes the API server refuse duplicates
            check=lambda m: len(set(m.regions)) == len(m.regions),
            message="regions must not repeat",
            field="regions",
        ),
        Rule(
            cel="!has(self.homeRegion) || self.homeRegion in self.regions",
            check=lambda m: m.homeRegion is None or m.homeRegion in m.regions,
            message="homeRegion must be one of regions",
            field="homeRegion",
        ),
        Rule(
            cel="self.objective != 'balanced' || has(self.carbonPricePerTonne)",
            check=lambda m: m.objective != "balanced" or m.carbonPricePerTonne is not None,
            message="objective balanced needs carbonPricePerTonne",
            field="carbonPricePerTonne",
        ),
    )


class Capacity(ApiModel):
    """What one replica serves; a hint the operator corrects from measurements."""

    tokensPerSecondPerReplica: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description=(
            "Output tokens/s one replica serves within the SLO. A prior: the operator "
            "learns the real value online from vLLM metrics."
        ),
    )


DEFAULT_WAKE_QUERY = (
    '(sum(inference_extension_flow_control_queue_size{inference_pool="$name"}) or vector(0))'
    ' + (sum(increase(inference_objective_request_error_total{model_name="$model"}[2m]))'
    " or vector(0))"
)
"""Requests the Gateway API inference extension's endpoint picker (EPP) holds for the pool
(flow-control queue) plus requests it failed over the last 2 minutes (no endpoint to pick)."""
DEFAULT_IDLE_SECONDS = 1800


class ScaleToZero(ApiModel):
    """When a deployment with ``slo.minReplicas: 0`` sleeps, and what wakes it."""

    idleSeconds: int = Field(
        default=DEFAULT_IDLE_SECONDS,
        ge=60,
        le=604_800,
        description=(
            "Go to zero replicas after no output tokens were served and no request waited at "
            "the gateway for this long, seconds. The default (30 min, six default cold "
            "starts) is conservative on purpose: every wake-up makes the first requests wait a "
            "whole cold start (minutes for an LLM), so a deployment should sleep through "
            "nights and weekends, not through the lulls of a working day."
        ),
    )
    wakeQuery: str = Field(
        default=DEFAULT_WAKE_QUERY,
        min_length=1,
        max_length=4096,
        pattern=r"\S",
        description=(
            "PromQL giving the requests waiting for (or failed by) this deployment at the "
            "gateway, run on the Prometheus of every Region in placement.regions and summed. "
            "$name, $namespace and $model are replaced by this object's name, namespace and "
            "spec.model. The default reads the Gateway API inference extension's endpoint "
            "picker: inference_extension_flow_control_queue_size of the InferencePool named "
            "like this object plus the increase of inference_objective_request_error_total "
            "for spec.model over 2 minutes. While at zero, any value above 0 wakes one replica "
            "in the cheapest region within one interval; a failed query also wakes it (never "
            "asleep on a missing reading), no series counts as 0."
        ),
    )


class InferenceDeploymentSpec(ApiModel):
    """What the ML team asks for."""

    model: str = Field(
        min_length=1,
        description="Model to serve: a Hugging Face id (meta-llama/Llama-3.1-8B-Instruct) or path.",
    )
    engine: Engine = Field(description="The vLLM engine and the GPUs one replica needs.")
    slo: Slo = Field(description="Latency objective and replica bounds.")
    placement: Placement = Field(description="Allowed regions and the optimisation objective.")
    capacity: Capacity = Field(default_factory=Capacity, description="Per-replica capacity hint.")
    mode: Mode = Field(
        default="Active",
        description="Active: act. DryRun: decide and report, touch nothing. Paused: freeze.",
    )
    priority: int = Field(
        default=0,
        ge=-1000,
        le=1000,
        description="When deployments compete for a Region's GPU quota or grid-event cap, the "
        "higher priority is served first and lower ones yield; equal priorities keep what they "
        "hold.",
    )

    scaleToZero: ScaleToZero | None = Field(
        default=None,
        description=(
            "Scale to zero and back, with slo.minReplicas: 0 (unset: the defaults). Requests "
            "that arrive while at zero wait a cold start: they need a gateway that queues "
            "them (see docs/scale-to-zero.md)."
        ),
    )

    def primary_variant(self) -> ResolvedVariant:
        """The first variant (the implicit one without ``engine.variants``): the workload
        ``<name>-vllm``, with the capacity hint that applies to it."""
        return self.engine.resolved_variants(self.capacity.tokensPerSecondPerReplica)[0]

    def scale_to_zero(self) -> ScaleToZero | None:
        """The scale-to-zero settings in force: None unless ``slo.minReplicas`` is 0."""
        if self.slo.minReplicas != 0:
            return None
        return self.scaleToZero or ScaleToZero()

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.scaleToZero) || self.slo.minReplicas == 0",
            check=lambda m: m.scaleToZero is None or m.slo.minReplicas == 0,
            message="scaleToZero needs slo.minReplicas: 0",
            field="scaleToZero",
        ),
        Rule(
            cel="self.slo.minRegions <= size(self.placement.regions)",
            check=lambda m: m.slo.minRegions <= len(m.placement.regions),
            message="slo.minRegions must be <= the number of placement.regions",
            field="slo.minRegions",
        ),
    )


class RegionStatus(ApiModel):
    """What runs in one region and what it costs."""

    name: str = Field(description="Region name.")
    desiredReplicas: int = Field(default=0, ge=0, description="Replicas the operator wants.")
    variants: dict[str, int] | None = Field(
        default=None,
        description="Replicas the operator wants per variant (with spec.engine.variants).",
    )
    readyReplicas: int = Field(default=0, ge=0, description="Replicas Ready now.")
    trafficWeightPercent: int = Field(
        default=0, ge=0, le=100, description="Share of traffic sent here, percent."
    )
    costPerHour: DecimalString | None = Field(default=None, description="Cost rate, currency/h.")
    powerWatts: int | None = Field(default=None, ge=0, description="Power drawn (incl. PUE), W.")
    carbonGramsPerHour: int | None = Field(default=None, ge=0, description="Emissions, gCO2eq/h.")
    available: bool = Field(default=True, description="False when the cluster is unreachable.")


class Shift(ApiModel):
    """A make-before-break move in progress; kept in status so a restart resumes it."""

    phase: Literal["ScalingUpTarget", "ShiftingTraffic", "Draining", "ScalingDownSource"] = Field(
        description="Where the move is."
    )
    fromRegion: str = Field(description="Region replicas leave.")
    toRegion: str = Field(description="Region replicas go to.")
    replicas: int = Field(ge=1, description="Replicas being moved.")
    startedAt: str = Field(description="When the move started (RFC 3339).")
    phaseStartedAt: str = Field(description="When the current phase started (RFC 3339).")


class PlanSummary(ApiModel):
    """One candidate plan: replicas per region and what it costs."""

    replicas: dict[str, int] = Field(default_factory=dict, description="Replicas per region.")
    costPerHour: DecimalString | None = Field(default=None, description="Cost rate, currency/h.")
    powerWatts: int | None = Field(default=None, ge=0, description="Facility power, W.")
    carbonGramsPerHour: int | None = Field(default=None, ge=0, description="gCO2eq/h.")


class RegionSignalsSummary(ApiModel):
    """The inputs one region contributed to the last decision."""

    name: str = Field(description="Region name.")
    pricePerKwh: DecimalString | None = Field(default=None, description="Price used, per kWh.")
    carbonGramsPerKwh: int | None = Field(default=None, description="Carbon used, gCO2eq/kWh.")
    signalsFresh: bool = Field(default=False, description="Price and carbon were fresh.")
    gridEventCapReplicas: int | None = Field(
        default=None, description="Replica cap from a grid event in force, if any."
    )
    available: bool = Field(default=True, description="The cluster answered.")


class Explanation(ApiModel):
    """Why the last decision came out as it did: what `wattscale explain` prints."""

    demandTokensPerSecond: int | None = Field(
        default=None, description="Measured output-token demand (all regions); empty if missing."
    )
    forecastTokensPerSecond: int | None = Field(
        default=None, description="Peak forecast demand over the horizon."
    )
    needTokensPerSecond: int | None = Field(
        default=None, description="Capacity the plan had to cover (forecast x headroom)."
    )
    capacitySource: str = Field(default="hint", description="hint, learned or default.")
    bindingConstraint: str = Field(default="", description="What limited the plan.")
    chosen: PlanSummary | None = Field(default=None, description="The plan chosen.")
    runnerUp: PlanSummary | None = Field(default=None, description="The next-best plan.")
    current: PlanSummary | None = Field(default=None, description="The plan as it was.")
    regions: list[RegionSignalsSummary] = Field(
        default_factory=list, description="Per-region inputs."
    )
    notes: list[str] = Field(default_factory=list, description="Guard-rails that applied.")


class InferenceDeploymentStatus(ApiModel):
    """What the operator observed and did. No phase: read the conditions."""

    observedGeneration: int | None = Field(default=None, description="Last generation acted on.")
    replicas: int = Field(default=0, ge=0, description="Desired replicas, all regions.")
    readyReplicas: int = Field(default=0, ge=0, description="Ready replicas, all regions.")
    regionsSummary: str = Field(default="", description="e.g. us-west=2,us-east=1 (for kubectl).")
    regions: list[RegionStatus] = Field(default_factory=list, description="Per-region state.")
    currency: str | None = Field(default=None, description="Currency of the cost fields.")
    costPerHour: DecimalString | None = Field(default=None, description="Total cost rate.")
    powerWatts: int | None = Field(default=None, ge=0, description="Total power incl. PUE, W.")
    carbonGramsPerHour: int | None = Field(default=None, ge=0, description="Total gCO2eq/h.")
    counterfactualCostPerHour: DecimalString | None = Field(
        default=None,
        description="Cost rate of the SLO-safe count all in the home region (the baseline).",
    )
    savingsPercent: DecimalString | None = Field(
        default=None, description="Savings vs the counterfactual, percent."
    )
    capacityTokensPerSecondPerReplica: int | None = Field(
        default=None, description="Capacity per replica in use (learned, or the hint)."
    )
    shift: Shift | None = Field(default=None, description="A move in progress, if any.")
    lastDecision: Decision | None = Field(default=None, description="The last decision.")
    explanation: Explanation | None = Field(
        default=None, description="Inputs and alternatives of the last decision."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Ready, SLOMet, ...")


class InferenceDeployment(ApiModel):
    """A model served by vLLM under a latency SLO, placed where energy costs least."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (INFERENCE_NAME_RULE,)

    apiVersion: Literal["wattscale.io/v1alpha1"] = Field(description="wattscale.io/v1alpha1")
    kind: Literal["InferenceDeployment"] = Field(description="InferenceDeployment")
    metadata: dict[str, object] = Field(default_factory=dict, description="Standard metadata.")
    spec: InferenceDeploymentSpec = Field(description="What the ML team asks for.")
    status: InferenceDeploymentStatus | None = Field(default=None, description="Observed state.")
