"""HubRoutes through the real Kubernetes client against a loopback stand-in for the hub.

The server answers discovery, GET and PATCH of one HTTPRoute the way kube-apiserver does
(status codes, JSON bodies); the tests count what reaches it, so the discovery cache and the
JSON-patch content type are checked on the wire.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from wattscale.clusters.routes import DISCOVERY_TTL_SECONDS, HubRoutes, RouteError

pytestmark = pytest.mark.unit

DISCOVERY = "/apis/gateway.networking.k8s.io/v1"
ROUTE = f"{DISCOVERY}/namespaces/ml/httproutes/llm"


class Hub:
    """What the stand-in serves; tests change it between calls."""

    def __init__(self) -> None:
        self.crds = False
        self.route: dict[str, Any] | None = {"metadata": {"name": "llm"}, "spec": {}}
        self.deny = False
        self.requests: list[tuple[str, str, str, Any]] = []  # method, path, content type, body


def _status(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}


@pytest.fixture
def hub() -> Iterator[tuple[Hub, HubRoutes, list[float]]]:
    state = Hub()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.requests.append((method, self.path, self.headers.get("Content-Type", ""), body))
            path = self.path.split("?")[0]
            if path == DISCOVERY:
                if not state.crds:
                    self._reply(404, _status(404, "the server could not find the resource"))
                    return
                resources = [{"name": "httproutes", "namespaced": True, "kind": "HTTPRoute"}]
                self._reply(200, {"kind": "APIResourceList", "resources": resources})
            elif path == ROUTE and state.deny:
                self._reply(403, _status(403, 'httproutes "llm" is forbidden'))
            elif path == ROUTE and state.route is not None:
                self._reply(200, state.route)
            else:
                self._reply(404, _status(404, 'httproutes "llm" not found'))

        def do_GET(self) -> None:
            self._answer("GET")

        def do_PATCH(self) -> None:
            self._answer("PATCH")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{server.server_address[1]}"
    api = client.ApiClient(config)
    now = [1000.0]
    try:
        yield state, HubRoutes(api, timeout_seconds=5, clock=lambda: now[0]), now
    finally:
        api.close()
        server.shutdown()
        server.server_close()


def _discoveries(state: Hub) -> int:
    return sum(1 for _, path, _, _ in state.requests if path == DISCOVERY)


def test_discovery_is_cached_and_expires(hub: tuple[Hub, HubRoutes, list[float]]) -> None:
    state, routes, now = hub
    assert routes.served() is False
    assert routes.served() is False
    assert _discoveries(state) == 1  # a hub without the CRDs costs one request per TTL
    state.crds = True
    now[0] += DISCOVERY_TTL_SECONDS - 1
    assert routes.served() is False  # still the cached answer
    now[0] += 2
    assert routes.served() is True  # CRDs installed later are noticed after the TTL
    assert _discoveries(state) == 2


def test_a_missing_route_is_none_and_makes_discovery_ask_again(
    hub: tuple[Hub, HubRoutes, list[float]],
) -> None:
    state, routes, _ = hub
    state.crds = True
    assert routes.served() is True
    state.route = None
    assert routes.get("ml", "llm") is None
    routes.served()
    assert _discoveries(state) == 2


def test_get_and_json_patch_on_the_wire(hub: tuple[Hub, HubRoutes, list[float]]) -> None:
    state, routes, _ = hub
    assert routes.get("ml", "llm") == state.route
    ops = [{"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "llama-us-west"}]
    routes.patch("ml", "llm", ops)
    method, path, content_type, body = state.requests[-1]
    assert (method, path.split("?")[0]) == ("PATCH", ROUTE)
    assert content_type == "application/json-patch+json"
    assert body == ops


def test_errors_carry_the_status_and_the_servers_message(
    hub: tuple[Hub, HubRoutes, list[float]],
) -> None:
    state, routes, _ = hub
    state.deny = True
    with pytest.raises(RouteError) as denied:
        routes.get("ml", "llm")
    assert denied.value.status == 403
    assert 'httproutes "llm" is forbidden' in str(denied.value)


def test_a_hub_that_does_not_answer_is_status_0_and_not_cached() -> None:
    config = client.Configuration()
    config.host = "http://127.0.0.1:9"  # discard port: nothing listens
    api = client.ApiClient(config)
    try:
        routes = HubRoutes(api, timeout_seconds=2)
        for _ in range(2):
            with pytest.raises(RouteError) as down:
                routes.served()
            assert down.value.status == 0
    finally:
        api.close()
