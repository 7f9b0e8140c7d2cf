"""In-memory fakes of a region's cluster, feeds and metrics, for controller unit tests.

They implement the same small surfaces the controller calls (``RegionCluster``'s methods, the
``SignalSource`` protocol, ``MetricsReader.read``, the hub's ``RouteStore``) and record what was
done to them, so tests assert on behaviour ("scaled us-east to 3") rather than on mocked calls.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.cases.malformed import example
from wattscale.clusters.client import (
    ClusterConflictError,
    ClusterUnreachableError,
    WorkloadState,
)
from wattscale.clusters.render import ANNOTATION_OWNER, Manifest
from wattscale.clusters.routes import RouteError
from wattscale.fleet.regions import RegionDirectory
from wattscale.metrics import (
    CapacityObservation,
    DeploymentReadings,
    DeploymentTarget,
    MetricsConfig,
)
from wattscale.metrics.reader import QueryFailedError
from wattscale.metrics.readings import DemandHistory, DemandPoint, Reading, ReadingStatus
from wattscale.signals import GridEvent, GridEvents, Point, Series, SignalError, Unreachable

T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def _owner(manifest: Manifest) -> str | None:
    owner: str | None = (manifest["metadata"].get("annotations") or {}).get(ANNOTATION_OWNER)
    return owner


class FakeCluster:
    """A member cluster: Deployments by (namespace, name); can be made unreachable."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.deployments: dict[tuple[str, str], Manifest] = {}
        self.ready: dict[tuple[str, str], int] = {}
        self.scale_calls: list[tuple[str, int]] = []
        self.applied: list[str] = []
        self.deleted: list[str] = []
        self.reachable = True
        self.ready_immediately = True
        self.namespaces: dict[str, str] = {}
        """Namespaces the operator's applies created, with their Pod Security level."""
        self.fault: Exception | None = None
        """Raised by every call while set: a surprise from the client (say, pydantic's
        ValidationError for an HTML page a proxy answered with 200)."""
        self.fault_on: set[str] | None = None
        """Only these calls raise ``fault`` (None: every call)."""

    def _up(self, call: str = "") -> None:
        if not self.reachable:
            raise ClusterUnreachableError(f"region {self.name}: connection refused")
        if self.fault is not None and (self.fault_on is None or call in self.fault_on):
            raise self.fault

    def check(self) -> str:
        self._up("check")
        return "v1.36.3"

    def read_deployment(self, name: str, namespace: str) -> Manifest | None:
        self._up("read_deployment")
        dep = self.deployments.get((namespace, name))
        return copy.deepcopy(dep) if dep else None

    def apply(self, manifest: Manifest, pod_security: str = "restricted") -> None:
        self._up("apply")
        meta = manifest["metadata"]
        key = (meta["namespace"], meta["name"])
        live = self.deployments.get(key) if manifest["kind"] == "Deployment" else None
        if live is not None and _owner(live) != _owner(manifest):
            raise ClusterConflictError(f"region {self.name}: Deployment {key} is not ours")
        self.applied.append(f"{manifest['kind']}/{meta['name']}")
        self.namespaces.setdefault(meta["namespace"], pod_security)
        if manifest["kind"] != "Deployment":
            return
        replicas = (self.deployments.get(key) or {}).get("spec", {}).get("replicas", 1)
        body = copy.deepcopy(manifest)
        body["spec"]["replicas"] = replicas
        self.deployments[key] = body

    def state(self, name: str, namespace: str) -> WorkloadState:
        self._up("state")
        dep = self.deployments.get((namespace, name))
        if dep is None:
            return WorkloadState(exists=False)
        spec_replicas = dep["spec"]["replicas"]
        ready = self.ready.get((namespace, name), 0)
        return WorkloadState(
            exists=True, specReplicas=spec_replicas, readyReplicas=ready, owner=_owner(dep)
        )

    def scale(self, name: str, namespace: str, replicas: int) -> None:
        self._up("scale")
        self.deployments[(namespace, name)]["spec"]["replicas"] = replicas
        self.scale_calls.append((name, replicas))
        if self.ready_immediately:
            self.ready[(namespace, name)] = replicas

    def delete_workload(self, name: str, namespace: str, owner: str) -> bool:
        self._up("delete_workload")
        live = self.deployments.get((namespace, name))
        if live is None or _owner(live) != owner:
            return True  # nothing of ours (another owner's object is left untouched)
        self.deleted.append(name)
        return self.deployments.pop((namespace, name), None) is None

    def replicas(self, name: str, namespace: str = "ml-serving") -> int:
        dep = self.deployments.get((namespace, f"{name}-vllm"))
        return int(dep["spec"]["replicas"]) if dep else 0


