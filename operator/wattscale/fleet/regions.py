"""What the operator holds per Region: its cluster client, feed readers and metrics reader.

Built from a ``Region`` object and the Secrets it references, and rebuilt only when the Region's
generation changes (so feed caches and HTTP sessions survive between loop passes). A Region that
cannot be built (a missing Secret, a broken kubeconfig) is kept with its error, so the loop can
report it and plan around the region instead of crashing.
"""

from __future__ import annotations

import base64
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
        runtime = RegionRuntime(name=name, generation=generation, spec=spec)
        try:
            runtime.cluster = self._cluster_factory(name, spec, self._secrets)
        except (ClusterError, KeyError, LookupError, OSError) as err:
            runtime.errors.append(f"cluster: {err}")
        except Exception as err:  # the kubernetes client raises ApiException for a missing Secret
            runtime.errors.append(f"cluster: cannot read the kubeconfig Secret: {err}")
        try:
            runtime.signals = RegionSignals(spec.energy, secrets=self._secrets)
        except (SignalError, KeyError, ValueError) as err:
            runtime.errors.append(f"signals: {err}")
        if spec.prometheus is not None:
            headers = None
            if spec.prometheus.bearerTokenSecretRef is not None:
                try:
                    token = self._secrets(spec.prometheus.bearerTokenSecretRef)
                    headers = {"Authorization": f"Bearer {token.strip()}"}
                except Exception as err:
                    runtime.errors.append(f"prometheus: cannot read the bearer token: {err}")
            config = self._metrics_config.model_copy(
                update={"query_timeout_seconds": float(spec.prometheus.timeoutSeconds)}
            )
            runtime.metrics = MetricsReader(
                spec.prometheus.url, config, region=name, headers=headers
            )
        return runtime
