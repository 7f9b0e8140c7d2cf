"""The kopf handlers: thin wiring from watch events and timers to the Reconciler.

Everything that decides lives elsewhere (``reconcile``, ``planning``, the planner); these
functions only translate kopf's arguments, write status, and post Events. They are registered on
an explicit registry by :func:`build_registry`, so intervals come from settings, not import time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from wattscale.api.common import GROUP, VERSION
from wattscale.clusters.client import ClusterError, RegionCluster, hub_client
from wattscale.clusters.render import owner_of, workload_name
from wattscale.clusters.routes import HubRoutes
from wattscale.controller.leaving import leaving_regions
from wattscale.controller.reconcile import Reconciler
from wattscale.controller.region_health import RegionHealthLoop
from wattscale.controller.report import Outcome, status_patch
from wattscale.controller.settings import (
    ANNOTATION_PREFIX,
    FINALIZER,
    Settings,
    is_namespace_pattern,
)
from wattscale.controller.status import condition
from wattscale.fleet.leases import CeilingKeeper, HubLeases, LeaseStore, Membership
from wattscale.fleet.ledger import QuotaLedger
from wattscale.fleet.regions import (
    RegionDirectory,
    default_cluster_factory,
    hub_secret_reader,
)
from wattscale.fleet.shards import Ownership
from wattscale.fleet.snapshot import FleetSnapshot
from wattscale.metrics import MetricsConfig
from wattscale.planner import PoolKey
from wattscale.telemetry.metrics import OperatorMetrics

log = logging.getLogger(__name__)

IDS = (GROUP, VERSION, "inferencedeployments")
REGIONS = (GROUP, VERSION, "regions")


def region_status_writer(hub: client.ApiClient | None) -> Callable[[str, dict[str, Any]], bool]:
    """Write a Region's status through its status subresource (a JSON merge patch)."""

    def write(name: str, status: dict[str, Any]) -> bool:
        if hub is None:
            return False
        try:
            client.CustomObjectsApi(hub).patch_cluster_custom_object_status(
                *REGIONS,
                name,
                {"status": status},
                _content_type="application/merge-patch+json",
                _request_timeout=30,
            )
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    return write


def held_gpus(spec: Any, status: Any) -> tuple[int, dict[PoolKey, int]] | None:
    """An InferenceDeployment's priority and the GPUs it holds per quota pool (a product in a
    region) per its status (what the operator last set in each region, per variant with
    ``engine.variants``); None when the spec names no GPU product."""
    spec, status = spec or {}, status or {}
    engine = spec.get("engine") or {}
    product, gpus = engine.get("gpuProduct"), engine.get("gpusPerReplica", 1)
    if not product or not isinstance(gpus, int):
        return None
    variants = [v for v in engine.get("variants") or [] if isinstance(v, dict)]
    held: dict[PoolKey, int] = {}
    for r in status.get("regions") or []:
        if not isinstance(r, dict):
            continue
        region = str(r.get("name"))
        per = r.get("variants") if isinstance(r.get("variants"), dict) else None
        if not variants or per is None:
            key = PoolKey(region, str(product))
            held[key] = held.get(key, 0) + int(r.get("desiredReplicas") or 0) * gpus
            continue
        for v in variants:
            key = PoolKey(region, str(v.get("gpuProduct")))
            n = per.get(v.get("name"), 0)
            g = v.get("gpusPerReplica", 1)
            if isinstance(n, int) and isinstance(g, int):
                held[key] = held.get(key, 0) + n * g
    priority = spec.get("priority", 0)
    return (priority if isinstance(priority, int) else 0), held


def leader_only(
    write: Callable[[str, dict[str, Any]], bool], ownership: Ownership
) -> Callable[[str, dict[str, Any]], bool]:
    """Region status is written by the leader only; the others still judge each Region's
    health for themselves (to skip a down one at once) and write nothing."""

    def maybe(name: str, status: dict[str, Any]) -> bool:
        return write(name, status) if ownership.is_leader(time.time()) else True

    return maybe