class FakeFeed:
    """A price or carbon feed with a constant value; ``fail`` makes it raise."""

    def __init__(self, name: str, kind: str, value: float, unit: str) -> None:
        self.name = name
        self.kind = kind
        self.value = value
        self.unit = unit
        self.fail: SignalError | None = None

    def read(self, now: datetime) -> Series:
        if self.fail is not None:
            raise self.fail
        start = now.replace(minute=0, second=0, microsecond=0)
        points = tuple(
            Point(start + timedelta(hours=h), start + timedelta(hours=h + 1), self.value)
            for h in range(-1, 3)
        )
        return Series(
            source=self.name,
            kind=self.kind,  # type: ignore[arg-type]
            unit=self.unit,
            points=points,
            fetched_at=now,
        )

    def break_with_outage(self) -> None:
        self.fail = Unreachable(self.name, "connection refused")


class FakeGridEvents:
    """A grid-event feed (the shape OpenADR and the static source return); ``events`` is set by
    the test as (start, end, cap_fraction) tuples."""

    name = "gridEvents"
    kind = "gridEvents"

    def __init__(self) -> None:
        self.events: list[tuple[datetime, datetime | None, float]] = []

    def read(self, now: datetime) -> GridEvents:
        return GridEvents(
            source="fake-dr",
            events=tuple(
                GridEvent(start, end, cap, "excluded" if cap == 0 else "capped", event_id=f"dr-{i}")
                for i, (start, end, cap) in enumerate(self.events)
            ),
            fetched_at=now,
        )


@dataclass
class Load:
    """The demand users send, spread over every Ready replica in every region.

    Latency follows a simple queue: at utilisation ``u = load per replica / saturation``,
    p95 TTFT is ``0.1 s / (1 - u)`` and TPOT ``10 ms / (1 - u)``; so with the default
    saturation of 7,500 tok/s a replica meets a 500 ms / 50 ms SLO up to 6,000 tok/s.
    """

    clusters: list[FakeCluster]
    tokens_per_second: float = 0.0
    saturation_tokens_per_second: float = 7500.0

    def utilisation(self, cluster: FakeCluster, owner: str | None = None) -> float:
        counted = self._counted(owner)
        replicas = self._ready(cluster, counted)
        if replicas == 0:
            return 0.0
        share = self._share(cluster, counted)
        return min(0.99, share / replicas / self.saturation_tokens_per_second)

    def share(self, cluster: FakeCluster, owner: str | None = None) -> float:
        """What ``cluster``'s Ready replicas serve. With several InferenceDeployments in the
        world each is sent the whole load (``owner``: "namespace/name", the one read)."""
        return self._share(cluster, self._counted(owner))

    def _share(self, cluster: FakeCluster, counted: str | None) -> float:
        total = sum(self._ready(c, counted) for c in self.clusters if c.reachable)
        mine = self._ready(cluster, counted)
        return self.tokens_per_second * mine / total if total else 0.0

    def _counted(self, owner: str | None) -> str | None:
        """Whose replicas count: ``owner`` when the world runs replicas of more than one
        owner, else None (all of them)."""
        owners = {
            _owner(c.deployments[k]) for c in self.clusters for k in c.ready if k in c.deployments
        }
        return owner if len(owners) > 1 else None

    @staticmethod
    def _ready(cluster: FakeCluster, owner: str | None) -> int:
        if owner is None:
            return sum(cluster.ready.values())
        return sum(
            n
            for k, n in cluster.ready.items()
            if k in cluster.deployments and _owner(cluster.deployments[k]) == owner
        )


@dataclass(frozen=True)
class GatewaySample:
    """One sample of an instant query's answer."""

    value: float


