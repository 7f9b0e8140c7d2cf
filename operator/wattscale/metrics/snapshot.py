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

Only ``selection="label"`` with ``dcgm_selection="join"`` and no model filter can be
aggregated by deployment (:func:`supported`); other configurations keep per-deployment reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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

Key = tuple[str, str]
"""(namespace, deployment)."""


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
    """The aggregated form of each :class:`QueryBuilder` query, grouped by deployment."""

    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self.q = QueryBuilder(config)
        v = config.vllm_labels
        self.by = f"{v.namespace},{v.deployment}"
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
        q, cfg = self.q, self.config
        n, dn = cfg.vllm_names, cfg.dcgm_names
        ns = cfg.vllm_labels.namespace
        gby = f"{JOIN_NAMESPACE_LABEL},{cfg.vllm_labels.deployment}"
        up = f"up{self.selector()}"
        q50, q95 = cfg.quantiles
        power = self.dcgm_series(lambda s: f"{dn.power_watts}{s}")
        energy = self.dcgm_series(
            lambda s: f"increase({dn.energy_millijoules_total}{s}[{self.window}])"
        )
        util = self.dcgm_series(lambda s: f"{dn.utilization_percent}{s}")
        kinds = {
            "pods": _Kind(q.pods_reporting, self.pods_reporting(), ns),
            "targets": _Kind(q.targets_total, f"count by ({self.by}) ({up})", ns),
            "down": _Kind(q.targets_down, f"count by ({self.by}) ({up} == 0)", ns),
            "ages": _Kind(q.vllm_ages, self.ages(), ns, age=True),
            "ttft50": _Kind(
                lambda t: q.ttft_quantile(t, q50), self._quantile(n.ttft_histogram, q50), ns
            ),
            "ttft95": _Kind(
                lambda t: q.ttft_quantile(t, q95), self._quantile(n.ttft_histogram, q95), ns
            ),
            "tpot50": _Kind(
                lambda t: q.tpot_quantile(t, q50), self._quantile(n.tpot_histogram, q50), ns
            ),
            "tpot95": _Kind(
                lambda t: q.tpot_quantile(t, q95), self._quantile(n.tpot_histogram, q95), ns
            ),
            "requests": _Kind(q.request_rate, self._rate(n.request_success), ns),
            "prompt": _Kind(q.prompt_tokens_rate, self._rate(n.prompt_tokens), ns),
            "generation": _Kind(q.generation_tokens_rate, self._rate(n.generation_tokens), ns),
            "running": _Kind(q.running_requests, self._gauge(n.running), ns),
            "waiting": _Kind(q.waiting_requests, self._gauge(n.waiting), ns),
            "kv_cache": _Kind(q.kv_cache_usage, self._gauge(n.kv_cache_usage, "avg"), ns),
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
        return kinds


@dataclass
class _Answer:
    samples: dict[Key, list[dict[str, Any]]]
    error: QueryFailedError | None = None


class MetricsSnapshot:
    """One region's readings for every deployment, from one aggregated query per reading."""

    def __init__(self, reader: MetricsReader, clock: Callable[[], float] = time.time) -> None:
        self.reader = reader
        self.grouped = GroupedQueries(reader.config)
        self._kinds = self.grouped.kinds()
        self._clock = clock
        self._answers: dict[str, _Answer] = {}
        self.taken_at: float | None = None
        self.queries = 0

    def refresh(self) -> None:
        """Send every aggregated query once (a dead Prometheus costs one failure, not 19)."""
        answers: dict[str, _Answer] = {}
        dead: QueryFailedError | None = None
        self.queries = 0
        for name, kind in self._kinds.items():
            if dead is not None:
                answers[name] = _Answer({}, dead)
                continue
            try:
                self.queries += 1
                samples = self.reader.query(kind.grouped)
            except QueryFailedError as err:
                answers[name] = _Answer({}, err)
                if err.unreachable:
                    dead = err
                continue
            by_key: dict[Key, list[dict[str, Any]]] = {}
            dep = self.reader.config.vllm_labels.deployment
            for s in samples:
                key = (s.labels.get(kind.namespace_label, ""), s.labels.get(dep, ""))
                labels = (
                    {AGE_NAME_LABEL: s.labels[AGE_NAME_LABEL]} if AGE_NAME_LABEL in s.labels else {}
                )
                by_key.setdefault(key, []).append({"metric": labels, "value": s.value})
            answers[name] = _Answer(by_key)
        self._answers = answers
        self.taken_at = self._clock()

    def reader_for(self, target: DeploymentTarget) -> MetricsReader:
        """A reader for one deployment whose queries this snapshot answers (no I/O)."""
        client = _SnapshotClient(self, target)
        return MetricsReader(
            self.reader.url,
            self.reader.config,
            region=self.reader.region,
            client=client,
            clock=self._clock,
        )

    def answer(self, kind: str, key: Key) -> list[Any]:
        """The Prometheus ``data.result`` the per-deployment query would have returned."""
        got = self._answers.get(kind)
        if got is None or self.taken_at is None:
            raise KeyError(kind)
        if got.error is not None:  # told again to each deployment, as a live query would be
            raise QueryFailedError(got.error.reason, unreachable=got.error.unreachable)
        lag = max(0.0, self._clock() - self.taken_at) if self._kinds[kind].age else 0.0
        return [
            {"metric": s["metric"], "value": [self.taken_at, repr(s["value"] + lag)]}
            for s in got.samples.get(key, ())
        ]


class _SnapshotClient:
    """Answers one deployment's per-deployment queries from a snapshot; others go live."""

    def __init__(self, snapshot: MetricsSnapshot, target: DeploymentTarget) -> None:
        self._snapshot = snapshot
        self._key = (target.namespace, target.deployment)
        self._kind_of: Mapping[str, str] = {
            kind.per_target(target): name for name, kind in snapshot._kinds.items()
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
