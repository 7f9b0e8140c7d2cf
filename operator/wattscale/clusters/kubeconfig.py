"""Check a member cluster's kubeconfig before any of it is used: inline credentials only.

A kubeconfig is code as much as data: ``exec`` runs a program, ``auth-provider`` runs plugins,
and ``tokenFile``, ``client-certificate``, ``client-key`` and ``certificate-authority`` name
files. In a Region's Secret such fields would make the operator run commands or read its own
files (its ServiceAccount token, say) and send them to whatever server the kubeconfig names.
So every cluster, user and context is checked against a short list of inline fields, and the
first field outside it is refused by name; nothing in a refused kubeconfig is executed or read.

Messages never quote the kubeconfig: a YAML error is reported by line and column only (PyYAML's
own message prints the offending line, which may well be the token).
"""

from __future__ import annotations

from typing import Any

import yaml

CLUSTER_FIELDS = frozenset(
    {
        "server",
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
        "disable-compression",
        "extensions",
    }
)
"""What a cluster entry may hold: no ``certificate-authority`` (a file) nor ``proxy-url``."""

USER_FIELDS = frozenset(
    {"token", "client-certificate-data", "client-key-data", "username", "password", "extensions"}
)
"""What a user entry may hold: inline credentials. No ``exec``, ``auth-provider``,
``tokenFile``, ``client-certificate``/``client-key`` (files) or impersonation."""

CONTEXT_FIELDS = frozenset({"cluster", "user", "namespace", "extensions"})

TOP_LEVEL_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "clusters",
        "users",
        "contexts",
        "current-context",
        "preferences",
        "extensions",
    }
)


class KubeconfigError(ValueError):
    """The kubeconfig is unusable or asks for something other than inline credentials."""


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise KubeconfigError(f"kubeconfig is not valid YAML{where}") from None
    except yaml.YAMLError:
        raise KubeconfigError("kubeconfig is not valid YAML") from None


def _entries(doc: dict[str, Any], key: str, inner: str) -> dict[str, dict[str, Any]]:
    """``clusters``/``users``/``contexts`` as name -> body, refusing malformed lists."""
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise KubeconfigError(f"kubeconfig {key} must be a list")
    out: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise KubeconfigError(f"kubeconfig {key}[{i}] needs a name")
        body = item.get(inner) or {}
        if not isinstance(body, dict):
            raise KubeconfigError(f"kubeconfig {key}[{i}].{inner} must be a mapping")
        out[item["name"]] = body
    return out


def _check_fields(
    entries: dict[str, dict[str, Any]], key: str, inner: str, allowed: frozenset[str]
) -> None:
    for name, body in entries.items():
        for field in sorted(body, key=str):
            if field not in allowed:
                raise KubeconfigError(
                    f"kubeconfig {key}[{name!s:.63}].{inner}.{field!s:.40} is refused: only inline "
                    "credentials (token, client-certificate-data/client-key-data, "
                    "certificate-authority-data) are accepted; nothing is executed or read "
                    "from files"
                )


def inline_kubeconfig(text: str) -> dict[str, Any]:
    """The kubeconfig for the current context only, checked; raise :class:`KubeconfigError`.

    Every entry is checked (not just the current context's), so a kubeconfig that could run
    something under another context is refused as a whole.
    """
    doc = _yaml(text)
    if not isinstance(doc, dict):
        raise KubeconfigError("kubeconfig must be a YAML mapping")
    for field in sorted(doc, key=str):
        if field not in TOP_LEVEL_FIELDS:
            raise KubeconfigError(f"kubeconfig field {field!s:.40} is refused")
    clusters = _entries(doc, "clusters", "cluster")
    users = _entries(doc, "users", "user")
    contexts = _entries(doc, "contexts", "context")
    _check_fields(clusters, "clusters", "cluster", CLUSTER_FIELDS)
    _check_fields(users, "users", "user", USER_FIELDS)
    _check_fields(contexts, "contexts", "context", CONTEXT_FIELDS)
    current = doc.get("current-context")
    if not current and len(contexts) == 1:
        current = next(iter(contexts))
    if not isinstance(current, str) or current not in contexts:
        raise KubeconfigError("kubeconfig has no current-context naming one of its contexts")
    context = contexts[current]
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if cluster_name not in clusters:
        raise KubeconfigError(f"kubeconfig context {current!r} names no known cluster")
    if not isinstance(clusters[cluster_name].get("server"), str):
        raise KubeconfigError(f"kubeconfig cluster {cluster_name!r} has no server")
    user: dict[str, Any] = {}
    if user_name is not None:
        if user_name not in users:
            raise KubeconfigError(f"kubeconfig context {current!r} names no known user")
        user = users[user_name]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "member", "cluster": dict(clusters[cluster_name])}],
        "users": [{"name": "member", "user": dict(user)}],
        "contexts": [{"name": "member", "context": {"cluster": "member", "user": "member"}}],
        "current-context": "member",
    }
