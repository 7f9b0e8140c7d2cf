"""Malformed wattscale objects, each with the problem a person must be told about.

The unit suite checks each against the pydantic models (the exact line); the e2e suite applies
each to a real API server and checks the server's message contains ``server_says``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(kind: str) -> dict[str, Any]:
    """A deep copy of the first example document of ``kind``."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind:
                return copy.deepcopy(doc)
    raise LookupError(kind)


def _edit(kind: str, path: str, value: Any, *, delete: bool = False) -> dict[str, Any]:
    doc = example(kind)
    node: Any = doc
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    elif delete:
        del node[last]
    else:
        node[last] = value
    return doc


@dataclass(frozen=True)
class Case:
    name: str
    doc: dict[str, Any]
    problem: str  # the exact line `wattscale validate` prints (after "<file>#<n>: ")
    server_says: str  # a substring of the API server's refusal


INF = "InferenceDeployment"
REG = "Region"

CASES: list[Case] = [
    Case(
        "max_below_min",
        _edit(INF, "spec.slo.maxReplicas", 0),
        "spec.slo.maxReplicas: must be >= 1 (got 0)",
        "spec.slo.maxReplicas: Invalid value: 0",
    ),
    Case(
        "min_above_max",
        _edit(INF, "spec.slo.minReplicas", 20),
        "spec.slo.maxReplicas: must be >= minReplicas (got 12 < 20)",
        "spec.slo.maxReplicas: Invalid value: must be >= minReplicas",
    ),
    Case(
        "empty_model",
        _edit(INF, "spec.model", ""),
        "spec.model: must not be empty",
        'spec.model: Invalid value: ""',
    ),
    Case(
        "missing_model",
        _edit(INF, "spec.model", None, delete=True),
        "spec.model: required field is missing",
        "spec.model: Required value",
    ),
    Case(
        "ttft_wrong_type",
        _edit(INF, "spec.slo.ttftP95Ms", "fast"),
        "spec.slo.ttftP95Ms: must be an integer (got 'fast')",
        'spec.slo.ttftP95Ms: Invalid value: "string"',
    ),
    Case(
        "unknown_objective",
        _edit(INF, "spec.placement.objective", "cheapest"),
        "spec.placement.objective: must be one of 'cost', 'carbon' or 'balanced' (got 'cheapest')",
        'spec.placement.objective: Unsupported value: "cheapest"',
    ),
    Case(
        "no_regions",
        _edit(INF, "spec.placement.regions", []),
        "spec.placement.regions: must have at least one item",
        "spec.placement.regions: Invalid value: 0",
    ),
    Case(
        "home_region_not_allowed",
        _edit(INF, "spec.placement.homeRegion", "ap-south"),
        "spec.placement.homeRegion: homeRegion must be one of regions",
        "homeRegion must be one of regions",
    ),
    Case(
        "balanced_without_carbon_price",
        _edit(INF, "spec.placement.carbonPricePerTonne", None, delete=True),
        "spec.placement.carbonPricePerTonne: objective balanced needs carbonPricePerTonne",
        "objective balanced needs carbonPricePerTonne",
    ),
    Case(
        "min_regions_above_regions",
        _edit(INF, "spec.slo.minRegions", 3),
        "spec.slo.minRegions: slo.minRegions must be <= the number of placement.regions",
        "slo.minRegions must be <= the number of placement.regions",
    ),
    Case(
        "unknown_mode",
        _edit(INF, "spec.mode", "Off"),
        "spec.mode: must be one of 'Active', 'DryRun' or 'Paused' (got 'Off')",
        'spec.mode: Unsupported value: "Off"',
    ),
    Case(
        "negative_idle_watts",
        _edit(REG, "spec.gpus.0.idleWatts", -5),
        "spec.gpus[0].idleWatts: must be >= 0 (got -5)",
        "spec.gpus[0].idleWatts: Invalid value: -5",
    ),
    Case(
        "idle_above_max_watts",
        _edit(REG, "spec.gpus.0.idleWatts", 900),
        "spec.gpus[0].idleWatts: must be <= maxWatts (got 900 > 700)",
        "must be <= maxWatts",
    ),
    Case(
        "pue_below_one",
        _edit(REG, "spec.energy.pue", "0.8"),
        "spec.energy.pue: pue must be between 1.0 and 3.0",
        "pue must be between 1.0 and 3.0",
    ),
    Case(
        "hourly_cost_not_a_number",
        _edit(REG, "spec.gpus.0.hourlyCost", "cheap"),
        "spec.gpus[0].hourlyCost: must be a decimal number such as \"2.49\" (got 'cheap')",
        'spec.gpus[0].hourlyCost: Invalid value: "cheap"',
    ),
    Case(
        "no_gpus",
        _edit(REG, "spec.gpus", []),
        "spec.gpus: must have at least one item",
        "spec.gpus: Invalid value: 0",
    ),
    Case(
        "unknown_price_source",
        _edit(REG, "spec.energy.price", {"type": "nordpool"}),
        "spec.energy.price: type must be one of 'entsoe', 'electricityMaps', 'tou', 'csv', "
        "'prometheus' (got 'nordpool')",
        'spec.energy.price.type: Unsupported value: "nordpool"',
    ),
    Case(
        "env_with_value_and_secret",
        _edit(
            INF,
            "spec.engine.env",
            [{"name": "HF_TOKEN", "value": "x", "secretKeyRef": {"name": "a", "key": "b"}}],
        ),
        "spec.engine.env[0]: set exactly one of value or secretKeyRef",
        "set exactly one of value or secretKeyRef",
    ),
]
CASES.append(
    Case(
        "hourly_cost_unquoted",
        _edit(REG, "spec.gpus.0.hourlyCost", 2.49),
        'spec.gpus[0].hourlyCost: must be a quoted decimal string such as "2.49" '
        "(got 2.49 without quotes)",
        'spec.gpus[0].hourlyCost: Invalid value: "number"',
    )
)

