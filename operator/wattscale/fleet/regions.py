"""What the operator holds per Region: its cluster client, feed readers and metrics reader.

Built from a ``Region`` object and the Secrets it references, and rebuilt only when the Region's
generation changes or a Secret it was built from changes (so feed caches and HTTP sessions
survive between loop passes). A Region that cannot be built (a missing Secret, a refused
kubeconfig) is kept with its error, so the loop can report it and plan around the region instead
of crashing; :meth:`RegionDirectory.refresh`, called by the health loop every interval, re-reads
the Secrets and rebuilds the Region when one was created or rotated, so it heals without a
restart. Feed tokens are read by the feeds on every fetch, so they need no rebuild.

Error text never quotes a Secret's value: Secret read failures are reported by their HTTP status
and a kubeconfig by the name of the field it was refused for.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from wattscale.api.errors import format_errors
from wattscale.api.region import RegionSpec
from wattscale.api.sources import SecretKeyRef
from wattscale.clusters.client import ClusterError, RegionCluster
from wattscale.metrics import MetricsConfig, MetricsReader
from wattscale.signals import SignalError
from wattscale.signals.region import RegionSignals

log = logging.getLogger(__name__)

SecretReader = Callable[[SecretKeyRef], str]
ClusterFactory = Callable[[str, RegionSpec, SecretReader], RegionCluster]


@dataclass
class RegionRuntime:
    """Everything needed to observe and act in one region."""

    name: str
    generation: int
    spec: RegionSpec | None
    cluster: RegionCluster | None = None
    signals: RegionSignals | None = None
    metrics: MetricsReader | None = None
    errors: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    """The Region's spec as read, to rebuild the runtime when a Secret changes."""
    secret_digests: dict[str, str] = field(default_factory=dict)
    """What each Secret key read at build time held (a hash, or why it could not be read)."""

    @property
    def usable(self) -> bool:
        return self.spec is not None and self.cluster is not None