def share_quotas(membership: Membership, ledger: QuotaLedger) -> None:
    """Several replicas: each plans its own deployments within its shard's quota ceilings,
    reserved in the quota Lease every Lease round (:mod:`wattscale.fleet.shares`)."""
    keeper = CeilingKeeper(membership.store, membership.identity, ledger.shard_usage)
    membership.ceilings = keeper
    ownership = membership.ownership
    clock = membership.clock
    ledger.shard(lambda: ownership.predicate(clock()), keeper.ceiling)


async def keep_leases(membership: Membership, period_seconds: float) -> None:
    """Renew this replica's Lease and re-read the others every ``period_seconds``.

    On a thread of its own: a fleet snapshot or a region check waiting out a timeout in the
    loop's shared executor must not delay the renewal past the Lease's expiry."""
    loop = asyncio.get_running_loop()
    own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-leases")
    try:
        while True:
            try:
                await loop.run_in_executor(own, membership.renew)
            except Exception:  # never stop: an unrenewed Lease only hands the shard over
                log.exception("shard lease round failed")
            await asyncio.sleep(period_seconds)
    finally:  # cancelled at shutdown: never block the loop on a round in flight
        own.shutdown(wait=False)


def owned_pass(
    reconciler: Reconciler,
    ownership: Ownership,
    *,
    name: str,
    namespace: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    generation: int | None,
) -> Outcome | None:
    """One timer firing: the pass when this replica owns the deployment, else None at once
    (another replica passes it: nothing is written, only what it holds is counted)."""
    if not ownership.owns(namespace, name, reconciler.clock()):
        found = held_gpus(spec, status)
        reconciler.release(namespace, name, *(found or (0, None)))
        return None
    return reconciler.reconcile(
        name=name, namespace=namespace, spec=spec, status=status, generation=generation
    )


def seed_claims(ledger: QuotaLedger, item: dict[str, Any]) -> None:
    """Seed the ledger with what one InferenceDeployment holds per its status."""
    meta = item.get("metadata") or {}
    found = held_gpus(item.get("spec"), item.get("status"))
    if found is None:
        return
    member = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    ledger.seed(member, found[0], found[1])


def configure(settings: kopf.OperatorSettings) -> None:
    """Production kopf settings: our own annotation prefix, finalizer, timeouts, Events."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING  # our Events are posted explicitly
    settings.posting.reporting_component = "wattscale"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.execution.max_workers = 16
    settings.batching.error_delays = (1, 5, 15, 30, 60)


def _watched_deployments(
    api: client.CustomObjectsApi, namespaces: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The InferenceDeployments the operator may read: cluster-wide, or in each watched namespace.

    A chart with ``watchNamespaces`` grants namespaced Roles only, so a cluster-wide list would be
    refused. Namespace patterns (``team-*``) are not expanded here: each pass records its own
    quota claims anyway, so the seed is only a head start.
    """
    try:
        if not namespaces:
            found = api.list_cluster_custom_object(*IDS, _request_timeout=30)
            return list(cast(dict[str, Any], found).get("items", []))
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            if is_namespace_pattern(namespace):
                continue
            found = api.list_namespaced_custom_object(
                IDS[0], IDS[1], namespace, IDS[2], _request_timeout=30
            )
            items += cast(dict[str, Any], found).get("items", [])
        return items
    except Exception as err:  # each pass records its own claims anyway
        log.warning("could not list InferenceDeployments at startup: %s", err)
        return []


def build_registry(
    settings: Settings,
    directory: RegionDirectory | None = None,
    metrics: OperatorMetrics | None = None,
    ownership: Ownership | None = None,
    leases: LeaseStore | None = None,
) -> tuple[kopf.OperatorRegistry, Reconciler]:
    """Register every handler on a fresh registry; returns it and the Reconciler it drives.

    With ``settings.sharding`` this replica passes only the InferenceDeployments it owns
    (``ownership``, kept by its shard Leases in ``leases``, else on the hub)."""
    registry = kopf.OperatorRegistry()
    ownership = ownership or Ownership(settings.replica_identity, settings.sharding)
    parts = _assemble(settings, directory, metrics or OperatorMetrics(), ownership, leases)
    _register_lifecycle(registry, settings, parts)
    _register_regions(registry, parts)
    _register_deployments(registry, settings, parts, ownership)
    return registry, parts.reconciler


