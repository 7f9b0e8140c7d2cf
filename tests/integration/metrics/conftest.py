"""Fixtures: the vLLM/DCGM emulator served on loopback, scraped by a real Debian Prometheus.

If ``prometheus`` is not installed these fixtures FAIL with the install command; they never
skip. Scrape interval 1 s, rate window 5 s, so each test waits only a few seconds for data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakes.prometheus import PrometheusNotInstalledError, prometheus_binary
from tests.fakes.vllm_emulator import ConstantLoad, Emulator
from tests.integration.metrics.live import Stack, start_stack


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """The prometheus binary; FAILS (never skips) when it is not installed."""
    try:
        return prometheus_binary()
    except PrometheusNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def shared_stack(prometheus_bin: str) -> Iterator[Stack]:
    """Three deployments that tests only read: steady (2 pods, 2,000 output tok/s, evenly
    spaced arrivals), legacy (older vLLM names) and idle (a pod with no traffic)."""
    stack, stop = start_stack(
        {
            "steady": Emulator(
                ConstantLoad(2000.0, prompt_tokens=1000, output_tokens=200),
                replicas=2,
                namespace="team-a",
                deployment="llama",
                poisson=False,
                keep_logs=True,
                seed=1,
            ),
            "legacy": Emulator(
                ConstantLoad(800.0),
                replicas=1,
                namespace="team-b",
                deployment="mistral",
                legacy_names=True,
                poisson=False,
                seed=2,
            ),
            "idle": Emulator(
                ConstantLoad(0.0), replicas=1, namespace="team-c", deployment="qwen", seed=3
            ),
        }
    )
    try:
        for name, pods in (("steady", 2), ("legacy", 1), ("idle", 1)):
            stack.wait_for_pods(name, pods)
        for name in ("steady", "legacy", "idle"):
            stack.wait_for_window(name)
        # A request decodes for ~5 s: let the batch fill, then let a whole window (and the
        # demand-history test's few seconds of windows) see only the steady state.
        steady = stack.deployments["steady"].emulator
        while steady.now < 16.0:
            time.sleep(0.2)
        yield stack
    finally:
        stop()


@pytest.fixture
def own_stack(prometheus_bin: str) -> Iterator[Callable[[dict[str, Emulator]], Stack]]:
    """A fresh Prometheus + emulators for a test that disturbs them (kills, stops)."""
    stops: list[Callable[[], None]] = []

    def make(emulators: dict[str, Emulator]) -> Stack:
        stack, stop = start_stack(emulators)
        stops.append(stop)
        return stack

    yield make
    for stop in stops:
        stop()
