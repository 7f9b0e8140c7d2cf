"""PromQL for every reading, built in one place from :class:`MetricsConfig`.

Pure string building: no I/O, so each query can be checked as a string in unit tests and pasted
into Prometheus' UI when something looks wrong. Old and new vLLM names are combined with
``or``: the left-hand side wins whenever it has data, so a fleet on a current vLLM reads the
current names and one on an older release falls through to the older names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wattscale.metrics.config import MetricsConfig

# Internal labels used to join GPU series to vLLM pods whatever the clusters call them.
JOIN_NAMESPACE_LABEL = "ws_namespace"
JOIN_POD_LABEL = "ws_pod"
AGE_NAME_LABEL = "ws_name"


@dataclass(frozen=True)
class DeploymentTarget:
    """Which vLLM deployment to read: its namespace and name (and optionally served model).

    ``variant`` narrows the read to one variant's pods (``spec.engine.variants``): the value of
    their variant label, ``""`` for the first variant, whose pods carry none (PromQL's
    ``label=""`` matches an absent label). None (default) reads all the deployment's pods."""

    namespace: str
    deployment: str
    model: str | None = None
    variant: str | None = None


def escape_label_value(value: str) -> str:
    """Escape a string for use inside a double-quoted PromQL label matcher."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _matchers(pairs: Sequence[tuple[str, str, str]]) -> str:
    return "{" + ",".join(f'{k}{op}"{escape_label_value(v)}"' for k, op, v in pairs) + "}"


def _or(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return " or ".join(f"({p})" for p in parts)


def _seconds(value: float) -> str:
    return f"{round(value)}s" if value >= 1 else f"{round(value * 1000)}ms"


def _regex_literal(value: str) -> str:
    """Escape RE2 metacharacters so a deployment name is matched literally inside a regex."""
    out = []
    for ch in value:
        out.append("\\" + ch if ch in r".^$*+?()[]{}|\\" else ch)
    return "".join(out)


class QueryBuilder:
    """Builds the PromQL of each reading for a deployment; see :class:`MetricsConfig`.

    With ``by_variant`` the vLLM queries keep the variant label (``sum by (<variant>) (...)``
    and the like): one query answers every variant of a deployment, one sample per variant,
    each equal to the same query with ``DeploymentTarget.variant`` set to that variant. The
    GPU (DCGM) queries are per deployment only."""

    def __init__(self, config: MetricsConfig | None = None, *, by_variant: bool = False) -> None:
        self.config = config or MetricsConfig()
        self.window = _seconds(self.config.rate_window_seconds)
        self.group = self.config.vllm_labels.variant if by_variant else None

    def _agg(self, agg: str, inner: str) -> str:
        """``agg(inner)``, or ``agg by (<variant>) (inner)`` when grouping by variant."""
        if self.group is None:
            return f"{agg}({inner})"
        return f"{agg} by ({self.group}) ({inner})"

    def _by(self, labels: str) -> str:
        """A ``by`` list, with the variant label added when grouping by variant."""
        return labels if self.group is None else f"{labels},{self.group}"

    # -- selectors ---------------------------------------------------------------------------

    def pod_regex(self, target: DeploymentTarget) -> str:
        """The RE2 regex that matches the target's pod names (``pod_regex`` selection)."""
        return self.config.pod_regex_template.replace(
            "{deployment}", _regex_literal(target.deployment)
        )

    def vllm_selector(self, target: DeploymentTarget, *, with_model: bool = True) -> str:
        """Label matchers selecting the target's vLLM series, e.g. ``{namespace="a",...}``."""
        labels = self.config.vllm_labels
        pairs: list[tuple[str, str, str]] = [(labels.namespace, "=", target.namespace)]
        if self.config.selection == "label":
            pairs.append((labels.deployment, "=", target.deployment))
            if target.variant is not None:
                pairs.append((labels.variant, "=", target.variant))
        else:
            pairs.append((labels.pod, "=~", self.pod_regex(target)))
        if with_model and self.config.filter_by_model and target.model:
            pairs.append((labels.model, "=", target.model))
        pairs.extend((k, "=", v) for k, v in sorted(self.config.extra_matchers.items()))
        return _matchers(pairs)

    def dcgm_selector(self, target: DeploymentTarget) -> str:
        """Label matchers on the GPU series (narrowed to the namespace; the pod join does
        the rest unless ``dcgm_selection`` is ``pod_regex``)."""
        labels = self.config.dcgm_labels
        pairs: list[tuple[str, str, str]] = [(labels.namespace, "=", target.namespace)]
        if self.config.dcgm_selection == "pod_regex":
            pairs.append((labels.pod, "=~", self.pod_regex(target)))
        pairs.extend((k, "=", v) for k, v in sorted(self.config.extra_matchers.items()))
        return _matchers(pairs)

    # -- vLLM --------------------------------------------------------------------------------

    def _sum_gauge(self, names: Sequence[str], target: DeploymentTarget, agg: str = "sum") -> str:
        sel = self.vllm_selector(target)
        return _or([self._agg(agg, f"{name}{sel}") for name in names])

    def _sum_rate(self, names: Sequence[str], target: DeploymentTarget) -> str:
        sel = self.vllm_selector(target)
        return _or([self._agg("sum", f"rate({name}{sel}[{self.window}])") for name in names])

    def pods_reporting(self, target: DeploymentTarget) -> str:
        """Number of distinct pods whose vLLM series are present now."""
        labels = self.config.vllm_labels
        sel = self.vllm_selector(target)
        inner = _or([f"{name}{sel}" for name in self.config.vllm_names.running])
        pods = self._by(f"{labels.namespace},{labels.pod}")
        return self._agg("count", f"count by ({pods}) ({inner})")

    def targets_total(self, target: DeploymentTarget) -> str:
        """How many scrape targets Prometheus knows for the deployment (up or down)."""
        return self._agg("count", f"up{self.vllm_selector(target, with_model=False)}")

    def targets_down(self, target: DeploymentTarget) -> str:
        """How many of the deployment's scrape targets failed their last scrape."""
        return self._agg("count", f"up{self.vllm_selector(target, with_model=False)} == 0")

    def unscraped_pods(self, target: DeploymentTarget) -> str:
        """The deployment's scrape targets whose last scrape failed, one series per pod."""
        labels = self.config.vllm_labels
        sel = self.vllm_selector(target, with_model=False)
        return f"max by ({labels.pod}) (up{sel} == 0)"

    def running_requests(self, target: DeploymentTarget) -> str:
        """Requests running (in the batch) across the deployment's pods."""
        return self._sum_gauge(self.config.vllm_names.running, target)

    def waiting_requests(self, target: DeploymentTarget) -> str:
        """Requests queued across the deployment's pods."""
        return self._sum_gauge(self.config.vllm_names.waiting, target)

    def kv_cache_usage(self, target: DeploymentTarget) -> str:
        """Mean KV-cache usage over pods, a ratio in [0, 1] (current name, then older)."""
        return self._sum_gauge(self.config.vllm_names.kv_cache_usage, target, agg="avg")

    def request_rate(self, target: DeploymentTarget) -> str:
        """Finished requests per second (all finish reasons)."""
        return self._sum_rate(self.config.vllm_names.request_success, target)

    def prompt_tokens_rate(self, target: DeploymentTarget) -> str:
        """Prompt (prefill) tokens per second."""
        return self._sum_rate(self.config.vllm_names.prompt_tokens, target)

    def generation_tokens_rate(self, target: DeploymentTarget) -> str:
        """Generated (output) tokens per second."""
        return self._sum_rate(self.config.vllm_names.generation_tokens, target)

    def _quantile(self, names: Sequence[str], q: float, target: DeploymentTarget) -> str:
        sel = self.vllm_selector(target)
        return _or(
            [
                f"histogram_quantile({q:g}, sum by ({self._by('le')}) "
                f"(rate({name}_bucket{sel}[{self.window}])))"
                for name in names
            ]
        )

    def ttft_quantile(self, target: DeploymentTarget, q: float) -> str:
        """Quantile ``q`` of time to first token, seconds, pooled over the deployment's pods."""
        return self._quantile(self.config.vllm_names.ttft_histogram, q, target)

    def tpot_quantile(self, target: DeploymentTarget, q: float) -> str:
        """Quantile ``q`` of time per output token (inter-token latency), seconds."""
        return self._quantile(self.config.vllm_names.tpot_histogram, q, target)

    def vllm_sample_names(self) -> dict[str, tuple[str, ...]]:
        """Sample names whose freshness dates each vLLM reading (histograms by ``_count``)."""
        n = self.config.vllm_names
        return {
            "running": n.running,
            "waiting": n.waiting,
            "kv_cache": n.kv_cache_usage,
            "requests": n.request_success,
            "prompt": n.prompt_tokens,
            "generation": n.generation_tokens,
            "ttft": tuple(f"{h}_count" for h in n.ttft_histogram),
            "tpot": tuple(f"{h}_count" for h in n.tpot_histogram),
        }

    def vllm_ages(self, target: DeploymentTarget) -> str:
        """Seconds since the newest sample, per sample name (label ``ws_name``).

        ``timestamp()`` reports sample times only when applied straight to a selector, so
        each name gets its own ``time() - max(timestamp(...))``, tagged with label_replace.
        """
        names = sorted({name for group in self.vllm_sample_names().values() for name in group})
        sel = self.vllm_selector(target)
        return _or(
            [
                f"label_replace(time() - {self._agg('max', f'timestamp({name}{sel})')}, "
                f'"{AGE_NAME_LABEL}", "{escape_label_value(name)}", "", "")'
                for name in names
            ]
        )

    def vllm_reads(self) -> dict[str, Callable[[DeploymentTarget], str]]:
        """Every vLLM query :meth:`MetricsReader.read` makes, by name (the GPU ones aside)."""
        q50, q95 = self.config.quantiles
        return {
            "pods": self.pods_reporting,
            "targets": self.targets_total,
            "down": self.targets_down,
            "ages": self.vllm_ages,
            "ttft50": lambda t: self.ttft_quantile(t, q50),
            "ttft95": lambda t: self.ttft_quantile(t, q95),
            "tpot50": lambda t: self.tpot_quantile(t, q50),
            "tpot95": lambda t: self.tpot_quantile(t, q95),
            "requests": self.request_rate,
            "prompt": self.prompt_tokens_rate,
            "generation": self.generation_tokens_rate,
            "running": self.running_requests,
            "waiting": self.waiting_requests,
            "kv_cache": self.kv_cache_usage,
        }

    # -- DCGM --------------------------------------------------------------------------------

    def _dcgm_series(self, expr: Callable[[str], str], target: DeploymentTarget) -> str:
        """GPU series of the target's pods; ``expr`` wraps the raw selector (e.g. in rate())."""
        raw = expr(self.dcgm_selector(target))
        if self.config.dcgm_selection == "pod_regex":
            return raw
        d, v = self.config.dcgm_labels, self.config.vllm_labels
        left = (
            f'label_replace(label_replace({raw}, "{JOIN_NAMESPACE_LABEL}", "$1", '
            f'"{d.namespace}", "(.*)"), "{JOIN_POD_LABEL}", "$1", "{d.pod}", "(.*)")'
        )
        pods = _or(
            [f"{name}{self.vllm_selector(target)}" for name in self.config.vllm_names.running]
        )
        right = (
            f'label_replace(label_replace({pods}, "{JOIN_NAMESPACE_LABEL}", "$1", '
            f'"{v.namespace}", "(.*)"), "{JOIN_POD_LABEL}", "$1", "{v.pod}", "(.*)")'
        )
        return f"({left} and on ({JOIN_NAMESPACE_LABEL},{JOIN_POD_LABEL}) {right})"

    def gpu_power(self, target: DeploymentTarget) -> str:
        """Total board power of the deployment's GPUs, watts."""
        name = self.config.dcgm_names.power_watts
        return f"sum({self._dcgm_series(lambda s: f'{name}{s}', target)})"

    def gpu_energy(self, target: DeploymentTarget) -> str:
        """Energy the deployment's GPUs used over the rate window, joules (counter is mJ)."""
        name = self.config.dcgm_names.energy_millijoules_total
        series = self._dcgm_series(lambda s: f"increase({name}{s}[{self.window}])", target)
        return f"sum({series}) / 1000"

    def gpu_utilization(self, target: DeploymentTarget) -> str:
        """Mean GPU utilisation of the deployment's GPUs, a ratio in [0, 1]."""
        name = self.config.dcgm_names.utilization_percent
        return f"avg({self._dcgm_series(lambda s: f'{name}{s}', target)}) / 100"

    def gpus_reporting(self, target: DeploymentTarget) -> str:
        """Number of GPUs reporting power for the deployment."""
        name = self.config.dcgm_names.power_watts
        return f"count({self._dcgm_series(lambda s: f'{name}{s}', target)})"

    def dcgm_age(self, target: DeploymentTarget) -> str:
        """Seconds since the newest GPU power sample of the deployment."""
        name = self.config.dcgm_names.power_watts
        return f"time() - max(timestamp({self._dcgm_series(lambda s: f'{name}{s}', target)}))"

    def gpu_power_by_gpu(self, target: DeploymentTarget) -> str:
        """Per-GPU mean power over the window, keyed by UUID and product (for model fitting)."""
        name = self.config.dcgm_names.power_watts
        d = self.config.dcgm_labels
        series = self._dcgm_series(lambda s: f"avg_over_time({name}{s}[{self.window}])", target)
        return f"max by ({d.gpu_uuid},{d.gpu_product}) ({series})"

    def gpu_utilization_by_gpu(self, target: DeploymentTarget) -> str:
        """Per-GPU mean utilisation ratio over the window, keyed by UUID and product."""
        name = self.config.dcgm_names.utilization_percent
        d = self.config.dcgm_labels
        series = self._dcgm_series(lambda s: f"avg_over_time({name}{s}[{self.window}])", target)
        return f"max by ({d.gpu_uuid},{d.gpu_product}) ({series}) / 100"
