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


def _zero_idle(seconds: int) -> dict[str, Any]:
    """The example with minReplicas 0 and a scale-to-zero idle window of ``seconds``."""
    doc = _edit(INF, "spec.slo.minReplicas", 0)
    doc["spec"]["scaleToZero"] = {"idleSeconds": seconds}
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

# What the API server (or a member cluster, on every pass) would refuse: bounds, quantities,
# label values and names. `wattscale validate` must refuse each with the same words.
_QUANTITY = "must be a Kubernetes quantity such as 8, 500m or 64Gi"
_LABEL_VALUE = (
    "must be a label value (A-Z, a-z, 0-9, '-', '_' and '.', starting and ending with a letter "
    "or digit)"
)
CASES += [
    Case(
        "max_replicas_1e40",
        _edit(INF, "spec.slo.maxReplicas", 1e40),
        "spec.slo.maxReplicas: must be a whole number within int64 (got 1e+40)",
        "spec.slo.maxReplicas: Invalid value",
    ),
    Case(
        "max_replicas_above_bound",
        _edit(INF, "spec.slo.maxReplicas", 20000),
        "spec.slo.maxReplicas: must be <= 10000 (got 20000)",
        "should be less than or equal to 10000",
    ),
    Case(
        "ttft_an_hour_too_long",
        _edit(INF, "spec.slo.ttftP95Ms", 10**9),
        "spec.slo.ttftP95Ms: must be <= 600000 (got 1000000000)",
        "should be less than or equal to 600000",
    ),
    Case(
        "cpu_not_a_quantity",
        _edit(INF, "spec.engine.cpu", "eight"),
        f"spec.engine.cpu: {_QUANTITY} (got 'eight')",
        'spec.engine.cpu: Invalid value: "eight"',
    ),
    Case(
        "memory_negative_quantity",
        _edit(INF, "spec.engine.memory", "-64Gi"),
        f"spec.engine.memory: {_QUANTITY} (got '-64Gi')",
        'spec.engine.memory: Invalid value: "-64Gi"',
    ),
    Case(
        "shm_size_with_unit_typo",
        _edit(INF, "spec.engine.shmSize", "16GB"),
        f"spec.engine.shmSize: {_QUANTITY} (got '16GB')",
        'spec.engine.shmSize: Invalid value: "16GB"',
    ),
    Case(
        "gpu_product_with_spaces",
        _edit(INF, "spec.engine.gpuProduct", "NVIDIA H100 80GB"),
        f"spec.engine.gpuProduct: {_LABEL_VALUE} (got 'NVIDIA H100 80GB')",
        'spec.engine.gpuProduct: Invalid value: "NVIDIA H100 80GB"',
    ),
    Case(
        "gpu_product_too_long_for_a_label",
        _edit(REG, "spec.gpus.0.product", "N" * 64),
        "spec.gpus[0].product: must be at most 63 characters",
        "spec.gpus[0].product: Too long",
    ),
    Case(
        "env_name_with_a_space",
        _edit(INF, "spec.engine.env", [{"name": "HF TOKEN", "value": "x"}]),
        "spec.engine.env[0].name: must be an environment variable name (letters, digits, '-', "
        "'_' and '.', not starting with a digit) (got 'HF TOKEN')",
        'spec.engine.env[0].name: Invalid value: "HF TOKEN"',
    ),
    Case(
        "secret_key_with_a_slash",
        _edit(
            INF,
            "spec.engine.env",
            [{"name": "HF_TOKEN", "secretKeyRef": {"name": "hf-token", "key": "a/b"}}],
        ),
        "spec.engine.env[0].secretKeyRef.key: must be a Secret key (letters, digits, '-', '_' "
        "and '.') (got 'a/b')",
        'spec.engine.env[0].secretKeyRef.key: Invalid value: "a/b"',
    ),
    Case(
        "deployment_name_too_long_for_a_label",
        _edit(INF, "metadata.name", "l" * 64),
        "metadata.name: an InferenceDeployment name must be at most 63 characters of a-z, 0-9 and "
        "'-', starting with a letter (it names a Service and is a label value)",
        "an InferenceDeployment name must be at most 63 characters",
    ),
    Case(
        "deployment_name_starting_with_a_digit",
        _edit(INF, "metadata.name", "8b-llama"),
        "metadata.name: an InferenceDeployment name must be at most 63 characters of a-z, 0-9 and "
        "'-', starting with a letter (it names a Service and is a label value)",
        "an InferenceDeployment name must be at most 63 characters",
    ),
    Case(
        "deployment_name_uppercase",
        _edit(INF, "metadata.name", "Llama"),
        "metadata.name: Invalid value: 'Llama': a lowercase RFC 1123 subdomain must consist of "
        "lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character",
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
    ),
    Case(
        "deployment_name_missing",
        _edit(INF, "metadata.name", None, delete=True),
        "metadata.name: Required value: name or generateName is required",
        "metadata.name: Required value: name or generateName is required",
    ),
    Case(
        "region_name_with_a_dot",
        _edit(REG, "metadata.name", "us.west"),
        "metadata.name: a Region name must be at most 63 characters of a-z, 0-9 and '-', starting "
        "and ending with a letter or digit (placement.regions refers to it)",
        "a Region name must be at most 63 characters",
    ),
    Case(
        "gpus_available_absurd",
        _edit(REG, "spec.gpus.0.available", 10**12),
        "spec.gpus[0].available: must be <= 1000000 (got 1000000000000)",
        "should be less than or equal to 1000000",
    ),
    Case(
        "price_refresh_seconds_absurd",
        _edit(REG, "spec.energy.price.refreshSeconds", 10**12),
        "spec.energy.price.csv.refreshSeconds: must be <= 86400 (got 1000000000000)",
        "should be less than or equal to 86400",
    ),
    Case(
        "min_regions_absurd",
        _edit(INF, "spec.slo.minRegions", 1000),
        "spec.slo.minRegions: must be <= 64 (got 1000)",
        "should be less than or equal to 64",
    ),
    Case(
        "scale_to_zero_without_min_replicas_zero",
        _edit(INF, "spec.scaleToZero", {"idleSeconds": 3600}),
        "spec.scaleToZero: scaleToZero needs slo.minReplicas: 0",
        "scaleToZero needs slo.minReplicas: 0",
    ),
    Case(
        "scale_to_zero_idle_too_short",
        _zero_idle(10),
        "spec.scaleToZero.idleSeconds: must be >= 60 (got 10)",
        "should be greater than or equal to 60",
    ),
]