@dataclass
class FakeMetrics:
    """Prometheus for one region: its share of the load, p95 latencies; can go down."""

    cluster: FakeCluster
    load: Load
    down: bool = False
    reads: list[str] = field(default_factory=list)
    ttft_p95_seconds: float | None = None
    """When set, the p95 TTFT reported whatever the load now: a rate window that still
    remembers an overload after replicas were added."""

    history: list[tuple[float, float]] = field(default_factory=list)
    unreported: int = 0
    """Ready pods whose metrics did not arrive (a failed scrape): their tokens are not summed
    and the readings are Partial, as the real reader makes them."""
    unscraped: list[str] = field(default_factory=list)
    """What Prometheus says about those pods (``up == 0``): their names."""
    gateway_waiting: float | None = None
    """What the gateway's wake query returns here (None: no series)."""
    waiting_requests: float = 0.0
    """The requests waiting in the region's vLLM queues (a backlog)."""
    queries: list[str] = field(default_factory=list)
    variant_reads: list[str] = field(default_factory=list)
    capacity_histories: list[DeploymentTarget] = field(default_factory=list)
    config: MetricsConfig = field(default_factory=MetricsConfig)
    variant_ttft_p95_seconds: dict[str, float] = field(default_factory=dict)
    """Per variant label value (``""`` the first): the p95 TTFT its own readings report."""
    variant_labels: bool = True
    """False: the scrape config drops the variant label, every pod reads as the first's."""

    def query(self, promql: str) -> list[GatewaySample]:
        """An instant query: the gateway's waiting requests (the wake query)."""
        self.queries.append(promql)
        if self.down:
            raise QueryFailedError("prometheus unreachable", unreachable=True)
        return [] if self.gateway_waiting is None else [GatewaySample(self.gateway_waiting)]

    def unscraped_pods(self, target: DeploymentTarget) -> list[str] | None:
        return None if self.down else list(self.unscraped)

    def read_demand_history(
        self, target: DeploymentTarget, start: datetime, end: datetime, step_seconds: float
    ) -> DemandHistory:
        """``history`` between ``start`` and ``end`` (as recorded: the step is not resampled)."""
        if self.down:
            return DemandHistory((), ReadingStatus.MISSING, step_seconds, "unreachable")
        lo, hi = start.timestamp(), end.timestamp()
        points = tuple(DemandPoint(t, v) for t, v in self.history if lo <= t <= hi)
        if not points:
            return DemandHistory((), ReadingStatus.MISSING, step_seconds, "no series")
        return DemandHistory(points, ReadingStatus.OK, step_seconds)

    def read_capacity_history(
        self,
        target: DeploymentTarget,
        start: datetime,
        end: datetime,
        step_seconds: float | None = None,
    ) -> list[CapacityObservation]:
        self.capacity_histories.append(target)
        return []

    def read_variants(
        self, target: DeploymentTarget, expected_pods: Mapping[str, int | None]
    ) -> dict[str, DeploymentReadings]:
        """Each variant's readings: its Ready pods' part of the region's load, its own p95
        TTFT when ``variant_ttft_p95_seconds`` names it."""
        self.variant_reads.append(target.deployment)
        total = sum(n or 0 for n in expected_pods.values())
        if not self.variant_labels:  # every pod in the first variant's group
            expected_pods = {v: (total if v == "" else 0) for v in expected_pods}
        return {
            v: self.read(
                replace(target, variant=v),
                expected_pods=n,
                fraction=(n or 0) / total if total else 0.0,
            )
            for v, n in expected_pods.items()
        }

    def read(
        self,
        target: DeploymentTarget,
        *,
        expected_pods: int | None = None,
        fraction: float = 1.0,
    ) -> DeploymentReadings:
        if target.variant is None:
            self.reads.append(target.deployment)
        ready = expected_pods or 0
        pods = max(0, ready - self.unreported)
        status = ReadingStatus.PARTIAL if pods < ready else ReadingStatus.OK

        def ok(value: float) -> Reading:
            if self.down:
                return Reading.missing("prometheus unreachable")
            return Reading(value, status, 1.0, pods)

        # Only the reporting pods' tokens are in the sum (the load is spread evenly).
        owner = f"{target.namespace}/{target.deployment}"
        tokens = self.load.share(self.cluster, owner) * fraction * (pods / ready if ready else 1.0)
        u = self.load.utilisation(self.cluster, owner)
        ttft = 0.1 / (1 - u) if self.ttft_p95_seconds is None else self.ttft_p95_seconds
        ttft = self.variant_ttft_p95_seconds.get(target.variant or "", ttft)
        tpot = 0.01 / (1 - u)
        return DeploymentReadings(
            namespace=target.namespace,
            deployment=target.deployment,
            region=self.cluster.name,
            observed_at=T0,
            prometheus_reachable=not self.down,
            pods_reporting=0 if self.down else pods,
            pods_expected=expected_pods,
            request_rate_per_second=ok(tokens / 200),
            prompt_tokens_per_second=ok(tokens * 4),
            generation_tokens_per_second=ok(tokens),
            running_requests=ok(10.0 * pods),
            waiting_requests=ok(self.waiting_requests * fraction),
            kv_cache_usage_ratio=ok(0.3),
            ttft_p50_seconds=ok(ttft / 2),
            ttft_p95_seconds=ok(ttft),
            tpot_p50_seconds=ok(tpot / 2),
            tpot_p95_seconds=ok(tpot),
            gpu_power_watts=ok(500.0 * pods),
            gpu_energy_joules=ok(0.0),
            gpu_utilization_ratio=ok(0.5),
            gpus_reporting=pods,
            variant=target.variant,
        )


@dataclass
class FakeRegion:
    cluster: FakeCluster
    price: FakeFeed
    carbon: FakeFeed
    metrics: FakeMetrics


