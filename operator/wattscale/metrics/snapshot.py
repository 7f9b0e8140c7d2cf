"""One Prometheus snapshot per region per pass, read by every deployment placed there.

Per deployment, :meth:`MetricsReader.read` sends 19 instant queries. With hundreds of
deployments that is thousands of queries per pass per Prometheus, and most of the operator's
CPU goes into the HTTP client. :class:`MetricsSnapshot` sends each of those queries once for
the whole region, aggregated ``by`` the namespace and deployment labels (``sum by``, ``count
by``, ``histogram_quantile`` over ``sum by (le, ...)``, the GPU join carrying the deployment
label across with ``group_left``), and keeps the answers by (namespace, deployment).

A deployment's readings are then made by the same :meth:`MetricsReader.read` as before, through
a client that answers its per-deployment queries from the snapshot (:meth:`reader_for`): every
rule about Missing, Partial and Stale readings stays in one place. Per group the aggregated
query equals the per-deployment one, including the ``or`` between old and new vLLM names (``or``
matches on the grouping labels). Sample ages are the snapshot's plus the time since it was
taken, so a snapshot that stops being refreshed turns Stale instead of looking current. A query
the snapshot does not cover (a reading added later) is sent live, as before.

Per-variant readings (deployments with ``spec.engine.variants``) come the same way from the 14
vLLM queries grouped by namespace, deployment and variant label, sent on the first per-variant
read of each refresh (a region with no such deployment sends only the 19).

Only ``selection="label"`` with ``dcgm_selection="join"`` and no model filter can be
aggregated by deployment (:func:`supported`); other configurations keep per-deployment reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from wattscale.metrics.config import MetricsConfig
from wattscale.metrics.queries import (
    AGE_NAME_LABEL,
    JOIN_NAMESPACE_LABEL,
    JOIN_POD_LABEL,
    DeploymentTarget,
    QueryBuilder,
    _matchers,
    _or,
    escape_label_value,
)
from wattscale.metrics.reader import MetricsReader, PromClient, QueryFailedError
from wattscale.metrics.readings import DeploymentReadings

Key = tuple[str, ...]
"""(namespace, deployment), and the variant label's value for the per-variant answers."""


def supported(config: MetricsConfig) -> bool:
    """Whether readings can be aggregated by deployment under this configuration."""
    return (
        config.selection == "label"
        and config.dcgm_selection == "join"
        and not config.filter_by_model
    )


@dataclass(frozen=True)
class _Kind:
    """One reading: its per-deployment PromQL, its aggregated PromQL, how to key the answer."""

    per_target: Callable[[DeploymentTarget], str]
    grouped: str
    namespace_label: str
    age: bool = False
    """The value is an age in seconds (grows with the snapshot's own age)."""


