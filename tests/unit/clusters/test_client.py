"""A member cluster that does not answer: one quiet, fast, typed failure per call.

The kubeconfig points at a loopback port nobody listens on (the shape of a stopped member
cluster's API server), so nothing outside this process is contacted.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from wattscale.clusters.client import ClusterUnreachableError, RegionCluster

pytestmark = pytest.mark.unit


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _kubeconfig(server: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def test_a_stopped_member_fails_once_per_call_with_the_root_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = RegionCluster.from_kubeconfig(
        "us-east", _kubeconfig(f"http://127.0.0.1:{_closed_port()}")
    )
    caplog.set_level(logging.DEBUG, logger="urllib3")
    for _ in range(3):  # three passes of the control loop
        with pytest.raises(ClusterUnreachableError) as err:
            cluster.state("llama-vllm", "ml-serving")
        message = str(err.value)
        assert message.startswith("region us-east: read deployment: ")
        assert "Connection refused" in message
        assert "Max retries" not in message
    retries = [r.getMessage() for r in caplog.records if "Retrying" in r.getMessage()]
    assert retries == [], "a dead member must not log a warning per retry, every pass"


class _SlowNotFound(BaseHTTPRequestHandler):
    """Answers every GET with a 404 Status after a short wait, on HTTP/1.1 keep-alive, so
    that concurrent calls hold their connections at the same time."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(0.2)
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "code": 404}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_concurrent_passes_share_a_cluster_without_discarding_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kopf runs up to 16 handler threads, each of which may call the same member at once;
    urllib3's default pool (5 per CPU) discarded connections with a warning per call at 200
    deployments."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowNotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cluster = RegionCluster.from_kubeconfig(
            "us-east", _kubeconfig(f"http://127.0.0.1:{server.server_address[1]}")
        )
        caplog.set_level(logging.WARNING, logger="urllib3")
        with ThreadPoolExecutor(max_workers=24) as pool:
            states = list(pool.map(lambda _: cluster.state("llama-vllm", "ml-serving"), range(48)))
    finally:
        server.shutdown()
        server.server_close()
    assert [s.exists for s in states] == [False] * 48
    full = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert full == []
