"""Object names: what the API server checks in metadata, and what wattscale needs on top.

The API server refuses a custom object whose ``metadata.name`` is not an RFC 1123 subdomain; its
words are repeated here so that ``wattscale validate`` says the same. wattscale needs more than
that, and says so in root CEL rules (the API server lets those read ``metadata.name``):

- an InferenceDeployment's name becomes a label value and the name of a Service in every member
  cluster, so it must be an RFC 1035 label of at most 63 characters;
- a Region's name is what ``placement.regions`` lists, an RFC 1123 label of at most 63.
"""

from __future__ import annotations

import re
from typing import Any

from wattscale.api.base import Rule
from wattscale.api.common import NAME_PATTERN

SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SUBDOMAIN_WORDS = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
DNS1035_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def _name(obj: Any) -> str:
    return str((obj.metadata or {}).get("name") or "")


def _fits(name: str, pattern: str) -> bool:
    """A name that is missing or no subdomain is metadata_problems' to report; others must fit."""
    if not name or len(name) > 253 or not SUBDOMAIN_RE.fullmatch(name):
        return True
    return len(name) <= 63 and re.fullmatch(pattern, name) is not None


def metadata_problems(metadata: Any) -> list[str]:
    """What the API server itself would say about ``metadata`` (name and namespace)."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        return []  # the model says "metadata: must be an object with fields"
    name, generate = metadata.get("name"), metadata.get("generateName")
    problems = []
    if not name and not generate:
        problems.append("metadata.name: Required value: name or generateName is required")
    elif name is not None:
        text = str(name)
        if len(text) > 253:
            problems.append("metadata.name: Invalid value: must be no more than 253 characters")
        elif not SUBDOMAIN_RE.fullmatch(text):
            problems.append(f"metadata.name: Invalid value: {text[:64]!r}: {SUBDOMAIN_WORDS}")
    namespace = metadata.get("namespace")
    if namespace is not None and not (
        isinstance(namespace, str)
        and len(namespace) <= 63
        and re.fullmatch(NAME_PATTERN, namespace)
    ):
        problems.append(
            f"metadata.namespace: Invalid value: {str(namespace)[:64]!r}: a lowercase RFC 1123 "
            "label must consist of lower case alphanumeric characters or '-', and must start and "
            "end with an alphanumeric character"
        )
    return problems


INFERENCE_NAME_RULE = Rule(
    cel=f"size(self.metadata.name) <= 63 && self.metadata.name.matches('{DNS1035_PATTERN}')",
    check=lambda m: _fits(_name(m), DNS1035_PATTERN),
    message="metadata.name: an InferenceDeployment name must be at most 63 characters of a-z, "
    "0-9 and '-', starting with a letter (it names a Service and is a label value)",
)
REGION_NAME_RULE = Rule(
    cel=f"size(self.metadata.name) <= 63 && self.metadata.name.matches('{NAME_PATTERN}')",
    check=lambda m: _fits(_name(m), NAME_PATTERN),
    message="metadata.name: a Region name must be at most 63 characters of a-z, 0-9 and '-', "
    "starting and ending with a letter or digit (placement.regions refers to it)",
)
