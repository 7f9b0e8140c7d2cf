"""Observe one InferenceDeployment's world: per region, the cluster, the feeds and the metrics.

Every failure is captured as data (``available=False``, an error string, a Missing reading), so
the planner sees "unknown" rather than "zero" and the loop never crashes on a bad region.

With a :class:`FleetSnapshot`, metrics come from the Region's shared Prometheus snapshot (no
query of this deployment's own), and a Region the health loop found unreachable is not asked
again: it is unavailable at once, instead of costing every deployment a timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from wattscale.api.inference import InferenceDeploymentSpec
from wattscale.api.region import GpuOffer, RegionWorkloads
from wattscale.clusters.client import ClusterError, ClusterUnreachableError, WorkloadState
from wattscale.clusters.render import owner_of, workload_name
from wattscale.fleet.regions import RegionDirectory, RegionRuntime
from wattscale.fleet.snapshot import FleetSnapshot
from wattscale.metrics import DeploymentReadings, DeploymentTarget, MetricsReader
from wattscale.signals.region import RegionSnapshot

log = logging.getLogger(__name__)


def hosting_refusal(
    workloads: RegionWorkloads, spec: InferenceDeploymentSpec, namespace: str
) -> str | None:
    """Why a Region's owner does not let this deployment run there (None: it may)."""
    if not workloads.admits(namespace):
        return f"does not admit namespace {namespace} (spec.workloads.allowedNamespaces)"
    cache = spec.engine.modelCache
    if cache is not None and cache.name and workloads.model_cache(cache.name) is None:
        return f"offers no model cache named {cache.name} (spec.workloads.modelCaches)"
    return None


class QueueTrend(Enum):
    """How a region's waiting requests moved over the last rate window
    (:func:`wattscale.controller.memory.queue_trend`): what a latency breach there means."""

    EMPTY = "empty"
    """Nothing waits: users asked at most what the region served (a breach is its replicas'
    speed, which the capacity learner hears, not demand the readings missed)."""
    FALLING = "falling"
    """They fell: a backlog drains, users asked less than the region served."""
    HOLDING = "holding"
    """They held or grew (or it is not known yet): users ask at least what it serves."""
    UNREAD = "unread"
    """No usable queue reading: only the latency speaks."""


@dataclass
class VariantObservation:
    """One variant after the first (``spec.engine.variants[1:]``) in one region: its workload
    ``<name>-<variant>-vllm`` and what was last set there (the first variant is the region's
    own ``workload``)."""

    name: str
    index: int
    offer: GpuOffer | None = None
    workload: WorkloadState = field(default_factory=lambda: WorkloadState(exists=False))
    last_desired: int | None = None

    def current(self, available: bool) -> int:
        """Replicas set here (what the operator last set, else the workload's own count)."""
        if not available:
            return 0
        if self.last_desired is not None and self.workload.exists:
            return self.last_desired
        return self.workload.specReplicas

    def ready(self, available: bool) -> int:
        return self.workload.readyReplicas if available else 0


