"""An emulated Gateway API inference extension endpoint picker (EPP): its ``/metrics`` only.

What scale to zero reads while no replica runs: the EPP's flow-control queue size per
InferencePool (``inference_extension_flow_control_queue_size``) and its request errors per model
(``inference_objective_request_error_total``), with the EPP's metric names and labels
(gateway-api-inference-extension, site-src/guides/metrics-and-observability.md). A test sets
how many requests wait; a real Prometheus scrapes it. Test code only, never the product path.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GatewayEmulator:
    """The EPP of one InferencePool serving one model; thread-safe setters."""

    def __init__(self, pool: str, model: str) -> None:
        self.pool = pool
        self.model = model
        self._lock = threading.Lock()
        self._waiting = 0
        self._errors = 0

    def set_waiting(self, requests: int) -> None:
        """Requests the flow-control layer holds now (no endpoint can take them)."""
        with self._lock:
            self._waiting = max(0, requests)

    def fail(self, requests: int) -> None:
        """Requests the EPP failed (e.g. no endpoint to pick, without flow control)."""
        with self._lock:
            self._errors += max(0, requests)

    def exposition(self) -> str:
        """The Prometheus text exposition of the two families."""
        with self._lock:
            waiting, errors = self._waiting, self._errors
        flow = (
            f'fairness_id="default",priority="0",inference_pool="{self.pool}",'
            f'model_name="{self.model}",target_model_name="{self.model}"'
        )
        model = f'model_name="{self.model}",target_model_name="{self.model}"'
        return (
            "# HELP inference_extension_flow_control_queue_size Requests in the flow control "
            "layer.\n"
            "# TYPE inference_extension_flow_control_queue_size gauge\n"
            f"inference_extension_flow_control_queue_size{{{flow}}} {waiting}\n"
            "# HELP inference_objective_request_error_total Request errors per model.\n"
            "# TYPE inference_objective_request_error_total counter\n"
            f'inference_objective_request_error_total{{{model},error_code="ServiceUnavailable"}}'
            f" {errors}\n"
        )


class GatewayServer:
    """Serves a :class:`GatewayEmulator`'s ``/metrics`` on 127.0.0.1."""

    def __init__(self, gateway: GatewayEmulator, port: int = 0) -> None:
        self.gateway = gateway
        emulator = gateway

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = emulator.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def scrape_config(self, interval_seconds: float = 1.0) -> dict[str, Any]:
        """A Prometheus scrape config for this EPP."""
        return {
            "job_name": "epp",
            "scrape_interval": f"{round(interval_seconds * 1000)}ms",
            "scrape_timeout": f"{round(interval_seconds * 800)}ms",
            "static_configs": [{"targets": [self.address]}],
        }

    def start(self) -> GatewayServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