# A node path is the Region owner's to choose (issue 14 item 1): an InferenceDeployment may not
# name one, and a Region may offer one only where it enforces no Pod Security level that refuses
# hostPath volumes.
CASES += [
    Case(
        "model_cache_host_path",
        _edit(INF, "spec.engine.modelCache", {"hostPath": "/"}),
        "spec.engine.modelCache.hostPath: hostPath is no longer accepted: ask the Region owner "
        "for a named cache (Region spec.workloads.modelCaches) and set modelCache.name to it",
        "hostPath is no longer accepted",
    ),
    Case(
        "model_cache_name_and_claim",
        _edit(INF, "spec.engine.modelCache", {"name": "nvme", "persistentVolumeClaim": "hf"}),
        "spec.engine.modelCache: set exactly one of name or persistentVolumeClaim",
        "set exactly one of name or persistentVolumeClaim",
    ),
    Case(
        "region_host_path_cache_under_restricted",
        _edit(REG, "spec.workloads", {"modelCaches": [{"name": "nvme", "hostPath": "/mnt/hf"}]}),
        "spec.workloads.modelCaches: a hostPath model cache needs podSecurity: privileged "
        "(restricted and baseline refuse hostPath volumes); offer a PVC instead",
        "a hostPath model cache needs podSecurity: privileged",
    ),
    Case(
        "region_host_path_cache_at_root",
        _edit(
            REG,
            "spec.workloads",
            {"podSecurity": "privileged", "modelCaches": [{"name": "nvme", "hostPath": "/"}]},
        ),
        "spec.workloads.modelCaches[0].hostPath: must match ^/[^/] (got '/')",
        "spec.workloads.modelCaches[0].hostPath: Invalid value",
    ),
    Case(
        "region_host_path_cache_climbs_out",
        _edit(
            REG,
            "spec.workloads",
            {
                "podSecurity": "privileged",
                "modelCaches": [{"name": "nvme", "hostPath": "/mnt/hf/../../etc"}],
            },
        ),
        "spec.workloads.modelCaches[0].hostPath: hostPath must not contain '..'",
        "hostPath must not contain '..'",
    ),
    Case(
        "region_unknown_pod_security",
        _edit(REG, "spec.workloads", {"podSecurity": "none"}),
        "spec.workloads.podSecurity: must be one of 'restricted', 'baseline' or 'privileged' "
        "(got 'none')",
        'spec.workloads.podSecurity: Unsupported value: "none"',
    ),
]