@dataclass
class _Parts:
    """What the handlers share: the hub client (None in tests), the region directory, the
    fleet-wide layer and the reconciler, and the loops started at startup."""

    hub: client.ApiClient | None
    directory: RegionDirectory
    metrics: OperatorMetrics
    fleet: FleetSnapshot
    ledger: QuotaLedger
    reconciler: Reconciler
    membership: Membership | None
    health: RegionHealthLoop
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _assemble(
    settings: Settings,
    directory: RegionDirectory | None,
    metrics: OperatorMetrics,
    ownership: Ownership,
    leases: LeaseStore | None,
) -> _Parts:
    """Build the directory (from the hub's Secrets unless given), the fleet-wide layer, the
    reconciler, the shard membership and the Region health loop."""
    hub: client.ApiClient | None = None
    if directory is None:
        hub = hub_client()
        secrets = hub_secret_reader(client.CoreV1Api(hub), settings.operator_namespace)
        directory = RegionDirectory(
            secrets,
            default_cluster_factory(lambda: RegionCluster(settings.hub_region, hub)),
            MetricsConfig(
                rate_window_seconds=settings.rate_window_seconds,
                stale_after_seconds=max(90.0, settings.rate_window_seconds * 0.75),
            ),
        )
    fleet = FleetSnapshot(directory, feeds_period_seconds=settings.interval_seconds)
    ledger = QuotaLedger()
    reconciler = Reconciler(
        directory,
        settings,
        metrics,
        routes=HubRoutes(hub) if hub is not None else None,
        fleet=fleet,
        ledger=ledger,
    )
    if leases is None and hub is not None and settings.sharding:
        leases = HubLeases(hub, settings.operator_namespace)
    membership = (
        Membership(
            leases,
            ownership,
            settings.lease_duration_seconds,
            # Three renewals: a view must be re-read within it (see fleet/shards.py), and a
            # renewal round late by a busy machine must not pause the passes.
            settle_seconds=3.0 * settings.lease_renew_seconds,
        )
        if leases is not None and settings.sharding
        else None
    )
    if membership is not None:
        share_quotas(membership, ledger)
    health = RegionHealthLoop(
        directory,
        leader_only(region_status_writer(hub), ownership),
        metrics,
        settings.region_interval_seconds,
        reachable=fleet.mark,
    )
    return _Parts(hub, directory, metrics, fleet, ledger, reconciler, membership, health)


