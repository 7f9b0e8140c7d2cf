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
    Manifest,
    namespace_labels,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
CONNECTIONS_PER_CLUSTER = 32
"""Connections kept open per cluster: kopf's 16 handler threads may each call one cluster at
once, with the Region health loop and the fleet snapshot beside them (urllib3's default, 5 per
CPU, discarded connections with a "pool is full" warning at 200 deployments on 2 cores)."""
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


class ClusterConflictError(ClusterRequestError):
    """An object we would write or delete exists and was not made for this InferenceDeployment."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


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
    owner: str | None = None
    """The live object's ``wattscale.io/owner`` annotation (``namespace/name``)."""


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
            configuration.connection_pool_maxsize = CONNECTIONS_PER_CLUSTER
            api = client.ApiClient(configuration)
        except Exception as err:  # e.g. base64 that does not decode; its text may quote the data
            raise KubeconfigRefusedError(
                f"region {name}: kubeconfig is not usable ({type(err).__name__})", 0
            ) from None
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
        except Exception as err:
            # An answer the client cannot read: an HTML page from a proxy (the kubernetes client
            # raises pydantic's ValidationError), a truncated body. The region did not answer
            # usably; the text may quote the body, so only the error's type is kept.
            raise ClusterUnreachableError(
                f"region {self.name}: {what}: the answer could not be read ({type(err).__name__})"
            ) from None

    def check(self) -> str:
        """Raise unless the API server answers; return its version."""
        info = self._call("health check", self._version.get_code)
        return str(info.git_version)

    def create_namespace(self, namespace: str, pod_security: str = "restricted") -> None:
        """Create a namespace labelled with the Pod Security level to enforce; one that exists
        (created meanwhile) is left as it is."""
        body = {"metadata": {"name": namespace, "labels": namespace_labels(pod_security)}}
        try:
            self._call("create namespace", self._core.create_namespace, body)
        except ClusterRequestError as err:
            if err.status != 409:
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

    def _read(self, kind: str, name: str, namespace: str) -> Any:
        fn = (
            self._apps.read_namespaced_deployment
            if kind == "Deployment"
            else self._core.read_namespaced_service
        )
        try:
            return self._call(f"read {kind} {namespace}/{name}", fn, name, namespace)
        except ClusterRequestError as err:
            if err.status == 404:
                return None
            raise

    def _refuse_foreign(self, kind: str, live: Any, owner: str) -> None:
        theirs = (live.metadata.annotations or {}).get(ANNOTATION_OWNER)
        if theirs != owner:
            meta = live.metadata
            raise ClusterConflictError(
                f"region {self.name}: {kind} {meta.namespace}/{meta.name} exists and was not "
                f"created by wattscale for {owner} (annotation {ANNOTATION_OWNER}); "
                "left untouched: rename or remove it"
            )

    def apply(self, manifest: Manifest, pod_security: str = "restricted") -> None:
        """Server-side apply one Deployment or Service under our field manager.

        An object of that name that carries another owner annotation (or none) is never
        adopted: :class:`ClusterConflictError`. A missing namespace is created, labelled with
        ``pod_security`` (so no read access to namespaces is needed)."""
        meta = manifest["metadata"]
        kind = manifest["kind"]
        fn: Any
        if kind == "Deployment":
            fn = self._apps.patch_namespaced_deployment
        elif kind == "Service":
            fn = self._core.patch_namespaced_service
        else:
            raise ValueError(f"cannot apply {kind}")
        live = self._read(kind, meta["name"], meta["namespace"])
        if live is not None:
            self._refuse_foreign(kind, live, meta["annotations"][ANNOTATION_OWNER])

        def patch() -> None:
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

        try:
            patch()
        except ClusterRequestError as err:
            if err.status != 404 or live is not None:
                raise
            self.create_namespace(meta["namespace"], pod_security)
            patch()

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
            owner=(live["metadata"].get("annotations") or {}).get(ANNOTATION_OWNER),
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

    def delete_workload(self, name: str, namespace: str, owner: str) -> bool:
        """Delete our Deployment and Service; True when nothing of ours is left.

        Only objects whose owner annotation is ``owner`` are deleted, with the uid read as a
        precondition (an object replaced meanwhile is not deleted either); others are left
        untouched, with a warning."""
        gone = True
        for kind, fn in (
            ("Deployment", self._apps.delete_namespaced_deployment),
            ("Service", self._core.delete_namespaced_service),
        ):
            live = self._read(kind, name, namespace)
            if live is None:
                continue
            try:
                self._refuse_foreign(kind, live, owner)
            except ClusterConflictError as err:
                log.warning("%s", err)
                continue
            body = client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid=live.metadata.uid)
            )
            try:
                self._call(f"delete {kind} {namespace}/{name}", fn, name, namespace, body=body)
                gone = False  # deletion accepted; it may still be finalising
            except ClusterRequestError as err:
                if err.status not in (404, 409):
                    raise
        return gone

    def close(self) -> None:
        self._api.close()


def hub_client() -> client.ApiClient:
    """The hub: in-cluster credentials in a pod, else KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = CONNECTIONS_PER_CLUSTER
    return client.ApiClient(configuration)
