"""One Kubernetes client per member cluster: apply the vLLM workload, scale it, read it, delete it.

Every call has a timeout and every failure becomes :class:`ClusterUnreachableError` or
:class:`ClusterRequestError`, so the control loop can mark a region unavailable and carry on
instead of crashing. Replica counts go through the Deployment's ``/scale`` subresource; the
Deployment itself is applied server-side under the ``wattscale`` field manager without
``spec.replicas``.

A member cluster is tried once per call, without urllib3's retries: the level-based loop tries
again on its next pass anyway, and retries would only multiply the time a dead region costs each
pass (and log a warning per retry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from wattscale.clusters.kubeconfig import KubeconfigError, inline_kubeconfig
from wattscale.clusters.render import (
    ANNOTATION_OWNER,
    FIELD_MANAGER,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    LABEL_NAMESPACE,
    Manifest,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
_APPLY = "application/apply-patch+yaml"


class ClusterError(Exception):
    """Something went wrong talking to a member cluster."""


class ClusterUnreachableError(ClusterError):
    """The cluster did not answer (connection refused, timeout, TLS failure)."""


class ClusterRequestError(ClusterError):
    """The cluster answered with an error (forbidden, invalid, conflict...)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class KubeconfigRefusedError(ClusterRequestError):
    """A Region's kubeconfig is malformed or asks for more than inline credentials."""


@dataclass(frozen=True)
class WorkloadState:
    """What runs in one region for one InferenceDeployment."""

    exists: bool
    specReplicas: int = 0
    readyReplicas: int = 0
    updatedReplicas: int = 0
    image: str | None = None


# The rendered fields we own; a difference here in the live object was made by someone else.
_DRIFT_PATHS: tuple[tuple[str, ...], ...] = (
    ("spec", "template", "spec", "containers", "0", "image"),
    ("spec", "template", "spec", "containers", "0", "args"),
    ("spec", "template", "spec", "containers", "0", "resources", "limits"),
    ("spec", "template", "spec", "nodeSelector"),
)


def _cause(err: Exception) -> str:
    """The root of a connection failure, without urllib3's pool and retry wrapping."""
    if isinstance(err, urllib3.exceptions.MaxRetryError) and err.reason is not None:
        return str(err.reason)
    return str(err)


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(obj, list):
            index = int(part)
            obj = obj[index] if index < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def drift(live: Manifest, rendered: Manifest) -> list[str]:
    """Fields of ``rendered`` that the live object no longer matches, as dotted paths."""
    return [".".join(p) for p in _DRIFT_PATHS if _dig(live, p) != _dig(rendered, p)]