class GroupedQueries:
    """The aggregated form of each :class:`QueryBuilder` query, grouped by deployment (and,
    ``by_variant``, by variant: then the vLLM queries only, the GPU ones being per deployment).
    """

    def __init__(self, config: MetricsConfig, *, by_variant: bool = False) -> None:
        self.config = config
        self.q = QueryBuilder(config)
        v = config.vllm_labels
        self.by_variant = by_variant
        self.by = f"{v.namespace},{v.deployment}" + (f",{v.variant}" if by_variant else "")
        self.window = self.q.window

    def selector(self) -> str:
        """Every series carrying the deployment label (plus the extra matchers)."""
        pairs = [(self.config.vllm_labels.deployment, "!=", "")]
        pairs.extend((k, "=", v) for k, v in sorted(self.config.extra_matchers.items()))
        return _matchers(pairs)

    def _gauge(self, names: tuple[str, ...], agg: str = "sum") -> str:
        sel = self.selector()
        return _or([f"{agg} by ({self.by}) ({name}{sel})" for name in names])

    def _rate(self, names: tuple[str, ...]) -> str:
        sel = self.selector()
        return _or([f"sum by ({self.by}) (rate({name}{sel}[{self.window}]))" for name in names])

    def _quantile(self, names: tuple[str, ...], q: float) -> str:
        sel = self.selector()
        return _or(
            [
                f"histogram_quantile({q:g}, sum by (le,{self.by}) "
                f"(rate({name}_bucket{sel}[{self.window}])))"
                for name in names
            ]
        )

    def pods_reporting(self) -> str:
        v = self.config.vllm_labels
        sel = self.selector()
        inner = _or([f"{name}{sel}" for name in self.config.vllm_names.running])
        return f"count by ({self.by}) (count by ({self.by},{v.pod}) ({inner}))"

    def ages(self) -> str:
        names = sorted({n for group in self.q.vllm_sample_names().values() for n in group})
        sel = self.selector()
        return _or(
            [
                f"label_replace(time() - max by ({self.by}) (timestamp({name}{sel})), "
                f'"{AGE_NAME_LABEL}", "{escape_label_value(name)}", "", "")'
                for name in names
            ]
        )

    def dcgm_series(self, expr: Callable[[str], str]) -> str:
        """Every GPU series held by a pod of a deployment, labelled with that deployment."""
        d, v = self.config.dcgm_labels, self.config.vllm_labels
        extra = _matchers([(k, "=", val) for k, val in sorted(self.config.extra_matchers.items())])
        raw = expr(extra)
        left = (
            f'label_replace(label_replace({raw}, "{JOIN_NAMESPACE_LABEL}", "$1", '
            f'"{d.namespace}", "(.*)"), "{JOIN_POD_LABEL}", "$1", "{d.pod}", "(.*)")'
        )
        pods = _or([f"{name}{self.selector()}" for name in self.config.vllm_names.running])
        right = (
            f'label_replace(label_replace({pods}, "{JOIN_NAMESPACE_LABEL}", "$1", '
            f'"{v.namespace}", "(.*)"), "{JOIN_POD_LABEL}", "$1", "{v.pod}", "(.*)")'
        )
        join = f"{JOIN_NAMESPACE_LABEL},{JOIN_POD_LABEL}"
        return (
            f"({left} * on ({join}) group_left({v.deployment}) "
            f"group by ({join},{v.deployment}) ({right}))"
        )

    def kinds(self) -> dict[str, _Kind]:
        """Every reading :meth:`MetricsReader.read` makes, by name."""
        cfg = self.config
        n = cfg.vllm_names
        ns = cfg.vllm_labels.namespace
        up = f"up{self.selector()}"
        q50, q95 = cfg.quantiles
        per = self.q.vllm_reads()
        grouped = {
            "pods": self.pods_reporting(),
            "targets": f"count by ({self.by}) ({up})",
            "down": f"count by ({self.by}) ({up} == 0)",
            "ages": self.ages(),
            "ttft50": self._quantile(n.ttft_histogram, q50),
            "ttft95": self._quantile(n.ttft_histogram, q95),
            "tpot50": self._quantile(n.tpot_histogram, q50),
            "tpot95": self._quantile(n.tpot_histogram, q95),
            "requests": self._rate(n.request_success),
            "prompt": self._rate(n.prompt_tokens),
            "generation": self._rate(n.generation_tokens),
            "running": self._gauge(n.running),
            "waiting": self._gauge(n.waiting),
            "kv_cache": self._gauge(n.kv_cache_usage, "avg"),
        }
        kinds = {
            name: _Kind(per[name], promql, ns, age=name == "ages")
            for name, promql in grouped.items()
        }
        if not self.by_variant:
            kinds.update(self._gpu_kinds())
        return kinds

    def _gpu_kinds(self) -> dict[str, _Kind]:
        """The GPU readings, grouped by deployment through the pod join."""
        q, dn = self.q, self.config.dcgm_names
        gby = f"{JOIN_NAMESPACE_LABEL},{self.config.vllm_labels.deployment}"
        power = self.dcgm_series(lambda s: f"{dn.power_watts}{s}")
        energy = self.dcgm_series(
            lambda s: f"increase({dn.energy_millijoules_total}{s}[{self.window}])"
        )
        util = self.dcgm_series(lambda s: f"{dn.utilization_percent}{s}")
        return {
            "gpus": _Kind(q.gpus_reporting, f"count by ({gby}) ({power})", JOIN_NAMESPACE_LABEL),
            "dcgm_age": _Kind(
                q.dcgm_age,
                f"time() - max by ({gby}) (timestamp({power}))",
                JOIN_NAMESPACE_LABEL,
                age=True,
            ),
            "power": _Kind(q.gpu_power, f"sum by ({gby}) ({power})", JOIN_NAMESPACE_LABEL),
            "energy": _Kind(
                q.gpu_energy, f"sum by ({gby}) ({energy}) / 1000", JOIN_NAMESPACE_LABEL
            ),
            "util": _Kind(
                q.gpu_utilization, f"avg by ({gby}) ({util}) / 100", JOIN_NAMESPACE_LABEL
            ),
        }


@dataclass
class _Answer:
    samples: dict[Key, list[dict[str, Any]]]
    error: QueryFailedError | None = None


@dataclass
class _Taken:
    """A set of grouped queries' answers and when they were taken."""

    kinds: dict[str, _Kind]
    answers: dict[str, _Answer]
    at: float


