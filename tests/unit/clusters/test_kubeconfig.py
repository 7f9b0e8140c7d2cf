"""A Region's kubeconfig may hold inline credentials only: nothing in it is executed or read.

Each refused kubeconfig names a loopback API server (tests/fakes/apiserver.py) that records
every request: a refused kubeconfig must reach it zero times, and an ``exec`` plugin that would
create a file must leave no file behind. The accepted forms (token, client certificate data)
are shown to work against the same server.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.apiserver import FakeApiServer, kubeconfig
from wattscale.clusters.client import KubeconfigRefusedError, RegionCluster
from wattscale.clusters.kubeconfig import KubeconfigError, inline_kubeconfig

pytestmark = pytest.mark.unit

MARKER = "s3cr3t-MARKER-4b1d"


@pytest.fixture
def api() -> Any:
    with FakeApiServer() as server:
        yield server


def test_an_inline_token_is_sent_to_the_server(api: FakeApiServer) -> None:
    cluster = RegionCluster.from_kubeconfig("us-east", api.kubeconfig({"token": "abc"}))
    assert cluster.check() == "v1.31.0"
    assert api.requests == [("/version/", "Bearer abc")]


def test_an_exec_plugin_is_refused_by_name_and_never_run(
    api: FakeApiServer, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": ["-c", f'touch {ran}; echo \'{{"status": {{"token": "x"}}}}\''],
            "interactiveMode": "Never",
        }
    }
    with pytest.raises(KubeconfigRefusedError) as err:
        RegionCluster.from_kubeconfig("us-east", api.kubeconfig(user))
    assert "users[u].user.exec is refused" in str(err.value)
    assert not ran.exists(), "the exec plugin ran"
    assert api.requests == []


def test_a_token_file_is_refused_and_the_file_never_sent(
    api: FakeApiServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(MARKER)  # stands for the operator's own ServiceAccount token
    with pytest.raises(KubeconfigRefusedError) as err:
        RegionCluster.from_kubeconfig("us-east", api.kubeconfig({"tokenFile": str(token_file)}))
    assert ".user.tokenFile is refused" in str(err.value)
    assert api.requests == []


@pytest.mark.parametrize(
    ("user", "cluster", "field"),
    [
        ({"client-certificate": "/etc/x.crt", "client-key-data": "eA=="}, {}, "client-certificate"),
        ({"client-key": "/etc/x.key"}, {}, "client-key"),
        ({"auth-provider": {"name": "oidc", "config": {}}}, {}, "auth-provider"),
        ({"as": "system:admin", "token": "t"}, {}, "as"),
        ({"token": "t"}, {"certificate-authority": "/var/run/ca.crt"}, "certificate-authority"),
        ({"token": "t"}, {"proxy-url": "http://127.0.0.1:1"}, "proxy-url"),
    ],
)
def test_every_file_path_and_plugin_field_is_refused_by_name(
    api: FakeApiServer, user: dict[str, Any], cluster: dict[str, Any], field: str
) -> None:
    with pytest.raises(KubeconfigRefusedError) as err:
        RegionCluster.from_kubeconfig("us-east", api.kubeconfig(user, **cluster))
    assert f".{field} is refused" in str(err.value)
    assert api.requests == []


def test_a_plugin_under_another_context_refuses_the_whole_kubeconfig() -> None:
    doc = {
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [
            {"name": "u", "user": {"token": "t"}},
            {"name": "evil", "user": {"exec": {"command": "/bin/true"}}},
        ],
        "contexts": [
            {"name": "x", "context": {"cluster": "c", "user": "u"}},
            {"name": "y", "context": {"cluster": "c", "user": "evil"}},
        ],
        "current-context": "x",
    }
    with pytest.raises(KubeconfigError, match=r"users\[evil\]\.user\.exec is refused"):
        inline_kubeconfig(yaml.safe_dump(doc))


def test_only_the_current_context_is_kept() -> None:
    cert = base64.b64encode(b"cert").decode()
    user = {"client-certificate-data": cert, "client-key-data": cert}
    text = kubeconfig("https://127.0.0.1:6443", user, **{"certificate-authority-data": cert})
    out = inline_kubeconfig(text)
    assert [c["name"] for c in out["contexts"]] == ["member"]
    assert out["users"][0]["user"] == user
    assert out["clusters"][0]["cluster"]["certificate-authority-data"] == cert


def test_a_yaml_error_names_the_line_never_the_text() -> None:
    text = f"apiVersion: v1\nusers:\n- name: u\n  user: {{token: {MARKER}: oops}}\n"
    with pytest.raises(KubeconfigRefusedError) as err:
        RegionCluster.from_kubeconfig("us-east", text)
    message = str(err.value)
    assert "not valid YAML (line 4" in message
    assert MARKER not in message
    assert err.value.__cause__ is None  # no chained YAML error to quote the line in a traceback
