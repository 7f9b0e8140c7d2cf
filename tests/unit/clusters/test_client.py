"""A member cluster that does not answer: one quiet, fast, typed failure per call.

The kubeconfig points at a loopback port nobody listens on (the shape of a stopped member
cluster's API server), so nothing outside this process is contacted.
"""

from __future__ import annotations

import logging
import socket

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
