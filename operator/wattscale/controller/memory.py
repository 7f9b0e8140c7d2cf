"""What one InferenceDeployment keeps between passes, and how a pass updates it.

Nothing here must survive a restart: the forecaster, the capacity learner, the planner's
stabilisation history, drain timers and the Ready log only make the next pass better, and are
rebuilt conservatively after one (the forecaster, the learner and the planner's memory of
recent demand from Prometheus history; the stabilisation history seeded with the replicas that
run now, so a restarted operator never scales down at once).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.controller.planning import Demand
from wattscale.fleet.observe import QueueTrend, RegionObservation
from wattscale.forecast.holt import Forecaster, warm_start
from wattscale.metrics import (
    CapacityEstimate,
    CapacityLearner,
    CapacityObservation,
    DemandPoint,
    DeploymentTarget,
    LatencySlo,
    MetricsReader,
    ReadingStatus,
    observation_from_readings,
)
from wattscale.metrics.capacity import CapacityLearnerConfig, latency_backlog_seconds
from wattscale.metrics.capacity_schedule import EstimateSchedule
from wattscale.metrics.config import VLLM_TPOT_BUCKETS_SECONDS, VLLM_TTFT_BUCKETS_SECONDS
from wattscale.planner import DEMAND_FORECAST, PlannerState

log = logging.getLogger(__name__)

WARM_START_DEMAND = timedelta(days=2)
WARM_START_CAPACITY = timedelta(hours=6)
WARM_STARTS_PER_INTERVAL = 50
"""After a restart every deployment's first pass would replay two days of Prometheus history
at once (18 range queries each): at most this many per interval, the others run on what they
measure until their turn (the planner holds or grows on that, never shrinks at once)."""
WARM_START_RECENT_PASSES = 60
"""After a restart the planner's memory of recent demand (the peak a scale-down keeps, the ramp,
the readings' noise) is seeded with this many passes of Prometheus history at the pass cadence:
what the noise estimate reads (``NOISE_POINTS`` readings a rate window apart: 48 passes at
most), and the whole protection window (cold start + 2 intervals) of a cold start up to 58
intervals long."""
LEARNER_CONFIG = CapacityLearnerConfig(
    ttft_buckets_seconds=VLLM_TTFT_BUCKETS_SECONDS, tpot_buckets_seconds=VLLM_TPOT_BUCKETS_SECONDS
)
"""The learner's settings: its defaults, reading p95s taken from vLLM's histograms."""
BACKLOG_MAX_WINDOWS = LEARNER_CONFIG.transient_backlog_max_windows
"""How many rate windows before its own a latency reading may describe (the learner's cap)."""
QUEUE_DRAIN_RATIO = 0.9
"""A region's waiting requests at most this share of one rate window ago: its queue drains
(below it, the noise of a steady queue)."""
QUEUE_LAG_WINDOWS = 0.5
"""How long before a queue reading its replicas must have been Ready for it to describe them,
in rate windows: a reading lags its scrape (a rate window spans four scrapes at least, so up to
a quarter of one), and a balancer sends new replicas traffic a little after they are Ready; the
queue read meanwhile still grows on the replicas before."""


@dataclass
class Memory:
    """Per-deployment state kept between passes (rebuilt after a restart)."""

    forecaster: Forecaster
    learner: CapacityLearner
    planner_state: PlannerState | None = None
    last_seconds: float | None = None
    drain_since: dict[str, float] = field(default_factory=dict)
    last_event: tuple[str, str] | None = None
    last_warnings: frozenset[str] = frozenset()  # warning_key of each problem posted
    warm: bool = False
    recent_seed: tuple[tuple[float, float], ...] = ()
    """(time, demand) of the last passes before a restart, read back from Prometheus by
    :func:`warm`: the new planner state's memory of recent demand (then cleared)."""
    ready_log: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    """Per region: (time, Ready count) of the passes within the longest span a latency reading
    describes (``1 + BACKLOG_MAX_WINDOWS`` rate windows), and the last one before it."""
    variant_ready_log: dict[tuple[str, str], list[tuple[float, int]]] = field(default_factory=dict)
    """The same per (region, variant) of a deployment with variants."""
    queue_log: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per region: (time, waiting requests) of the passes within the last rate window, and
    the last one before it."""
    answering: frozenset[str] | None = None
    """The regions whose cluster answered last pass."""
    answering_changed_at: float | None = None
    """When a region last stopped or started answering, or stopped serving (its users moved:
    readings settle)."""
    serving: frozenset[str] | None = None
    """The regions that answered with Ready replicas last pass."""
    served_before_loss: int = 0
    """Ready replicas over all regions just before a region that ran some stopped answering
    (0 when none is lost): held while demand cannot be measured."""
    estimates: EstimateSchedule = field(default_factory=EstimateSchedule)
    """The learner's last estimate, and when and from what it was computed."""
    variant_learners: dict[str, CapacityLearner] = field(default_factory=dict)
    """One learner per variant after the first (the first's is ``learner``)."""
    variant_estimates: dict[str, EstimateSchedule] = field(default_factory=dict)
    """Their estimates, recomputed by the same rule as the first's (``estimates``)."""

    @property
    def reading_is_floor(self) -> bool:
        """A region that ran replicas is lost and its users are not served elsewhere yet: the
        demand read is a lower bound on what they ask (plan on it as a floor, never learn it)."""
        return self.served_before_loss > 0


class WarmBudget:
    """How many warm starts the current interval still allows (thread-safe)."""

    def __init__(self, per_interval: int, interval_seconds: float) -> None:
        self.per_interval = per_interval
        self.interval_seconds = interval_seconds
        self._window: float | None = None
        self._left = per_interval
        self._lock = threading.Lock()

    def take(self, now_s: float) -> bool:
        """Use one warm start now, if this interval has one left."""
        window = now_s // max(self.interval_seconds, 1e-6)
        with self._lock:
            if window != self._window:
                self._window, self._left = window, self.per_interval
            if self._left <= 0:
                return False
            self._left -= 1
            return True


class Memories:
    """Every deployment's :class:`Memory`, by (namespace, name)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Memory] = {}

    def forget(self, namespace: str, name: str) -> None:
        self._by_key.pop((namespace, name), None)

    def get(self, namespace: str, name: str, spec: InferenceDeploymentSpec) -> Memory:
        """This deployment's memory (new when first seen); follows SLO and hint changes."""
        key = (namespace, name)
        mem = self._by_key.get(key)
        slo = LatencySlo(spec.slo.ttftP95Ms / 1000.0, spec.slo.tpotP95Ms / 1000.0)
        hint = spec.primary_variant().capacity_hint
        if mem is None:
            learner = CapacityLearner(slo, float(hint) if hint else None, LEARNER_CONFIG)
            mem = Memory(warm_start([], DEMAND_FORECAST), learner)
            self._by_key[key] = mem
        else:  # the SLO or hint may have changed: the learner keeps its windows
            mem.learner.slo = slo
            mem.learner.hint_tokens_per_second = float(hint) if hint else None
        return mem


def warm(
    mem: Memory,
    regions: list[RegionObservation],
    name: str,
    namespace: str,
    now: datetime,
    spec: InferenceDeploymentSpec | None = None,
    interval_seconds: float = 0.0,
) -> None:
    """After a (re)start: replay demand and capacity history from each region's Prometheus.

    Demand is summed over regions per timestamp, so the forecaster remembers the day's shape
    and a restart does not forget it. A region whose history cannot be read adds nothing.
    With ``spec.engine.variants``, each variant's learner replays its own pods' history.
    With ``interval_seconds``, the last ``WARM_START_RECENT_PASSES`` passes of demand are read
    at that cadence too, for a planner state yet to be made (:func:`recent_demand_seed`; one
    made while this warm start waited for its turn has measured its own since).
    """
    target = DeploymentTarget(namespace=namespace, deployment=name)
    demand: dict[float, float] = {}
    for obs in regions:
        reader = obs.runtime.metrics if obs.runtime else None
        if reader is None or not obs.available:
            continue
        try:
            history = reader.read_demand_history(target, now - WARM_START_DEMAND, now, 60.0)
            _add_history(demand, history.points, digits=0)
            _warm_capacity(mem, spec, reader, target, now)
        except Exception:  # history only makes the next pass better; never fail for it
            log.exception("region %s: warm start from Prometheus history failed", obs.name)
    if demand:
        mem.forecaster = warm_start(sorted(demand.items()), mem.forecaster.config)
    if interval_seconds > 0 and mem.planner_state is None:
        mem.recent_seed = recent_demand_seed(regions, target, now, interval_seconds)
        log.info(
            "%s/%s: recent demand seeded with %d passes from Prometheus",
            namespace,
            name,
            len(mem.recent_seed),
        )
    mem.warm = True
    mem.estimates.forget()  # the history's windows count from the next estimate on


def recent_demand_seed(
    regions: list[RegionObservation],
    target: DeploymentTarget,
    now: datetime,
    interval_seconds: float,
) -> tuple[tuple[float, float], ...]:
    """The ``WARM_START_RECENT_PASSES`` passes of demand before this one, summed over regions
    at the pass cadence: (time, tokens/s), oldest first (this pass measures its own).

    Empty unless every region that serves now answered: a sum without one of them under-reads,
    and a memory that under-reads would make the first true reading a surge."""
    step = timedelta(seconds=interval_seconds)
    start, end = now - WARM_START_RECENT_PASSES * step, now - step
    demand: dict[float, float] = {}
    for obs in regions:
        reader = obs.runtime.metrics if obs.runtime else None
        serving = obs.available and obs.ready > 0
        if reader is None or not obs.available:
            if serving:
                return ()
            continue
        try:
            history = reader.read_demand_history(target, start, end, interval_seconds)
        except Exception:  # history only makes the next pass better; never fail for it
            log.exception("region %s: reading recent demand from Prometheus failed", obs.name)
            history = None
        if history is None or (serving and history.status is not ReadingStatus.OK):
            return ()
        _add_history(demand, history.points, digits=3)
    return tuple(sorted(demand.items()))


def _add_history(total: dict[float, float], points: Iterable[DemandPoint], digits: int) -> None:
    """Add a region's demand history into ``total``, per timestamp rounded to ``digits``
    (every region's Prometheus evaluates the same instants: the sum is over regions)."""
    for point in points:
        t = round(point.t_seconds, digits)
        total[t] = total.get(t, 0.0) + point.tokens_per_second


def _warm_capacity(
    mem: Memory,
    spec: InferenceDeploymentSpec | None,
    reader: MetricsReader,
    target: DeploymentTarget,
    now: datetime,
) -> None:
    """One region's capacity history into the learners: the whole region's into the first
    variant's, or with variants (and label selection) each variant's own into its learner."""
    start = now - WARM_START_CAPACITY
    variants = spec.engine.resolved_variants(None) if spec and spec.engine.variants else []
    if not variants or reader.config.selection != "label":
        mem.learner.observe_many(reader.read_capacity_history(target, start, now))
        return
    assert spec is not None
    for index, v in enumerate(variants):
        narrowed = replace(target, variant=v.name if index else "")
        learner = mem.learner if index == 0 else _variant_learner(mem, spec, v.name)
        learner.observe_many(reader.read_capacity_history(narrowed, start, now))


def learn(mem: Memory, window: CapacityObservation) -> None:
    """Give the learner one window; note whether it is news for the estimate."""
    mem.estimates.observe(mem.learner, window)


def learn_variant(
    mem: Memory, spec: InferenceDeploymentSpec, obs: RegionObservation, window: CapacityObservation
) -> None:
    """Give a region's pooled window to the learner of the variant whose pods it measured;
    without per-variant readings (``obs.variant_readings``), a region running several
    variants teaches none."""
    running = [obs.primary_ready, *(v.ready(obs.available) for v in obs.variants)]
    if sum(1 for n in running if n > 0) > 1:
        return
    index = next((i for i, n in enumerate(running) if n > 0), 0)
    if index == 0:
        learn(mem, window)
        return
    _learn_other(mem, spec, spec.engine.resolved_variants(None)[index].name, window)


def learn_variants(
    mem: Memory,
    spec: InferenceDeploymentSpec,
    obs: RegionObservation,
    now_s: float,
    window_s: float,
) -> bool:
    """Give each variant's own readings in a region to that variant's learner, also where
    several run at once (a window is a transient when that variant's Ready count changed
    within it). False when the region has no per-variant readings, or when a variant reports
    more pods than it has Ready: its label is not on the series as expected (a scrape config
    without the variant label puts every pod in the first's), or pods are going; the pooled
    readings are used then."""
    if obs.variant_readings is None:
        return False
    first = spec.engine.resolved_variants(None)[0].name
    ready = {first: obs.primary_ready, **{v.name: v.ready(obs.available) for v in obs.variants}}
    changed = {
        name: _changed(
            _log(mem.variant_ready_log, (obs.name, name), n, now_s, window_s),
            n,
            now_s,
            window_s,
        )
        for name, n in ready.items()
    }
    readings_of = obs.variant_readings
    if any(r.pods_reporting > ready.get(name, 0) for name, r in readings_of.items()):
        return False
    for name, readings in readings_of.items():
        window = observation_from_readings(
            readings, window_seconds=window_s, replicas_changed=changed.get(name, True)
        )
        if window is None:
            continue
        if name == first:
            learn(mem, window)
        else:
            _learn_other(mem, spec, name, window)
    return True


def _learn_other(
    mem: Memory, spec: InferenceDeploymentSpec, name: str, window: CapacityObservation
) -> None:
    """Give one window to the learner of a variant after the first."""
    learner = _variant_learner(mem, spec, name)
    mem.variant_estimates[name].observe(learner, window)


def _variant_learner(mem: Memory, spec: InferenceDeploymentSpec, name: str) -> CapacityLearner:
    """The learner of a variant after the first, its prior the variant's hint (or the
    deployment's); it follows SLO and hint changes like the first's. Its estimate schedule
    (``mem.variant_estimates``) is made with it."""
    hints = {
        v.name: v.capacity_hint
        for v in spec.engine.resolved_variants(spec.capacity.tokensPerSecondPerReplica)
    }
    hint = hints.get(name)
    learner = mem.variant_learners.get(name)
    if learner is None:
        learner = CapacityLearner(mem.learner.slo, float(hint) if hint else None, LEARNER_CONFIG)
        mem.variant_learners[name] = learner
        mem.variant_estimates[name] = EstimateSchedule()
    learner.slo = mem.learner.slo
    learner.hint_tokens_per_second = float(hint) if hint else None
    return learner


def variant_capacities(
    mem: Memory, spec: InferenceDeploymentSpec, now_s: float, interval_s: float, default: float
) -> dict[str, float] | None:
    """Each variant after the first: its learned capacity, else its hint, else ``default``;
    recomputed only when it can have moved, like the first's (:func:`capacity_estimate`)."""
    others = spec.engine.resolved_variants(None)[1:]
    if not others:
        return None
    out = {}
    for v in others:
        learner = _variant_learner(mem, spec, v.name)
        estimate = mem.variant_estimates[v.name].current(learner, now_s, interval_s)
        prior = estimate.source == "prior" and learner.hint_tokens_per_second is None
        out[v.name] = default if prior else estimate.tokens_per_second_per_replica
    return out


def capacity_estimate(mem: Memory, now_s: float, interval_s: float) -> CapacityEstimate:
    """The learner's estimate, recomputed only when it can have moved
    (:class:`~wattscale.metrics.capacity_schedule.EstimateSchedule`)."""
    return mem.estimates.current(mem.learner, now_s, interval_s)


def settling(
    mem: Memory, regions: list[RegionObservation], demand: Demand, now_s: float, window_s: float
) -> Demand:
    """Track which regions answer and serve; for one rate window after that changes, demand is
    not fresh.

    When a cluster stops (or starts again) answering, or a region's last replica goes (a move
    drained it), its users move to (or back from) the others, and the readings' rate window
    still describes the old split: the demand they sum under-reads, and planning on it would
    scale down the replicas that took the load over, then learn the recovery as a trend and
    scale up again. So the plan holds (never down) until the window has passed. When a region
    that ran replicas is lost, what was Ready everywhere just before is remembered, to be held
    meanwhile.
    """
    answering = frozenset(o.name for o in regions if o.available)
    serving = frozenset(o.name for o in regions if o.available and o.ready > 0)
    if mem.serving is not None and mem.serving - serving:
        mem.answering_changed_at = now_s
    mem.serving = serving
    if mem.answering is not None and answering != mem.answering:
        mem.answering_changed_at = now_s
        if mem.answering - answering:
            before = sum(log[-1][1] for name, log in mem.ready_log.items() if name in mem.answering)
            mem.served_before_loss = max(mem.served_before_loss, before)
    mem.answering = answering
    if not any(not o.available and (o.last_desired or 0) > 0 for o in regions):
        mem.served_before_loss = 0
    since = mem.answering_changed_at
    if since is None or now_s - since >= window_s or not demand.fresh:
        return demand
    note = (
        f"the regions answering or serving changed {now_s - since:.0f} s ago: demand readings "
        f"still describe the users' old split for one {window_s:.0f}-s window; holding"
    )
    return replace(demand, fresh=False, notes=(*demand.notes, note))


def ready_through_window(mem: Memory, obs: RegionObservation, now_s: float, window_s: float) -> int:
    """Log this pass's Ready count; return the fewest Ready over the last ``window_s``.

    The log is kept for the longest span a latency reading can describe (see
    :func:`latency_span_seconds`)."""
    keep_s = window_s * (1.0 + BACKLOG_MAX_WINDOWS)
    _log(mem.ready_log, obs.name, obs.ready, now_s, keep_s)
    return fewest_ready(mem, obs, now_s, window_s)


def queue_trend(
    mem: Memory, obs: RegionObservation, now_s: float, window_s: float
) -> tuple[QueueTrend, int | None]:
    """Log this pass's waiting requests in the region; how they moved over the last rate
    window, and the fewest replicas Ready over the span that describes.

    What users asked over the window is what the region served plus what its queue grew by.
    Nothing waiting now (under one request): users asked at most what it served. Fallen (to
    ``QUEUE_DRAIN_RATIO`` of one window ago, and by one request at least): a backlog drains (one
    a failover onto fewer replicas left in their queues, say), and users ask what it served.
    Held or grown: users ask at least what the replicas Ready all along serve, those Ready from
    ``QUEUE_LAG_WINDOWS`` before the reading one window ago to now: replicas that came up since
    (replacements after a failover) did not build the queue. With no reading from one window ago
    (the first passes, after a restart or a gap), no replica is known to have: 0. Call after
    :func:`ready_through_window`."""
    waiting = obs.readings.waiting_requests if obs.readings is not None else None
    if waiting is None or not waiting.usable or waiting.value is None:
        return QueueTrend.UNREAD, None
    now = float(waiting.value)
    if not math.isfinite(now):
        return QueueTrend.UNREAD, None
    log = _log(mem.queue_log, obs.name, now, now_s, window_s)
    if now < 1.0:
        return QueueTrend.EMPTY, None
    then_s, then = log[0]
    if not now_s - 2 * window_s <= then_s <= now_s - window_s:
        return QueueTrend.HOLDING, 0  # no reading from one window ago (the first, or a gap)
    if now <= QUEUE_DRAIN_RATIO * then and then - now >= 1.0:
        return QueueTrend.FALLING, None
    since_s = then_s - QUEUE_LAG_WINDOWS * window_s
    ready = mem.ready_log.get(obs.name) or []
    if not ready or ready[0][0] > since_s:
        return QueueTrend.HOLDING, 0  # the Ready log does not reach back so far
    return QueueTrend.HOLDING, min(n for _, n in _span(ready, now_s, now_s - since_s))


def latency_span_seconds(obs: RegionObservation, window_s: float) -> float:
    """How far back a region's latency readings reach: the rate window and, before it, the
    capacity learner's backlog span (the p95 TTFT, capped)."""
    ttft = obs.readings.ttft_p95_seconds if obs.readings is not None else None
    value = ttft.value if ttft is not None and ttft.usable else None
    return window_s + latency_backlog_seconds(value, window_s, LEARNER_CONFIG)


def fewest_ready(mem: Memory, obs: RegionObservation, now_s: float, span_s: float) -> int:
    """The fewest Ready replicas logged in a region over the last ``span_s`` (this pass's
    count when none is logged)."""
    log = mem.ready_log.get(obs.name) or [(now_s, obs.ready)]
    return min(count for _, count in _span(log, now_s, span_s))


_K = TypeVar("_K", str, tuple[str, str])
_V = TypeVar("_V", int, float)


def _log(
    logs: dict[_K, list[tuple[float, _V]]], key: _K, value: _V, now_s: float, keep_s: float
) -> list[tuple[float, _V]]:
    """Append this pass's value (a Ready count, a queue) to ``logs[key]``, trimmed to the
    last ``keep_s`` (the value in force at its start kept)."""
    log = logs.setdefault(key, [])
    log.append((now_s, value))
    start = now_s - keep_s
    while len(log) > 1 and log[1][0] <= start:
        log.pop(0)
    return log


def _span(log: list[tuple[float, _V]], now_s: float, span_s: float) -> list[tuple[float, _V]]:
    """The entries of ``log`` in force over the last ``span_s``: those within it, and the last
    one before it (the count in force when it began), when logged."""
    start = now_s - span_s
    first = 0
    for i, (t, _) in enumerate(log):
        if t <= start:
            first = i
    return log[first:]


def _changed(log: list[tuple[float, int]], ready: int, now_s: float, window_s: float) -> bool:
    """Whether the Ready count changed within the window, or is not known for all of it."""
    recent = _span(log, now_s, window_s)
    return recent[0][0] > now_s - window_s or any(n != ready for _, n in recent)


def ready_changed_in_window(
    mem: Memory, obs: RegionObservation, now_s: float, window_s: float
) -> bool:
    """Whether the Ready count changed within the window, or is not known for all of it."""
    log = mem.ready_log.get(obs.name) or [(now_s, obs.ready)]
    return _changed(log, obs.ready, now_s, window_s)
