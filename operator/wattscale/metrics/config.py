"""Configuration of the metrics reader: metric names, label names, selection and windows.

Every cluster relabels differently, so nothing about label names is hard-coded in the queries:
they are all read from :class:`MetricsConfig`. The defaults match a common setup:

* vLLM pods scraped through Kubernetes pod service discovery with ``labelmap`` of
  ``__meta_kubernetes_pod_label_(.+)``, so that the operator's pod label
  ``wattscale.io/deployment`` becomes the series label ``wattscale_io_deployment`` (and
  ``wattscale.io/variant``, on the pods of a deployment's variants after the first,
  ``wattscale_io_variant``) and the pod's namespace and name land in ``namespace`` and ``pod``;
* vLLM's own series carry ``model_name`` (and ``engine`` since the V1 engine);
* dcgm-exporter with Kubernetes pod mapping on, which labels each GPU's series with the
  ``namespace``, ``pod`` and ``container`` of the workload that holds the GPU, plus ``gpu``,
  ``UUID``, ``modelName`` (the GPU product) and ``Hostname``. When Prometheus scrapes the
  exporter through pod discovery without ``honor_labels``, those become ``exported_namespace``
  and ``exported_pod``: set :attr:`DcgmLabels.namespace` and :attr:`DcgmLabels.pod` accordingly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_PROM_LABEL = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


VLLM_TTFT_BUCKETS_SECONDS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
VLLM_TPOT_BUCKETS_SECONDS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip
"""The bucket bounds of vLLM's TTFT and time-per-output-token histograms (vLLM V1,
``vllm/v1/metrics/loggers.py``; older versions stop earlier with the same bounds): the p95s the
reader takes with ``histogram_quantile`` are interpolated within them."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VllmMetricNames(_Frozen):
    """vLLM metric family names; each tuple lists the current name first, then older ones.

    The reader uses the first name that has data (PromQL ``or``), so a fleet that mixes vLLM
    versions is read correctly. Counter names are the exposed sample names (with ``_total``);
    histogram names are the family names (the reader appends ``_bucket``).
    """

    running: tuple[str, ...] = ("vllm:num_requests_running",)
    waiting: tuple[str, ...] = ("vllm:num_requests_waiting",)
    kv_cache_usage: tuple[str, ...] = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    prompt_tokens: tuple[str, ...] = ("vllm:prompt_tokens_total",)
    generation_tokens: tuple[str, ...] = ("vllm:generation_tokens_total",)
    request_success: tuple[str, ...] = ("vllm:request_success_total",)
    ttft_histogram: tuple[str, ...] = ("vllm:time_to_first_token_seconds",)
    tpot_histogram: tuple[str, ...] = (
        "vllm:inter_token_latency_seconds",
        "vllm:time_per_output_token_seconds",
    )

    @field_validator("*")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("each metric needs at least one name")
        return value


class DcgmMetricNames(_Frozen):
    """dcgm-exporter field names (the default counters CSV exposes all three)."""

    power_watts: str = "DCGM_FI_DEV_POWER_USAGE"
    energy_millijoules_total: str = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
    utilization_percent: str = "DCGM_FI_DEV_GPU_UTIL"


class VllmLabels(_Frozen):
    """Label names on the vLLM series, as they arrive in Prometheus after relabelling."""

    namespace: str = Field(default="namespace", pattern=_PROM_LABEL)
    pod: str = Field(default="pod", pattern=_PROM_LABEL)
    model: str = Field(default="model_name", pattern=_PROM_LABEL)
    deployment: str = Field(
        default="wattscale_io_deployment",
        pattern=_PROM_LABEL,
        description="Series label carrying the operator's pod label wattscale.io/deployment.",
    )
    variant: str = Field(
        default="wattscale_io_variant",
        pattern=_PROM_LABEL,
        description="Series label carrying the pod label wattscale.io/variant, which the pods "
        "of every variant but the first carry (spec.engine.variants); per-variant readings "
        "match the first variant's pods by its absence.",
    )


class DcgmLabels(_Frozen):
    """Label names on the dcgm-exporter series."""

    namespace: str = Field(default="namespace", pattern=_PROM_LABEL)
    pod: str = Field(default="pod", pattern=_PROM_LABEL)
    gpu_product: str = Field(default="modelName", pattern=_PROM_LABEL)
    gpu_uuid: str = Field(default="UUID", pattern=_PROM_LABEL)
    hostname: str = Field(default="Hostname", pattern=_PROM_LABEL)


class MetricsConfig(_Frozen):
    """Everything the reader needs to turn a (namespace, deployment) into PromQL.

    ``selection`` decides how a deployment's vLLM series are found:

    * ``"label"`` (default): ``{<vllm.deployment>="<name>"}``; needs the pod label mapped to a
      series label by the scrape config.
    * ``"pod_regex"``: ``{<vllm.pod>=~"<pod_regex_template with {deployment}>"}``, for clusters
      that keep no pod labels; the default template matches a Deployment's pod names.

    GPU series are matched to the deployment's pods by joining on (namespace, pod) with the vLLM
    series (``dcgm_selection="join"``), or by the same pod regex (``"pod_regex"``).
    """

    vllm_names: VllmMetricNames = Field(default_factory=VllmMetricNames)
    dcgm_names: DcgmMetricNames = Field(default_factory=DcgmMetricNames)
    vllm_labels: VllmLabels = Field(default_factory=VllmLabels)
    dcgm_labels: DcgmLabels = Field(default_factory=DcgmLabels)
    selection: Literal["label", "pod_regex"] = "label"
    dcgm_selection: Literal["join", "pod_regex"] = "join"
    pod_regex_template: str = Field(
        default="{deployment}-[a-z0-9]+-[a-z0-9]+",
        description="RE2 regex for a deployment's pod names; {deployment} is substituted.",
    )
    extra_matchers: dict[str, str] = Field(
        default_factory=dict,
        description="Label equality matchers added to every selector, e.g. {'cluster': 'eu-1'} "
        "when one Prometheus (Thanos, Mimir) holds several clusters.",
    )
    filter_by_model: bool = Field(
        default=False,
        description="Also match the served model name on vLLM series (model label).",
    )
    rate_window_seconds: int = Field(
        default=120,
        ge=1,
        description="Window of rate() and histogram_quantile(); at least 4 scrape intervals.",
    )
    stale_after_seconds: float = Field(
        default=90.0,
        gt=0,
        description="A reading whose newest sample is older than this is Stale.",
    )
    query_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    quantiles: tuple[float, float] = (0.5, 0.95)

    @field_validator("extra_matchers")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for key in value:
            if not re.match(_PROM_LABEL, key):
                raise ValueError(f"{key!r} is not a Prometheus label name")
        return value

    @field_validator("pod_regex_template")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{deployment}" not in value:
            raise ValueError("pod_regex_template must contain {deployment}")
        return value
