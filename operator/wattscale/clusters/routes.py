"""Gateway API HTTPRoutes on the hub: is the API there, read a route, JSON-patch its weights.

The operator runs whether or not the hub has the Gateway API CRDs. Whether it serves
``gateway.networking.k8s.io/v1`` ``httproutes`` is found by API discovery (one GET, allowed to
every authenticated client, no RBAC needed) and remembered for :data:`DISCOVERY_TTL_SECONDS`,
so installing the CRDs later is noticed within a minute and a hub without them costs one
request a minute, not one per pass. A route that disappears (404) forgets the answer early.

Every failure becomes a :class:`RouteError` with the HTTP status (0 when the hub did not answer),
so the caller can turn it into a condition. What to patch is decided in
:mod:`wattscale.clusters.route_weights` (pure); this module only does the I/O.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
PLURAL = "httproutes"
DISCOVERY_TTL_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 10.0
_JSON_PATCH = "application/json-patch+json"


class RouteError(Exception):
    """The hub refused or did not answer a request about an HTTPRoute."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RouteStore(Protocol):
    """What the controller needs from the hub's HTTPRoutes (a fake implements it in tests)."""

    def served(self) -> bool:
        """True if the hub serves gateway.networking.k8s.io/v1 httproutes."""
        ...

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The route, or None if there is no such route."""
        ...

    def patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        """Apply a JSON patch; RouteError(422) when one of its tests fails."""
        ...


class HubRoutes:
    """HTTPRoutes through the hub's API server (the operator's own credentials)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        discovery_ttl_seconds: float = DISCOVERY_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._timeout = timeout_seconds
        self._ttl = discovery_ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._served: tuple[bool, float] | None = None  # (answer, when)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self._timeout)
        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            detail = _message(err)
            raise RouteError(f"{what}: {err.status} {err.reason}{detail}", err.status) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise RouteError(f"{what}: the hub did not answer: {err}", 0) from err

    def served(self) -> bool:
        with self._lock:
            cached = self._served
        if cached is not None and self._clock() - cached[1] < self._ttl:
            return cached[0]
        try:
            # Raw JSON: the client's typed model rejects lists with fields it does not expect.
            raw = self._call(
                f"discover {GROUP}/{VERSION}",
                self._custom.get_api_resources,
                GROUP,
                VERSION,
                _preload_content=False,
            )
            try:
                found = json.loads(raw.data or b"{}")
                answer = any(r.get("name") == PLURAL for r in found.get("resources") or [])
            except (ValueError, AttributeError, TypeError) as err:
                raise RouteError(
                    f"discover {GROUP}/{VERSION}: unreadable answer: {err}", 0
                ) from err
        except RouteError as err:
            if err.status != 404:
                raise  # not an answer about the API: ask again next time
            answer = False
        with self._lock:
            self._served = (answer, self._clock())
        return answer

    def forget_discovery(self) -> None:
        with self._lock:
            self._served = None

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            route: dict[str, Any] = self._call(
                f"get httproute {namespace}/{name}",
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
            )
        except RouteError as err:
            if err.status == 404:
                self.forget_discovery()  # the route, or the whole API, may be gone
                return None
            raise
        return route

    def patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
        self._call(
            f"patch httproute {namespace}/{name}",
            self._custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            ops,
            _content_type=_JSON_PATCH,
        )


def _message(err: ApiException) -> str:
    """The API server's own message from an error body, if there is one."""
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        return ""
    text = body.get("message") if isinstance(body, dict) else None
    return f": {text}" if text else ""
