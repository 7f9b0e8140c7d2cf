"""Generate the CRD YAML from the pydantic models (the models are the single source of truth).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 schema. The
translation, step by step:

- ``$ref`` is inlined (structural schemas have no references);
- ``Optional[X]`` (``anyOf: [X, null]``) becomes ``X``: absence is how Kubernetes says "unset";
- a discriminated union (``oneOf`` + ``discriminator``) becomes one object: the discriminator is a
  required enum, every variant's fields are optional properties, and CEL rules say which fields
  each ``type`` requires and which it does not accept;
- ``additionalProperties: false`` is dropped (the API server refuses unknown fields itself, with
  server-side field validation; a map keeps its ``additionalProperties`` schema), titles are
  dropped, ``exclusiveMinimum`` becomes the OpenAPI v3 boolean form;
- every model's :class:`~wattscale.api.base.Rule` objects become ``x-kubernetes-validations``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from wattscale.api.base import Rule
from wattscale.api.common import GROUP, VERSION
from wattscale.api.inference import (
    InferenceDeployment,
    InferenceDeploymentSpec,
    InferenceDeploymentStatus,
)
from wattscale.api.region import Region, RegionSpec, RegionStatus

Schema = dict[str, Any]

_DROP_KEYS = {"title", "discriminator"}


def _inline(node: Any, defs: dict[str, Schema]) -> Any:
    """Replace every $ref with a deep copy of its definition."""
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            target = _inline(copy.deepcopy(defs[name]), defs)
            extra = {k: v for k, v in node.items() if k != "$ref"}
            return {**target, **_inline(extra, defs)}
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _merge_union(variants: list[Schema], discriminator: str) -> Schema:
    """Turn a discriminated union into one structural object with CEL rules."""
    merged: dict[str, Schema] = {}
    kinds: list[str] = []
    owners: dict[str, list[str]] = {}
    rules: list[dict[str, str]] = []
    for variant in variants:
        props = variant["properties"]
        kind = _discriminator_value(props[discriminator])
        kinds.append(kind)
        for name, prop in props.items():
            if name == discriminator:
                continue
            owners.setdefault(name, []).append(kind)
            prop = {k: v for k, v in prop.items() if k != "default"}
            if name in merged and _shape(merged[name]) != _shape(prop):
                raise ValueError(f"union field {name!r} has different shapes across variants")
            merged.setdefault(name, prop)
        for name in variant.get("required", []):
            if name != discriminator:
                rules.append(
                    {
                        "rule": f"self.{discriminator} != '{kind}' || has(self.{name})",
                        "message": f"{discriminator} {kind} requires {name}",
                    }
                )
    for name, used_by in owners.items():
        if len(used_by) < len(kinds):
            allowed = ", ".join(f"'{k}'" for k in used_by)
            rules.append(
                {
                    "rule": f"!has(self.{name}) || self.{discriminator} in [{allowed}]",
                    "message": f"{name} is only valid when {discriminator} is one of {allowed}",
                }
            )
    for variant in variants:
        kind = _discriminator_value(variant["properties"][discriminator])
        for rule in variant.get("x-kubernetes-validations", []):
            rules.append({**rule, "rule": f"self.{discriminator} != '{kind}' || ({rule['rule']})"})
    out: Schema = {
        "type": "object",
        "required": [discriminator],
        "properties": {
            discriminator: {
                "type": "string",
                "enum": kinds,
                "description": "Source kind: " + ", ".join(kinds) + ".",
            },
            **merged,
        },
    }
    if rules:
        out["x-kubernetes-validations"] = rules
    return out


def _discriminator_value(prop: Schema) -> str:
    if "const" in prop:
        return str(prop["const"])
    return str(prop["enum"][0])


def _shape(prop: Schema) -> Any:
    return {k: v for k, v in prop.items() if k not in {"description", "default"}}


def _structural(node: Any) -> Any:
    """Rewrite one inlined pydantic schema node into structural OpenAPI v3."""
    if isinstance(node, list):
        return [_structural(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "oneOf" in node and "discriminator" in node:
        disc = node["discriminator"]["propertyName"]
        merged = _merge_union([_structural(v) for v in node["oneOf"]], disc)
        for key in ("description",):
            if key in node:
                merged[key] = node[key]
        return merged
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {node['anyOf']} structurally")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        if outer.get("default", "x") is None:
            outer.pop("default")
        return _structural({**options[0], **outer})
    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")
    if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
        node.get("exclusiveMinimum"), bool
    ):
        node["minimum"] = node.pop("exclusiveMinimum")
        node["exclusiveMinimum"] = True
    if node.get("default", "x") is None:
        node.pop("default")
    if isinstance(node.get("additionalProperties"), bool):
        node.pop("additionalProperties")  # unknown fields are refused by field validation
    if node.get("format") == "date-time":
        node["type"] = "string"
    out = {k: _structural(v) for k, v in node.items() if k not in _DROP_KEYS}
    if "properties" in out:
        out["type"] = "object"
    return out


def schema_for(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of one pydantic model."""
    raw = model.model_json_schema(mode="validation")
    defs = raw.get("$defs", {})
    return dict(_structural(_inline(raw, defs)))


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    scope: str,
    description: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    rules: tuple[Rule, ...] = (),
) -> Schema:
    root: Schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "wattscale.io/v1alpha1"},
            "kind": {"type": "string", "description": kind},
            "metadata": {"type": "object"},
            "spec": schema_for(spec),
            "status": schema_for(status),
        },
    }
    if rules:
        # Root rules may read metadata.name: how the API server refuses names wattscale can't use.
        root["x-kubernetes-validations"] = [r.to_cel() for r in rules if r.cel is not None]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "wattscale"},
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": ["wattscale"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crds() -> dict[str, Schema]:
    """Every CRD, keyed by the file name it is written to."""
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    return {
        "wattscale.io_inferencedeployments.yaml": _crd(
            kind="InferenceDeployment",
            plural="inferencedeployments",
            singular="inferencedeployment",
            short_names=["infd"],
            scope="Namespaced",
            description="A model served by vLLM under a latency SLO, placed where energy "
            "costs least.",
            spec=InferenceDeploymentSpec,
            status=InferenceDeploymentStatus,
            rules=InferenceDeployment.cel_rules,
            columns=[
                {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
                {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
                {"name": "Regions", "type": "string", "jsonPath": ".status.regionsSummary"},
                {"name": "Cost/h", "type": "string", "jsonPath": ".status.costPerHour"},
                {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "priority": 1},
                {
                    "name": "Reason",
                    "type": "string",
                    "jsonPath": ".status.lastDecision.reason",
                    "priority": 1,
                },
                age,
            ],
        ),
        "wattscale.io_regions.yaml": _crd(
            kind="Region",
            plural="regions",
            singular="region",
            short_names=["wsregion"],
            scope="Cluster",
            description="A cluster in one grid region, with its energy feeds and GPU economics.",
            spec=RegionSpec,
            status=RegionStatus,
            rules=Region.cel_rules,
            columns=[
                {"name": "Currency", "type": "string", "jsonPath": ".spec.energy.currency"},
                {"name": "Price/kWh", "type": "string", "jsonPath": ".status.pricePerKwh"},
                {"name": "gCO2/kWh", "type": "integer", "jsonPath": ".status.carbonGramsPerKwh"},
                {"name": "Reachable", "type": "boolean", "jsonPath": ".status.reachable"},
                age,
            ],
        ),
    }


def render(doc: Schema) -> str:
    header = "# Generated by `wattscale crds` from operator/wattscale/api. Do not edit.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def write_crds(output_dir: Path) -> Iterable[Path]:
    """Write every CRD as YAML into ``output_dir``; return the paths written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in crds().items():
        path = output_dir / name
        path.write_text(render(doc), encoding="utf-8")
        written.append(path)
    return written
