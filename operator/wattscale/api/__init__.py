"""The API: pydantic models that are the single source of truth for the CRDs, and the CRD generator.

Two kinds in group ``wattscale.io/v1alpha1``: :class:`InferenceDeployment` (namespaced, written by
an ML team) and :class:`Region` (cluster-scoped, written by the platform team).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from wattscale.api.common import API_VERSION, GROUP, VERSION
from wattscale.api.errors import format_errors
from wattscale.api.inference import InferenceDeployment, InferenceDeploymentSpec
from wattscale.api.names import metadata_problems
from wattscale.api.region import Region, RegionSpec

KINDS: dict[str, type[InferenceDeployment] | type[Region]] = {
    "InferenceDeployment": InferenceDeployment,
    "Region": Region,
}


class InvalidObjectError(ValueError):
    """An object that does not fit the API; ``problems`` holds one readable line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_object(doc: Any) -> InferenceDeployment | Region:
    """Validate one YAML/JSON document as a wattscale object, with readable errors."""
    if not isinstance(doc, dict):
        raise InvalidObjectError(["the document must be a mapping with apiVersion, kind and spec"])
    if doc.get("apiVersion") != API_VERSION:
        raise InvalidObjectError(
            [f"apiVersion: must be {API_VERSION} (got {doc.get('apiVersion')!r})"]
        )
    kind = doc.get("kind")
    model = KINDS.get(str(kind))
    if model is None:
        raise InvalidObjectError([f"kind: must be one of {sorted(KINDS)} (got {kind!r})"])
    problems = metadata_problems(doc.get("metadata"))
    try:
        obj = model.model_validate(doc)
    except ValidationError as err:
        raise InvalidObjectError(problems + format_errors(err)) from None
    except RecursionError:
        raise InvalidObjectError([*problems, "the document is nested too deeply"]) from None
    if problems:
        raise InvalidObjectError(problems)
    return obj


__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "InferenceDeployment",
    "InferenceDeploymentSpec",
    "InvalidObjectError",
    "Region",
    "RegionSpec",
    "format_errors",
    "parse_object",
]