def _register_lifecycle(registry: kopf.OperatorRegistry, settings: Settings, parts: _Parts) -> None:
    """Startup (loops, the Regions and quota claims known before the first pass), cleanup
    and login."""
    hub, membership, tasks = parts.hub, parts.membership, parts.tasks

    @kopf.on.startup(id="start-loops", registry=registry)
    async def _start_region_health(**_: Any) -> None:
        if membership is not None:
            await asyncio.get_running_loop().run_in_executor(None, membership.renew)
            tasks.append(
                asyncio.create_task(
                    keep_leases(membership, settings.lease_renew_seconds), name="shard-leases"
                )
            )
        if hub is not None:
            tasks.append(asyncio.create_task(parts.health.run(), name="region-health"))
            tasks.append(
                asyncio.create_task(
                    parts.fleet.run(settings.interval_seconds), name="fleet-snapshot"
                )
            )

    @kopf.on.cleanup(id="stop-loops", registry=registry)
    async def _stop_region_health(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        if membership is not None:  # hand this replica's shard over now, not at expiry
            await asyncio.get_running_loop().run_in_executor(None, membership.release)

    watch_namespaces = settings.watch_namespaces  # kopf's startup handler shadows `settings`

    @kopf.on.startup(id="configure", registry=registry)
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)
        if hub is not None:
            _know_regions_and_claims(hub, parts, watch_namespaces)

    @kopf.on.login(id="login", registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A custom registry has none of kopf's default login handlers: use the same
        # credentials as our own clients (in-cluster, else KUBECONFIG / ~/.kube/config).
        return kopf.login_via_client(**kwargs)


def _know_regions_and_claims(
    hub: client.ApiClient, parts: _Parts, watch_namespaces: tuple[str, ...]
) -> None:
    """Know every Region before the first InferenceDeployment pass, so that a restart does not
    briefly judge deployments as naming unknown regions; and what every deployment holds of
    the Regions' quotas."""
    try:
        api = client.CustomObjectsApi(hub)
        found = cast(dict[str, Any], api.list_cluster_custom_object(*REGIONS, _request_timeout=30))
    except Exception as err:  # the Region handlers will fill the directory anyway
        log.warning("could not list Regions at startup: %s", err)
        return
    for item in found.get("items", []):
        meta, spec = item.get("metadata", {}), item.get("spec") or {}
        parts.directory.upsert(meta["name"], int(meta.get("generation") or 0), spec)
    for item in _watched_deployments(api, watch_namespaces):
        seed_claims(parts.ledger, item)


def _register_regions(registry: kopf.OperatorRegistry, parts: _Parts) -> None:
    """Regions: keep the directory in step, and report each region's health and feeds."""
    directory, health = parts.directory, parts.health

    @kopf.on.resume(*REGIONS, id="region-changed", registry=registry)
    @kopf.on.create(*REGIONS, id="region-changed", registry=registry)
    @kopf.on.update(*REGIONS, id="region-changed", field="spec", registry=registry)
    def region_changed(name: str, spec: Any, meta: Any, status: Any, **_: Any) -> None:
        runtime = directory.upsert(name, int(meta.get("generation") or 0), dict(spec))
        health.seen(name, dict(status))
        for problem in runtime.errors:
            log.warning("region %s: %s", name, problem)

    @kopf.on.delete(*REGIONS, id="region-deleted", registry=registry, optional=True)
    def region_deleted(name: str, **_: Any) -> None:
        directory.remove(name)


def _register_deployments(
    registry: kopf.OperatorRegistry, settings: Settings, parts: _Parts, ownership: Ownership
) -> None:
    """InferenceDeployments: the control loop, and cleanup on deletion."""
    reconciler = parts.reconciler

    @kopf.timer(*IDS, id="reconcile", interval=settings.interval_seconds, registry=registry)
    def reconcile(
        name: str,
        namespace: str | None,
        spec: Any,
        status: Any,
        meta: Any,
        body: kopf.Body,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        outcome = owned_pass(
            reconciler,
            ownership,
            name=name,
            namespace=namespace or "default",
            spec=dict(spec),
            status=dict(status),
            generation=meta.get("generation"),
        )
        if outcome is None:
            return
        # Only what changed: a pass that decides the same as the last writes nothing.
        patch.status.update(status_patch(dict(status), outcome.status))
        for event in outcome.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)

    @kopf.on.delete(*IDS, id="cleanup", registry=registry)
    def cleanup(
        name: str, namespace: str | None, spec: Any, status: Any, patch: kopf.Patch, **_: Any
    ) -> None:
        """Remove what we created in every region; an unreachable one blocks, visibly."""
        namespace = namespace or "default"
        if not ownership.owns(namespace, name, time.time()):
            # Its owner cleans up and removes the finalizer; should the owner die first, this
            # replica takes the shard over and finds the deletion on its retry.
            raise kopf.TemporaryError(
                "another operator replica owns it", delay=settings.interval_seconds
            )
        _delete_everywhere(parts, namespace, name, spec, status, patch)


def _delete_everywhere(
    parts: _Parts, namespace: str, name: str, spec: Any, status: Any, patch: kopf.Patch
) -> None:
    """Delete the deployment's workloads in every region it named or still drains; forget
    it; an unreachable region keeps the finalizer (CleanupBlocked) until it answers."""
    blocked: list[str] = []
    regions = list(spec.get("placement", {}).get("regions", []))
    # Regions dropped from the spec but still being drained hold our objects too.
    regions += leaving_regions(regions, dict(status or {}))
    for region in regions:
        runtime = parts.directory.get(region)
        if runtime is None or runtime.cluster is None:
            continue  # nothing we could have created there
        try:
            runtime.cluster.delete_workload(
                workload_name(name), namespace, owner_of(namespace, name)
            )
        except ClusterError as err:
            blocked.append(str(err))
    parts.reconciler.forget(namespace, name)
    parts.metrics.forget(namespace, name, regions)
    if blocked:
        message = "cannot clean up yet (finalizer kept): " + "; ".join(blocked)
        patch.status["conditions"] = [
            condition(
                None, "CleanupBlocked", True, "RegionUnreachable", message, None, datetime.now(UTC)
            )
        ]
        raise kopf.TemporaryError(message, delay=30)