# GPU variants (issue 17 item 1): the first variant is the workload the deployment ran before, so
# it names the product engine.gpuProduct names; variant names are unique, short DNS labels.
_H100 = "NVIDIA-H100-80GB-HBM3"
CASES += [
    Case(
        "variants_first_product_differs",
        _edit(
            INF, "spec.engine.variants", [{"name": "a100", "gpuProduct": "NVIDIA-A100-SXM4-80GB"}]
        ),
        "spec.engine.gpuProduct: with variants, gpuProduct must equal variants[0].gpuProduct "
        "(the first variant is the workload <name>-vllm)",
        "with variants, gpuProduct must equal variants[0].gpuProduct",
    ),
    Case(
        "variants_names_repeat",
        _edit(
            INF,
            "spec.engine.variants",
            [{"name": "h100", "gpuProduct": _H100}, {"name": "h100", "gpuProduct": _H100}],
        ),
        "spec.engine.variants: variant names must be unique",
        "variant names must be unique",
    ),
    Case(
        "variant_name_too_long",
        _edit(INF, "spec.engine.variants", [{"name": "h100-tp1-fp8-long", "gpuProduct": _H100}]),
        "spec.engine.variants[0].name: must be at most 15 characters",
        "spec.engine.variants[0].name: Too long",
    ),
]
