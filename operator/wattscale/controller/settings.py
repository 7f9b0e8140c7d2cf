"""Operator settings: one frozen object, filled from `wattscale run` flags and environment."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

ANNOTATION_PREFIX = "wattscale.io"
FINALIZER = "wattscale.io/cleanup"


def is_namespace_pattern(namespace: str) -> bool:
    """Whether a watched namespace is a kopf glob (``team-*``) rather than an exact name."""
    return bool(set("*?[!") & set(namespace))


@dataclass(frozen=True)
class Settings:
    """How the control loop runs. Defaults suit production; tests shorten the intervals."""

    interval_seconds: float = 30.0
    """How often each InferenceDeployment is reconciled (level-based: read all, decide, act)."""
    region_interval_seconds: float = 30.0
    """How often each Region's cluster and feeds are checked."""
    operator_namespace: str = "wattscale-system"
    """Where the operator runs; Secret references without a namespace resolve here."""
    metrics_port: int = 9464
    metrics_address: str = "0.0.0.0"
    hub_region: str = "hub"
    """Name used for the hub cluster when a Region has no clusterRef."""
    rate_window_seconds: int = 120
    """Window of PromQL rate() and histogram_quantile() over vLLM metrics (>= 4 scrapes)."""
    time_scale: float = 1.0
    """Wall-clock acceleration for demos and e2e tests (2.0: a minute passes in 30 s).

    It scales only the operator's own timers (stabilisation, drain, cold-start estimates), never
    the feeds' timestamps."""
    watch_namespaces: tuple[str, ...] = ()
    """The namespaces watched (``wattscale run -n``); empty: every namespace. The operator then
    reads InferenceDeployments only there, as a chart with ``watchNamespaces`` grants."""

    sharding: bool = False
    """Several replicas: each owns a shard of the InferenceDeployments (a consistent hash of
    namespace/name over the replicas' Leases in ``operator_namespace``); one leads the fleet-wide
    parts (see :mod:`wattscale.fleet.shards`). Off: this replica owns every deployment."""
    identity: str = ""
    """This replica's name in the shard Leases (the pod name; empty: the host name)."""

    @property
    def replica_identity(self) -> str:
        return self.identity or os.environ.get("POD_NAME") or socket.gethostname()

    @property
    def lease_renew_seconds(self) -> float:
        """How often this replica renews its Lease and re-reads the others (a third of an
        interval, so an expired Lease is noticed well within one)."""
        return max(self.interval_seconds / 3.0, 1.0)

    @property
    def lease_duration_seconds(self) -> float:
        """How long a Lease holds without renewal: one interval (three missed renewals)."""
        return max(self.interval_seconds, 3.0 * self.lease_renew_seconds)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then WATTSCALE_* environment variables, then explicit overrides."""
        env = os.environ
        values: dict[str, object] = {}
        for name, kind in (
            ("interval_seconds", float),
            ("region_interval_seconds", float),
            ("operator_namespace", str),
            ("metrics_port", int),
            ("metrics_address", str),
            ("hub_region", str),
            ("rate_window_seconds", int),
            ("time_scale", float),
            ("identity", str),
        ):
            raw = env.get(f"WATTSCALE_{name.upper()}")
            if raw is not None:
                values[name] = kind(raw)
        sharding = env.get("WATTSCALE_SHARDING")
        if sharding is not None:
            values["sharding"] = sharding.strip().lower() in ("1", "true", "yes", "on")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