@dataclass
class RegionObservation:
    """What one region looks like for one InferenceDeployment, right now."""

    name: str
    runtime: RegionRuntime | None
    offer: GpuOffer | None = None
    available: bool = False
    workload: WorkloadState = field(default_factory=lambda: WorkloadState(exists=False))
    signals: RegionSnapshot | None = None
    readings: DeploymentReadings | None = None
    errors: list[str] = field(default_factory=list)
    last_desired: int | None = None
    """What the operator last set here (from status): the plan's "current", so that a count
    changed by hand is treated as drift to revert, not as a decision to build on."""
    conflict: str | None = None
    """Set when an object we would write there was made by someone else (left untouched)."""
    unscraped_pods: tuple[str, ...] | None = None
    """When fewer pods report than are Ready: the ones Prometheus failed to scrape (None: not
    looked up, or Prometheus could not tell)."""
    ready_through_window: int | None = None
    """The fewest Ready replicas seen here over the metrics' rate window: the replicas the
    throughput readings describe (None: no history, take ``ready``)."""
    ready_through_latency: int | None = None
    """The fewest Ready replicas seen here over the span the latency readings describe: the
    rate window plus the p95 TTFT, as a request timed in the window arrived that much earlier
    (None: no history, take ``ready``)."""
    queue_trend: QueueTrend = QueueTrend.UNREAD
    """How the waiting requests here moved over the last rate window: whether a latency breach
    is users asking more than the region serves."""
    ready_through_queue: int | None = None
    """With a queue that held: the fewest Ready replicas over the span its trend describes
    (from a little before the reading one window ago to now; 0 when there is none)."""
    variants: list[VariantObservation] = field(default_factory=list)
    """The variants after the first (empty without ``spec.engine.variants``); ``ready`` and
    ``current`` count them too, the first variant's alone are ``primary_*``."""
    variant_readings: dict[str, DeploymentReadings] | None = None
    """With ``spec.engine.variants``: each variant's own readings by variant name (None: not
    read; ``readings`` stays the region's whole, which demand and completeness use)."""

    @property
    def ready_in_readings(self) -> int:
        """Ready replicas that served throughout the readings' window (at most ``ready``)."""
        if self.ready_through_window is None:
            return self.ready
        return min(self.ready, self.ready_through_window)

    @property
    def ready_in_latency(self) -> int:
        """Ready replicas that served throughout the span the latency readings describe."""
        if self.ready_through_latency is None:
            return self.ready_in_readings
        return min(self.ready_in_readings, self.ready_through_latency)

    @property
    def ready_queueing(self) -> int:
        """Ready replicas throughout the span the latency readings describe and the one the
        queue's trend does: those a breach here says are saturated."""
        if self.ready_through_queue is None:
            return self.ready_in_latency
        return min(self.ready_in_latency, self.ready_through_queue)

    @property
    def ready(self) -> int:
        return self.primary_ready + sum(v.ready(self.available) for v in self.variants)

    @property
    def current(self) -> int:
        return self.primary_current + sum(v.current(self.available) for v in self.variants)

    @property
    def primary_ready(self) -> int:
        """Ready replicas of the first variant (``<name>-vllm``)."""
        return self.workload.readyReplicas if self.available else 0

    @property
    def primary_current(self) -> int:
        """Replicas set for the first variant (``<name>-vllm``)."""
        if not self.available:
            return 0
        if self.last_desired is not None and self.workload.exists:
            return self.last_desired
        return self.workload.specReplicas


def _unscraped(runtime: RegionRuntime, target: DeploymentTarget) -> tuple[str, ...] | None:
    """The pods whose scrape failed, to name them in MetricsComplete; None when unknown."""
    if runtime.metrics is None:
        return None
    try:
        names = runtime.metrics.unscraped_pods(target)
    except Exception:  # naming the pods is a courtesy: never fail the observation for it
        return None
    return None if names is None else tuple(names)


UNREACHABLE = "cluster unreachable"


def unreachable(name: str, how: str) -> str:
    """The problem text of a member cluster that does not answer, found by this pass's own
    read or by the Region health loop (``how``: what said so): the same problem either way."""
    return f"region {name}: {UNREACHABLE}: {how}"


def _observe_region(
    runtime: RegionRuntime | None,
    name: str,
    spec: InferenceDeploymentSpec,
    deployment: str,
    namespace: str,
    now: datetime,
    fleet: FleetSnapshot | None = None,
) -> RegionObservation:
    obs = RegionObservation(name=name, runtime=runtime)
    if runtime is None:
        obs.errors.append(f"region {name} does not exist")
        return obs
    obs.errors.extend(runtime.errors)
    hosted = True
    if runtime.spec is not None:
        product = spec.primary_variant().gpu_product
        obs.offer = next((g for g in runtime.spec.gpus if g.product == product), None)
        if obs.offer is None:
            obs.errors.append(f"region {name} offers no {product} GPUs")
        refused = hosting_refusal(runtime.spec.workloads, spec, namespace)
        hosted = refused is None
        if refused is not None:
            obs.offer = None  # never planned here; a workload already there is scaled down
            obs.errors.append(f"region {name} {refused}")
    down = fleet.down(name) if fleet is not None else None
    if down is not None:
        obs.errors.append(unreachable(name, f"Region health check: {down.reason}"))
    elif runtime.cluster is not None:
        try:
            obs.workload = runtime.cluster.state(workload_name(deployment), namespace)
            obs.available = True
        except ClusterUnreachableError as err:
            obs.errors.append(unreachable(name, str(err)))
        except ClusterError as err:
            obs.errors.append(str(err))
    owner = owner_of(namespace, deployment)
    if obs.workload.exists and obs.workload.owner != owner:
        # Someone else's Deployment holds the name: never read as ours, scaled or deleted.
        obs.conflict = (
            f"region {name}: Deployment {namespace}/{workload_name(deployment)} exists and was "
            f"not created by wattscale for {owner}; left untouched: rename or remove it"
        )
        obs.errors.append(obs.conflict)
        obs.workload = WorkloadState(exists=False)
        obs.available = False
    if obs.available and runtime.cluster is not None:
        _observe_variants(obs, runtime, spec, deployment, namespace, hosted)
    if runtime.signals is not None:
        obs.signals = runtime.signals.read(now)
    if runtime.metrics is not None and obs.available:
        target = DeploymentTarget(namespace=namespace, deployment=deployment)
        shared = fleet.metrics(name, runtime) if fleet is not None else None
        reader = shared.reader_for(target) if shared is not None else runtime.metrics
        try:
            obs.readings = reader.read(target, expected_pods=obs.ready)
        except Exception as err:  # the reader types its failures; this is a last resort
            log.exception("region %s: metrics read failed", name)
            obs.errors.append(f"metrics: {err}")
        if obs.readings is not None and obs.readings.pods_reporting < obs.ready:
            obs.unscraped_pods = _unscraped(runtime, target)
        if obs.readings is not None and spec.engine.variants:
            _read_variants(obs, reader, spec, target)
    return obs