class MetricsSnapshot:
    """One region's readings for every deployment, from one aggregated query per reading.

    The per-variant readings of deployments with ``spec.engine.variants`` come from the vLLM
    queries grouped by variant too, sent once per refresh when the first such deployment asks
    (none is sent in a region without one)."""

    def __init__(self, reader: MetricsReader, clock: Callable[[], float] = time.time) -> None:
        self.reader = reader
        self.grouped = GroupedQueries(reader.config)
        self._kinds = self.grouped.kinds()
        self._variant_kinds = GroupedQueries(reader.config, by_variant=True).kinds()
        self._clock = clock
        self._taken: _Taken | None = None
        self._variants: _Taken | None = None
        self._lock = threading.Lock()
        self.taken_at: float | None = None
        self.queries = 0
        """Queries sent since the last refresh (with the per-variant ones, when asked)."""

    def refresh(self) -> None:
        """Send every aggregated query once (a dead Prometheus costs one failure, not 19)."""
        answers, sent = self._ask(self._kinds, by_variant=False)
        with self._lock:
            self.queries = sent
            self.taken_at = self._clock()
            self._taken = _Taken(self._kinds, answers, self.taken_at)
            self._variants = None

    def _ask(self, kinds: dict[str, _Kind], *, by_variant: bool) -> tuple[dict[str, _Answer], int]:
        """Each kind's answer keyed by (namespace, deployment[, variant]); queries sent."""
        answers: dict[str, _Answer] = {}
        dead: QueryFailedError | None = None
        sent = 0
        labels = self.reader.config.vllm_labels
        for name, kind in kinds.items():
            if dead is not None:
                answers[name] = _Answer({}, dead)
                continue
            try:
                sent += 1
                samples = self.reader.query(kind.grouped)
            except QueryFailedError as err:
                answers[name] = _Answer({}, err)
                if err.unreachable:
                    dead = err
                continue
            by_key: dict[Key, list[dict[str, Any]]] = {}
            for s in samples:
                key: Key = (
                    s.labels.get(kind.namespace_label, ""),
                    s.labels.get(labels.deployment, ""),
                )
                if by_variant:
                    key += (s.labels.get(labels.variant, ""),)
                kept = (
                    {AGE_NAME_LABEL: s.labels[AGE_NAME_LABEL]} if AGE_NAME_LABEL in s.labels else {}
                )
                by_key.setdefault(key, []).append({"metric": kept, "value": s.value})
            answers[name] = _Answer(by_key)
        return answers, sent

    def _variant_answers(self) -> _Taken | None:
        """The per-variant answers of this refresh, asked for on first use."""
        with self._lock:
            if self._taken is None:
                return None
            if self._variants is None:
                answers, sent = self._ask(self._variant_kinds, by_variant=True)
                self.queries += sent
                self._variants = _Taken(self._variant_kinds, answers, self._clock())
            return self._variants

    def reader_for(self, target: DeploymentTarget) -> MetricsReader:
        """A reader for one deployment whose queries this snapshot answers (no I/O), its
        :meth:`~MetricsReader.read_variants` too."""
        client = _SnapshotClient(self, target)
        return _SnapshotReader(
            self,
            self.reader.url,
            self.reader.config,
            region=self.reader.region,
            client=client,
            clock=self._clock,
        )

    def answer(self, kind: str, key: Key) -> list[Any]:
        """The Prometheus ``data.result`` the per-deployment query would have returned (with a
        variant in ``key``: the per-variant query)."""
        taken = self._variant_answers() if len(key) > 2 else self._taken
        got = taken.answers.get(kind) if taken is not None else None
        if got is None or taken is None:
            raise KeyError(kind)
        if got.error is not None:  # told again to each deployment, as a live query would be
            raise QueryFailedError(got.error.reason, unreachable=got.error.unreachable)
        lag = max(0.0, self._clock() - taken.at) if taken.kinds[kind].age else 0.0
        return [
            {"metric": s["metric"], "value": [taken.at, repr(s["value"] + lag)]}
            for s in got.samples.get(key, ())
        ]


class _SnapshotReader(MetricsReader):
    """A reader answered from a snapshot, per variant too."""

    def __init__(self, snapshot: MetricsSnapshot, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._snapshot = snapshot

    def read_variants(
        self, target: DeploymentTarget, expected_pods: Mapping[str, int | None]
    ) -> dict[str, DeploymentReadings]:
        out = {}
        for variant, pods in expected_pods.items():
            narrowed = replace(target, variant=variant)
            reader = self._snapshot.reader_for(narrowed)
            out[variant] = reader.read(narrowed, expected_pods=pods, gpu=False)
        return out


class _SnapshotClient:
    """Answers one deployment's (or one variant's) queries from a snapshot; others go live."""

    def __init__(self, snapshot: MetricsSnapshot, target: DeploymentTarget) -> None:
        self._snapshot = snapshot
        self._key: Key = (target.namespace, target.deployment)
        kinds = snapshot._kinds
        if target.variant is not None:
            self._key += (target.variant,)
            kinds = snapshot._variant_kinds
        self._kind_of: Mapping[str, str] = {
            kind.per_target(target): name for name, kind in kinds.items()
        }
        self._live: PromClient = snapshot.reader._client

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        kind = self._kind_of.get(query)
        if kind is None:
            return self._live.custom_query(query, params=params)
        try:
            return self._snapshot.answer(kind, self._key)
        except KeyError:
            return self._live.custom_query(query, params=params)

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return self._live.custom_query_range(query, start_time, end_time, step, params=params)