class RegionCluster:
    """A member cluster, reached with its own kubeconfig."""

    def __init__(
        self, name: str, api: client.ApiClient, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self.name = name
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._version = client.VersionApi(api)
        self._timeout = timeout_seconds

    @classmethod
    def from_kubeconfig(
        cls, name: str, kubeconfig: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> RegionCluster:
        """Build a client from kubeconfig text (as stored in the Region's Secret)."""
        try:
            data = inline_kubeconfig(kubeconfig)
        except KubeconfigError as err:
            raise KubeconfigRefusedError(f"region {name}: {err}", 0) from None
        try:
            configuration = client.Configuration()
            config.load_kube_config_from_dict(data, client_configuration=configuration)
            configuration.retries = 0  # one attempt per call; the loop's next pass is the retry
            api = client.ApiClient(configuration)
        except Exception as err:  # e.g. base64 that does not decode; its text may quote the data
            raise KubeconfigRefusedError(
                f"region {name}: kubeconfig is not usable ({type(err).__name__})", 0
            ) from None
        return cls(name, api, timeout_seconds)

    @classmethod
    def in_cluster_or_default(
        cls, name: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    ) -> RegionCluster:
        """The hub itself: in-cluster config in a pod, else the local kubeconfig."""
        try:
            config.load_incluster_config()
            api = client.ApiClient()
        except config.ConfigException:
            api = config.new_client_from_config()
        return cls(name, api, timeout_seconds)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            if err.status in (0, 502, 503, 504):
                raise ClusterUnreachableError(f"region {self.name}: {what}: {err.reason}") from err
            raise ClusterRequestError(
                f"region {self.name}: {what}: {err.status} {err.reason}", err.status
            ) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ClusterUnreachableError(f"region {self.name}: {what}: {_cause(err)}") from err

    def check(self) -> str:
        """Raise unless the API server answers; return its version."""
        info = self._call("health check", self._version.get_code)
        return str(info.git_version)

    def ensure_namespace(self, namespace: str) -> None:
        try:
            self._call("read namespace", self._core.read_namespace, namespace)
        except ClusterRequestError as err:
            if err.status != 404:
                raise
            body = {"metadata": {"name": namespace, "labels": {LABEL_MANAGED_BY: "wattscale"}}}
            try:
                self._call("create namespace", self._core.create_namespace, body)
            except ClusterRequestError as create_err:
                if create_err.status != 409:
                    raise

    def read_deployment(self, name: str, namespace: str) -> Manifest | None:
        try:
            obj = self._call(
                "read deployment", self._apps.read_namespaced_deployment, name, namespace
            )
        except ClusterRequestError as err:
            if err.status == 404:
                return None
            raise
        result: Manifest = self._api.sanitize_for_serialization(obj)
        return result

    def apply(self, manifest: Manifest) -> None:
        """Server-side apply one Deployment or Service under our field manager."""
        meta = manifest["metadata"]
        kind = manifest["kind"]
        fn: Any
        if kind == "Deployment":
            fn = self._apps.patch_namespaced_deployment
        elif kind == "Service":
            fn = self._core.patch_namespaced_service
        else:
            raise ValueError(f"cannot apply {kind}")
        self._call(
            f"apply {kind} {meta['namespace']}/{meta['name']}",
            fn,
            meta["name"],
            meta["namespace"],
            manifest,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=_APPLY,
        )

    def state(self, name: str, namespace: str) -> WorkloadState:
        live = self.read_deployment(name, namespace)
        if live is None:
            return WorkloadState(exists=False)
        status = live.get("status") or {}
        containers = _dig(live, ("spec", "template", "spec", "containers")) or [{}]
        return WorkloadState(
            exists=True,
            specReplicas=int(live["spec"].get("replicas") or 0),
            readyReplicas=int(status.get("readyReplicas") or 0),
            updatedReplicas=int(status.get("updatedReplicas") or 0),
            image=containers[0].get("image"),
        )

    def scale(self, name: str, namespace: str, replicas: int) -> None:
        """Set the replica count through the /scale subresource."""
        self._call(
            f"scale {namespace}/{name} to {replicas}",
            self._apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
        )

    def delete_workload(self, name: str, namespace: str) -> bool:
        """Delete our Deployment and Service; True when nothing of ours is left."""
        gone = True
        for what, fn in (
            ("deployment", self._apps.delete_namespaced_deployment),
            ("service", self._core.delete_namespaced_service),
        ):
            try:
                self._call(f"delete {what} {namespace}/{name}", fn, name, namespace)
                gone = False  # deletion accepted; it may still be finalising
            except ClusterRequestError as err:
                if err.status != 404:
                    raise
        return gone

    def list_owned(self, owner_namespace: str, owner_name: str) -> list[str]:
        """Names of Deployments in this cluster that belong to the given InferenceDeployment."""
        selector = f"{LABEL_DEPLOYMENT}={owner_name},{LABEL_NAMESPACE}={owner_namespace}"
        result = self._call(
            "list deployments",
            self._apps.list_deployment_for_all_namespaces,
            label_selector=selector,
        )
        return [
            str(item.metadata.name)
            for item in result.items
            if (item.metadata.annotations or {}).get(ANNOTATION_OWNER)
            == f"{owner_namespace}/{owner_name}"
        ]

    def close(self) -> None:
        self._api.close()
