"""Run a real Prometheus server (Debian's ``prometheus``) on 127.0.0.1 for integration tests.

:class:`PrometheusServer` writes a generated config, starts ``prometheus`` with a temporary
TSDB directory on a free loopback port, waits for ``/-/ready``, and stops it by PID (SIGTERM,
then SIGKILL). If the binary is not on PATH (or ``$PROMETHEUS_BIN``), :func:`prometheus_binary`
raises :class:`PrometheusNotInstalledError` with the install instructions: integration fixtures
must fail with that message, never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "Debian's `prometheus` is not on PATH (nor $PROMETHEUS_BIN). Install it without starting a "
    "daemon: printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x "
    "/usr/sbin/policy-rc.d && apt-get install -y --no-install-recommends prometheus && "
    "rm -f /usr/sbin/policy-rc.d   (CI: hack/ensure-prometheus.sh)"
)


class PrometheusNotInstalledError(RuntimeError):
    """The prometheus binary is missing."""


def prometheus_binary() -> str:
    """Path of the prometheus binary, or raise with install instructions."""
    env = os.environ.get("PROMETHEUS_BIN")
    if env and Path(env).is_file():
        return env
    found = shutil.which("prometheus")
    if not found:
        raise PrometheusNotInstalledError(INSTALL_HINT)
    return found


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def duration(seconds: float) -> str:
    """A Prometheus duration string (whole milliseconds: "0.8s" is not valid, "800ms" is)."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def http_sd_config(
    sd_url: str, job: str = "emulated", interval_seconds: float = 1.0
) -> dict[str, Any]:
    """A scrape config discovering targets through Prometheus HTTP SD at ``sd_url``.

    The SD target labels (``job``, ``namespace``, ``pod``, ...) are kept as they are, which is
    what a Kubernetes pod-SD config with ``labelmap`` would produce.
    """
    return {
        "job_name": job,
        "scrape_interval": duration(interval_seconds),
        "scrape_timeout": duration(max(0.5, interval_seconds * 0.8)),
        "http_sd_configs": [{"url": sd_url, "refresh_interval": duration(interval_seconds)}],
    }


class PrometheusServer:
    """A throw-away Prometheus on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        scrape_configs: list[dict[str, Any]],
        *,
        scrape_interval_seconds: float = 1.0,
        port: int | None = None,
        lookback_delta_seconds: float | None = None,
    ) -> None:
        self.binary = prometheus_binary()
        self.port = port or free_port()
        self.scrape_configs = scrape_configs
        self.scrape_interval_seconds = scrape_interval_seconds
        self.lookback_delta_seconds = lookback_delta_seconds
        self.workdir = Path(tempfile.mkdtemp(prefix="wattscale-prom-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        interval = duration(self.scrape_interval_seconds)
        cfg = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": self.scrape_configs,
        }
        path = self.workdir / "prometheus.yml"
        # JSON is YAML: no YAML dependency needed here.
        path.write_text(json.dumps(cfg, indent=2))
        return path

    def start(self, timeout_seconds: float = 20.0) -> PrometheusServer:
        config = self._write_config()
        args = [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        if self.lookback_delta_seconds is not None:
            args.append(f"--query.lookback-delta={duration(self.lookback_delta_seconds)}")
        log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready in {timeout_seconds}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """A raw instant query (for test set-up and waiting, not for the code under test)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self, promql: str, predicate: Any = None, timeout_seconds: float = 20.0
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns a non-empty result (satisfying ``predicate``)."""
        deadline = time.monotonic() + timeout_seconds
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                last = self.query(promql)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                last = []
            if last and (predicate is None or predicate(last)):
                return last
            time.sleep(0.25)
        raise TimeoutError(f"{promql!r} not satisfied after {timeout_seconds}s (last {last})")

    def stop(self) -> None:
        """Stop by PID: SIGTERM, then SIGKILL after 10 s. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
