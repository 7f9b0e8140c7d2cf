"""In-process reads of the stack's API servers, for the e2e suite's polling.

The suite polls a lot: a wait re-reads an object every second or two, and the emulated load
balancer (``operator_world.World``) reads every region's Deployments twice a second. Through
``kubectl`` each read is a Go process that parses its kubeconfig and discovery cache and makes a
new TLS connection: about 0.15 CPU-seconds, which on a 2-core machine made kubectl 64 % of all
the CPU ``test_operator.py`` used (1,152 calls, 170 CPU-seconds in a 4-minute run), CPU the
operator and the clusters under test then did not get on a busy machine. Here a read is one
HTTP request on a kept-alive connection of the ``kubernetes`` client.

:class:`ApiReader` answers ``kubectl get TYPE [NAME] [-n NS | -A] [-l SELECTOR] -o json`` the
way kubectl does (the same JSON; a list is a ``List`` whose items carry ``apiVersion`` and
``kind``; a failure raises :class:`ReadError` with the server's words); :func:`parse_get` says
whether a kubectl argument list is of that form, so :meth:`stack.Stack.get_json` can leave
everything else to kubectl.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client, config

_NO_VALUE_FLAGS = {"-A": "all_namespaces", "--all-namespaces": "all_namespaces"}
_VALUE_FLAGS = {
    "-n": "namespace",
    "--namespace": "namespace",
    "-l": "selector",
    "--selector": "selector",
}


class ReadError(RuntimeError):
    """The read failed: the object or type is not there, or the server did not answer."""


@dataclass(frozen=True)
class GetQuery:
    """One ``kubectl get`` of a single resource type: at most one name, a namespace or all."""

    resource: str
    name: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    selector: str | None = None


def parse_get(args: tuple[str, ...]) -> GetQuery | None:
    """The query of ``kubectl get ARGS`` if ApiReader can answer it, else None (for kubectl)."""
    words: list[str] = []
    fields: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if arg in _NO_VALUE_FLAGS:
            fields[_NO_VALUE_FLAGS[arg]] = True
        elif flag in _VALUE_FLAGS and eq:
            fields[_VALUE_FLAGS[flag]] = value
        elif arg in _VALUE_FLAGS and i + 1 < len(args):
            fields[_VALUE_FLAGS[arg]] = args[i + 1]
            i += 1
        elif arg.startswith("-"):
            return None  # any other flag: kubectl's business
        else:
            words.append(arg)
        i += 1
    if len(words) == 1 and words[0].count("/") == 1:
        words = words[0].split("/")
    if not 1 <= len(words) <= 2 or "," in words[0]:
        return None
    return GetQuery(words[0], words[1] if len(words) == 2 else None, **fields)


@dataclass(frozen=True)
class _Type:
    path: str  # "/api/v1", "/apis/apps/v1"
    group_version: str
    plural: str
    kind: str
    namespaced: bool


class ApiReader:
    """Reads one cluster's API with the credentials of one kubeconfig (thread-safe)."""

    def __init__(self, kubeconfig: Path) -> None:
        self._api = config.new_client_from_config(config_file=str(kubeconfig))
        self._types: dict[str, _Type] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connections kept alive (the kubeconfig was rewritten: a new reader reads)."""
        self._api.close()

    def get(self, q: GetQuery, timeout: float) -> dict[str, Any]:
        """What ``kubectl get ... -o json`` prints for ``q``, parsed."""
        t = self._type(q.resource, timeout)
        base = t.path
        if t.namespaced and not q.all_namespaces:
            base += f"/namespaces/{quote(q.namespace or 'default', safe='')}"
        base += f"/{t.plural}"
        if q.name is not None:
            return self._get(f"{base}/{quote(q.name, safe='')}", {}, timeout)
        listed = self._get(base, {"labelSelector": q.selector} if q.selector else {}, timeout)
        items = [{"apiVersion": t.group_version, "kind": t.kind, **i} for i in listed["items"]]
        return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {}}

    def _type(self, resource: str, timeout: float) -> _Type:
        """The API type kubectl would take ``resource`` for (plural, singular, short name,
        plural.group or singular.group; the core group first, then the server's group order);
        one discovery of the server when a name is not known yet (a CRD applied since)."""
        with self._lock:
            if resource not in self._types:
                self._types = self._discover(timeout)
            found = self._types.get(resource)
        if found is None:
            raise ReadError(f'the server doesn\'t have a resource type "{resource}"')
        return found

    def _discover(self, timeout: float) -> dict[str, _Type]:
        types: dict[str, _Type] = {}
        versions = ["v1"] + [
            g["preferredVersion"]["groupVersion"] for g in self._get("/apis", {}, timeout)["groups"]
        ]
        for gv in versions:
            path = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            group = gv.rpartition("/")[0]
            for r in self._get(path, {}, timeout).get("resources", []):
                if "/" in r["name"]:
                    continue  # a subresource (status, scale, ...)
                t = _Type(path, gv, r["name"], r["kind"], r["namespaced"])
                singular = r.get("singularName") or r["kind"].lower()
                names = [r["name"], singular, *(r.get("shortNames") or [])]
                if group:  # as `kubectl get -o name` prints it: kind.group/name
                    names += [f"{r['name']}.{group}", f"{singular}.{group}"]
                for name in filter(None, names):
                    types.setdefault(name, t)
        return types

    def _get(self, path: str, query: dict[str, str], timeout: float) -> dict[str, Any]:
        try:
            method, url, headers, _, _ = self._api.param_serialize(
                "GET",
                path,
                query_params=list(query.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            resp = self._api.call_api(method, url, header_params=headers, _request_timeout=timeout)
            resp.read()
        except client.ApiException as exc:
            raise ReadError(f"GET {path}: {exc.status} {_message(exc.body)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ReadError(f"GET {path}: {type(exc).__name__}: {exc}") from None
        if not 200 <= resp.status < 300:
            raise ReadError(f"GET {path}: {resp.status} {_message(resp.data)}")
        try:
            doc: dict[str, Any] = json.loads(resp.data)
        except ValueError as exc:
            raise ReadError(f"GET {path}: not JSON: {exc}") from None
        return doc


def _message(body: Any) -> str:
    """The Status message of an error response (what kubectl prints), else the body."""
    try:
        return str(json.loads(body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(body)[:300]