def region_doc(
    name: str,
    *,
    quota: int = 16,
    hourly_cost: str = "2.50",
    extra_gpus: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Region spec like the example's, with feeds our fakes stand in for (and
    ``extra_gpus`` offered beside its H100s)."""
    spec = copy.deepcopy(example("Region")["spec"])
    spec["gpus"] += copy.deepcopy(extra_gpus or [])
    spec["energy"] = {
        "currency": "USD",
        "pue": "1.2",
        "price": {"type": "csv", "url": "http://127.0.0.1:9/unused.csv"},
        "carbon": {"type": "csv", "url": "http://127.0.0.1:9/unused.csv"},
    }
    spec["gpus"][0]["available"] = quota
    spec["gpus"][0]["hourlyCost"] = hourly_cost
    spec["latency"] = []
    return spec


def build_world(
    prices: dict[str, float],
    carbon: dict[str, float] | None = None,
    extra_gpus: list[dict[str, Any]] | None = None,
) -> tuple[RegionDirectory, dict[str, FakeRegion], Load]:
    """A directory of regions backed by fakes; prices in USD/kWh."""
    clusters = {n: FakeCluster(n) for n in prices}
    load = Load(list(clusters.values()))

    def factory(name: str, spec: Any, secrets: Any) -> Any:
        return clusters[name]

    directory = RegionDirectory(lambda ref: "secret", factory)
    world: dict[str, FakeRegion] = {}
    for name, price in prices.items():
        runtime = directory.upsert(name, 1, region_doc(name, extra_gpus=extra_gpus))
        fake = FakeRegion(
            cluster=clusters[name],
            price=FakeFeed(f"price-{name}", "price", price, "USD/kWh"),
            carbon=FakeFeed(
                f"carbon-{name}", "carbon", (carbon or {}).get(name, 300.0), "gCO2eq/kWh"
            ),
            metrics=FakeMetrics(clusters[name], load),
        )
        assert runtime.signals is not None, runtime.errors
        runtime.signals.price = fake.price
        runtime.signals.carbon = fake.carbon
        runtime.metrics = fake.metrics  # type: ignore[assignment]
        world[name] = fake
    return directory, world, load


class FakeRoutes:
    """The hub's HTTPRoutes (``RouteStore``): JSON patches applied for real, faults on demand.

    ``served`` False is a hub without the Gateway API CRDs; ``forbidden`` answers 403 like an
    operator without the RBAC; ``patch_error`` fails writes only; ``before_patch`` runs between
    the read and the write (a concurrent edit), and a failed ``test`` op refuses the whole patch
    with 422, as the API server does.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], dict[str, Any]] = {}
        self.served_api = True
        self.forbidden = False
        self.before_patch: list[Callable[[], None]] = []
        self.patches: list[list[dict[str, Any]]] = []
        self.discoveries = 0
        self.patch_error: RouteError | None = None
        """Raised by every patch while set: a 500, a 403 on patch only, a 409 conflict."""

    def add(self, namespace: str, name: str, backends: list[str], **spec: Any) -> dict[str, Any]:
        """A route with one rule sending to ``backends`` (weight 1 each, as the API defaults)."""
        refs = [
            {"group": "", "kind": "Service", "name": b, "port": 8000, "weight": 1} for b in backends
        ]
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": refs}], **spec},
        }
        self.routes[(namespace, name)] = route
        return route

    def weights(self, namespace: str, name: str, rule: int = 0) -> dict[str, int]:
        refs = self.routes[(namespace, name)]["spec"]["rules"][rule]["backendRefs"]
        return {r["name"]: r.get("weight", 1) for r in refs}

    def _check(self) -> None:
        if self.forbidden:
            raise RouteError('httproutes is forbidden: User "wattscale" cannot ...', 403)

    def served(self) -> bool:
        self.discoveries += 1
        return self.served_api

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        route = self.routes.get((namespace, name))
        return copy.deepcopy(route) if route else None

    def patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        self._check()
        if self.patch_error is not None:
            raise self.patch_error
        while self.before_patch:
            self.before_patch.pop(0)()
        if (namespace, name) not in self.routes:
            raise RouteError(f"httproutes {name!r} not found", 404)
        body = copy.deepcopy(self.routes[(namespace, name)])
        for op in ops:
            *parents, last = op["path"].strip("/").split("/")
            node: Any = body
            try:
                for part in parents:
                    node = node[int(part)] if isinstance(node, list) else node[part]
                key: Any = int(last) if isinstance(node, list) else last
                if op["op"] == "test" and node[key] != op["value"]:
                    raise LookupError(op["path"])
                if op["op"] == "replace" and isinstance(node, dict) and key not in node:
                    raise LookupError(op["path"])
                if op["op"] in ("add", "replace"):
                    node[key] = op["value"]
            except (LookupError, IndexError, TypeError) as err:
                raise RouteError(f"the server rejected our request: {err}", 422) from err
        self.patches.append(ops)
        self.routes[(namespace, name)] = body