def hub_secret_reader(core_api: Any, default_namespace: str) -> SecretReader:
    """Read Secret keys from the hub cluster (the operator's namespace by default)."""

    def read(ref: SecretKeyRef) -> str:
        namespace = ref.namespace or default_namespace
        secret = core_api.read_namespaced_secret(ref.name, namespace, _request_timeout=10)
        data = secret.data or {}
        if ref.key not in data:
            raise KeyError(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
        return base64.b64decode(data[ref.key]).decode("utf-8")

    return read


def _ref_key(ref: SecretKeyRef) -> str:
    return f"{ref.namespace or ''}/{ref.name}/{ref.key}"


def _digest(read: SecretReader, ref: SecretKeyRef) -> str:
    try:
        value = read(ref)
    except Exception as err:
        return f"unreadable: {secret_problem(err)}"
    return hashlib.sha256(value.encode()).hexdigest()


def secret_problem(err: BaseException) -> str:
    """Why a Secret could not be read, without quoting anything it holds."""
    status = getattr(err, "status", None)
    if status is not None:
        return f"{type(err).__name__} {status} {getattr(err, 'reason', '')}".strip()
    if isinstance(err, KeyError):
        return f"missing key {err}"
    return type(err).__name__


class _RecordingReader:
    """A SecretReader that remembers a digest of every key it read (to notice rotation)."""

    def __init__(self, read: SecretReader) -> None:
        self._read = read
        self.digests: dict[str, str] = {}

    def __call__(self, ref: SecretKeyRef) -> str:
        try:
            value = self._read(ref)
        except Exception as err:
            self.digests[_ref_key(ref)] = f"unreadable: {secret_problem(err)}"
            raise
        self.digests[_ref_key(ref)] = hashlib.sha256(value.encode()).hexdigest()
        return value


def default_cluster_factory(hub: Callable[[], RegionCluster]) -> ClusterFactory:
    """Member clusters from their kubeconfig Secret; the hub when a Region has no clusterRef."""

    def build(name: str, spec: RegionSpec, secrets: SecretReader) -> RegionCluster:
        if spec.clusterRef is None:
            return hub()
        kubeconfig = secrets(spec.clusterRef.kubeconfigSecretRef)
        return RegionCluster.from_kubeconfig(name, kubeconfig)

    return build


class RegionDirectory:
    """The operator's view of every Region, thread-safe (kopf runs sync handlers in threads)."""

    def __init__(
        self,
        secrets: SecretReader,
        cluster_factory: ClusterFactory,
        metrics_config: MetricsConfig | None = None,
    ) -> None:
        self._secrets = secrets
        self._cluster_factory = cluster_factory
        self._metrics_config = metrics_config or MetricsConfig()
        self._regions: dict[str, RegionRuntime] = {}
        self._lock = threading.Lock()

    def upsert(self, name: str, generation: int, spec: dict[str, Any]) -> RegionRuntime:
        """Build (or keep) the runtime for a Region object."""
        with self._lock:
            current = self._regions.get(name)
            if current is not None and current.generation == generation and not current.errors:
                return current
        runtime = self._build(name, generation, spec)
        with self._lock:
            self._regions[name] = runtime
        return runtime

    def refresh(self, name: str) -> RegionRuntime | None:
        """Rebuild a Region whose Secrets changed since it was built (created, rotated, gone)."""
        with self._lock:
            current = self._regions.get(name)
        if current is None or current.spec is None or not current.secret_digests:
            return current
        refs = _refs(current.spec)
        changed = any(
            _digest(self._secrets, ref) != current.secret_digests.get(_ref_key(ref))
            for ref in refs
            if _ref_key(ref) in current.secret_digests
        )
        if not changed:
            return current
        log.info("region %s: a Secret it uses changed; rebuilding its clients", name)
        runtime = self._build(name, current.generation, current.raw)
        with self._lock:
            if self._regions.get(name) is current:  # not replaced by a Region update meanwhile
                self._regions[name] = runtime
                return runtime
            return self._regions.get(name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._regions.pop(name, None)

    def get(self, name: str) -> RegionRuntime | None:
        with self._lock:
            return self._regions.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._regions)

    def _build(self, name: str, generation: int, raw: dict[str, Any]) -> RegionRuntime:
        try:
            spec = RegionSpec.model_validate(raw)
        except ValidationError as err:
            problems = format_errors(err, prefix="spec")
            return RegionRuntime(name=name, generation=generation, spec=None, errors=problems)
        runtime = RegionRuntime(name=name, generation=generation, spec=spec, raw=raw)
        secrets = _RecordingReader(self._secrets)
        try:
            runtime.cluster = self._cluster_factory(name, spec, secrets)
        except ClusterError as err:
            runtime.errors.append(f"cluster: {err}")
        except Exception as err:  # the kubernetes client raises ApiException for a missing Secret
            runtime.errors.append(
                f"cluster: cannot read the kubeconfig Secret: {secret_problem(err)}"
            )
        try:
            runtime.signals = RegionSignals(spec.energy, secrets=self._secrets)
        except (SignalError, KeyError, ValueError) as err:
            runtime.errors.append(f"signals: {err}")
        if spec.prometheus is not None:
            headers = None
            if spec.prometheus.bearerTokenSecretRef is not None:
                try:
                    token = secrets(spec.prometheus.bearerTokenSecretRef)
                    headers = {"Authorization": f"Bearer {token.strip()}"}
                except Exception as err:
                    runtime.errors.append(
                        f"prometheus: cannot read the bearer token: {secret_problem(err)}"
                    )
            config = self._metrics_config.model_copy(
                update={"query_timeout_seconds": float(spec.prometheus.timeoutSeconds)}
            )
            runtime.metrics = MetricsReader(
                spec.prometheus.url, config, region=name, headers=headers
            )
        runtime.secret_digests = secrets.digests
        return runtime


def _refs(spec: RegionSpec) -> list[SecretKeyRef]:
    """The Secret keys a Region's clients are built from (feeds read theirs on every fetch)."""
    refs = []
    if spec.clusterRef is not None:
        refs.append(spec.clusterRef.kubeconfigSecretRef)
    if spec.prometheus is not None and spec.prometheus.bearerTokenSecretRef is not None:
        refs.append(spec.prometheus.bearerTokenSecretRef)
    return refs