def _read_variants(
    obs: RegionObservation,
    reader: MetricsReader,
    spec: InferenceDeploymentSpec,
    target: DeploymentTarget,
) -> None:
    """Each variant's readings, by the variant label of its pods (the first variant's pods
    carry none: ``""``); only where the series are selected by label."""
    if reader.config.selection != "label":
        return
    first = spec.engine.resolved_variants(None)[0].name
    expected: dict[str, int | None] = {"": obs.primary_ready}
    expected.update({v.name: v.ready(obs.available) for v in obs.variants})
    try:
        got = reader.read_variants(target, expected)
    except Exception:  # the reader types its failures; this is a last resort
        log.exception("region %s: per-variant metrics read failed", obs.name)
        return
    obs.variant_readings = {(name or first): r for name, r in got.items()}


def _observe_variants(
    obs: RegionObservation,
    runtime: RegionRuntime,
    spec: InferenceDeploymentSpec,
    deployment: str,
    namespace: str,
    hosted: bool,
) -> None:
    """The variants after the first: offer (none where the region refuses the deployment) and
    workload; someone else's Deployment under a variant's name makes the region unavailable."""
    owner = owner_of(namespace, deployment)
    for index, v in enumerate(spec.engine.resolved_variants(None)[1:], start=1):
        offers = runtime.spec.gpus if runtime.spec is not None and hosted else []
        seen = VariantObservation(
            v.name, index, next((g for g in offers if g.product == v.gpu_product), None)
        )
        if seen.offer is None and hosted:
            obs.errors.append(f"region {obs.name} offers no {v.gpu_product} GPUs")
        assert runtime.cluster is not None
        try:
            seen.workload = runtime.cluster.state(workload_name(deployment, v.name), namespace)
        except ClusterError as err:
            obs.errors.append(str(err))
            obs.available = False
            return
        if seen.workload.exists and seen.workload.owner != owner:
            obs.conflict = (
                f"region {obs.name}: Deployment {namespace}/{workload_name(deployment, v.name)} "
                f"exists and was not created by wattscale for {owner}; left untouched"
            )
            obs.errors.append(obs.conflict)
            obs.available = False
            return
        obs.variants.append(seen)


def observe(
    directory: RegionDirectory,
    spec: InferenceDeploymentSpec,
    deployment: str,
    namespace: str,
    now: datetime,
    fleet: FleetSnapshot | None = None,
    executor: Executor | None = None,
    extra: Sequence[str] = (),
) -> list[RegionObservation]:
    """Observe every allowed region concurrently (a slow region does not delay the others).

    ``executor`` is a long-lived pool (else one is made for this pass). ``extra``: regions the
    spec no longer lists that still hold its replicas (being drained).
    """
    names = list(spec.placement.regions)
    names += [n for n in extra if n not in names]
    if executor is None:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            return observe(directory, spec, deployment, namespace, now, fleet, pool, extra)
    futures = [
        executor.submit(
            _observe_region, directory.get(n), n, spec, deployment, namespace, now, fleet
        )
        for n in names
    ]
    return [_result(f, n, directory) for f, n in zip(futures, names, strict=True)]


def _result(
    future: Future[RegionObservation], name: str, directory: RegionDirectory
) -> RegionObservation:
    """The region's observation; any failure in it is that region's, never the pass's."""
    try:
        return future.result()
    except Exception as err:
        log.warning("region %s: observation failed: %s", name, type(err).__name__)
        obs = RegionObservation(name=name, runtime=directory.get(name))
        obs.errors.append(f"region {name}: observation failed ({type(err).__name__})")
        return obs
