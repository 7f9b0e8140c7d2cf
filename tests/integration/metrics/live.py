"""Helpers for the live metrics tests: emulated deployments scraped by a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.prometheus import PrometheusServer, http_sd_config
from tests.fakes.vllm_emulator import Emulator, EmulatorServer
from wattscale.metrics import DeploymentTarget, MetricsConfig, MetricsReader

SCRAPE_SECONDS = 1.0
WINDOW_SECONDS = 5


def reader_config(**overrides: object) -> MetricsConfig:
    """The reader config for 1-s scrapes: 5-s windows, short staleness and timeouts."""
    base: dict[str, object] = {
        "rate_window_seconds": WINDOW_SECONDS,
        "stale_after_seconds": 10.0,
        "query_timeout_seconds": 3.0,
    }
    base.update(overrides)
    return MetricsConfig.model_validate(base)


@dataclass
class Deployment:
    """One emulated deployment behind an HTTP server."""

    emulator: Emulator
    server: EmulatorServer

    @property
    def target(self) -> DeploymentTarget:
        return DeploymentTarget(self.emulator.namespace, self.emulator.deployment)

    def selector(self) -> str:
        """Its pods' series (an empty variant matches the first variant's unlabelled pods)."""
        e = self.emulator
        return (
            f'namespace="{e.namespace}",wattscale_io_deployment="{e.deployment}",'
            f'wattscale_io_variant="{e.variant}"'
        )


@dataclass
class Stack:
    """Emulated deployments and the Prometheus scraping them."""

    prometheus: PrometheusServer
    deployments: dict[str, Deployment]

    def reader(self, **overrides: object) -> MetricsReader:
        return MetricsReader(self.prometheus.url, reader_config(**overrides), region="test")

    def wait_for_pods(self, name: str, pods: int, timeout_seconds: float = 20.0) -> None:
        """Wait until Prometheus scrapes exactly ``pods`` healthy pods of the deployment."""
        sel = self.deployments[name].selector()
        self.prometheus.wait_for(
            f"count(up{{{sel}}} == 1) == {pods}", timeout_seconds=timeout_seconds
        )

    def wait_for_window(self, name: str) -> None:
        """Wait until every pod has a full rate window of samples."""
        sel = self.deployments[name].selector()
        self.prometheus.wait_for(
            f"min(count_over_time(vllm:num_requests_running{{{sel}}}[{WINDOW_SECONDS}s]))"
            f" >= {WINDOW_SECONDS}",
            timeout_seconds=30.0,
        )


def start_stack(emulators: dict[str, Emulator]) -> tuple[Stack, Callable[[], None]]:
    """Serve each emulator, start a Prometheus discovering them all; returns (stack, stop)."""
    servers = {
        name: Deployment(emu, EmulatorServer(emu).start()) for name, emu in emulators.items()
    }
    scrape = [
        http_sd_config(
            f"http://{d.server.address}/sd", job=f"sd-{name}", interval_seconds=SCRAPE_SECONDS
        )
        for name, d in servers.items()
    ]
    try:
        prom = PrometheusServer(scrape, scrape_interval_seconds=SCRAPE_SECONDS).start()
    except BaseException:
        for d in servers.values():
            d.server.stop()
        raise

    def stop() -> None:
        prom.cleanup()
        for d in servers.values():
            d.server.stop()

    return Stack(prom, servers), stop


def settle(seconds: float) -> None:
    """Sleep (named so the intent is visible in tests)."""
    time.sleep(seconds)
