"""A loopback stand-in for a member cluster's API server that answers ``GET /version`` only.

It records every request's path and ``Authorization`` header, so a test can tell which
credentials a kubeconfig made the operator send (or that nothing was sent at all). Everything
else answers 404, as a real API server does for an unknown path.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import yaml

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T07:28:49Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def kubeconfig(server: str, user: dict[str, Any] | None = None, **cluster: Any) -> str:
    """A one-context kubeconfig for ``server`` with the given user entry (a token by default)."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
            "users": [{"name": "u", "user": user if user is not None else {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


class FakeApiServer:
    """``with FakeApiServer() as api:`` serves on ``api.url``; ``api.requests`` is what came."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append((self.path, self.headers.get("Authorization")))
                found = self.path.split("?")[0].rstrip("/") == "/version"
                body = json.dumps(VERSION if found else {"kind": "Status", "code": 404}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def kubeconfig(self, user: dict[str, Any] | None = None, **cluster: Any) -> str:
        """A kubeconfig for this server with the given user entry (a token by default)."""
        return kubeconfig(self.url, user, **cluster)

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
