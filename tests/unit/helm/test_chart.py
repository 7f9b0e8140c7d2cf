"""Static checks of the Helm chart: metadata, CRD copy, values documentation and schema, templates.

No helm binary needed (tests/e2e/test_helm.py runs `helm lint/template/install`). A small
validator for the draft-07 subset values.schema.json uses checks values.yaml and every ci/ file,
so a key added to values.yaml without its schema (or the other way round) fails here first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from wattscale.api import InvalidObjectError, parse_object

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "wattscale"
CI_FILES = sorted((CHART / "ci").glob("*.yaml"))
TEMPLATES = sorted((CHART / "templates").glob("*"))
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
VALUES = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

# Object-typed values whose keys are the user's (labels, Kubernetes structs): no fixed keys.
FREE_FORM = {
    "global",
    "commonLabels",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
    "podSecurityContext",
    "securityContext",
    "metrics.service.annotations",
    "metrics.serviceMonitor.labels",
    "serviceAccount.annotations",
    "dashboards.labels",
    "dashboards.annotations",
    "regions[].labels",
    "regions[].annotations",
    "regions[].spec",
    "resources.requests",
    "resources.limits",
    "imagePullSecrets[]",
    "operator.extraEnv[]",
    "tolerations[]",
    "metrics.serviceMonitor.relabelings[]",
    "metrics.serviceMonitor.metricRelabelings[]",
}


# ---- a small JSON Schema (draft-07 subset) validator ---------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Problems with ``value`` against the keywords values.schema.json uses."""
    where = path or "<root>"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: {value!r} is not of type {kinds}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} > {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{where}: {value} <= {schema['exclusiveMinimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing required key {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key in props:
                problems += validate(item, props[key], sub)
            elif extra is False:
                problems.append(f"{where}: unknown key {key!r}")
            elif isinstance(extra, dict):
                problems += validate(item, extra, sub)
    if isinstance(value, list):
        if schema.get("uniqueItems") and len({json.dumps(v) for v in value}) != len(value):
            problems.append(f"{where}: items are not unique")
        if "items" in schema:
            for index, item in enumerate(value):
                problems += validate(item, schema["items"], f"{path}[{index}]")
    return problems


def merged(base: Any, override: Any) -> Any:
    """Helm's value merge: maps merge recursively, everything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merged(base.get(key), value) if key in base else value
        return out
    return override


def _object_schemas(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if schema.get("type") == "object":
        found.append((path, schema))
        for key, sub in schema.get("properties", {}).items():
            found += _object_schemas(sub, f"{path}.{key}" if path else key)
    if "items" in schema:
        found += _object_schemas(schema["items"], f"{path}[]")
    return found


# ---- chart metadata and CRDs ---------------------------------------------------------------------


def test_chart_yaml() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "wattscale"
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version is not None
    assert chart["appVersion"] == version.group(1), "appVersion must match pyproject's version"


def test_chart_crds_equal_the_generated_crds_byte_for_byte() -> None:
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    copied = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert generated, "crds/ is empty"
    assert copied == generated, "helm/wattscale/crds/ must hold exactly the files of crds/"
    for name in generated:
        want = (ROOT / "crds" / name).read_bytes()
        got = (CHART / "crds" / name).read_bytes()
        assert got == want, f"helm/wattscale/crds/{name} differs from crds/{name}: cp crds/*.yaml"


# ---- values.yaml: documented and typed -----------------------------------------------------------


def _undocumented_keys(text: str) -> list[str]:
    """Keys of values.yaml with neither a comment line right above nor a trailing comment."""
    missing: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)(?:- )?([A-Za-z_][\w.-]*):(\s|$)", line)
        if not match or line.lstrip().startswith("#"):
            continue
        above = lines[number - 1].strip() if number else ""
        if not (above.startswith("#") or " # " in line):
            missing.append(f"line {number + 1}: {match.group(2)}")
    return missing


def test_every_values_key_has_a_comment() -> None:
    missing = _undocumented_keys((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert not missing, f"undocumented keys in values.yaml: {missing}"


def test_the_comment_check_catches_an_undocumented_key() -> None:
    assert _undocumented_keys("# ok\na: 1\nb:\n  # ok\n  c: 2\n") == ["line 3: b"]


def test_schema_is_draft07_and_strict() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    for path, node in _object_schemas(SCHEMA):
        if path in FREE_FORM:
            continue
        assert node.get("additionalProperties") is False, f"{path or '<root>'} is not strict"
        assert node.get("properties"), f"{path} declares no properties"


def test_every_values_key_is_in_the_schema_and_typed() -> None:
    assert validate(VALUES, SCHEMA) == []
    declared = set(SCHEMA["properties"]) - {"global"}
    assert declared == set(VALUES), "values.yaml and values.schema.json list different keys"


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_ci_values_are_valid(path: Path) -> None:
    override = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    assert validate(merged(VALUES, override), SCHEMA) == []


def test_schema_rejects_typos_and_bad_types() -> None:
    assert validate(merged(VALUES, {"metrics": {"serviceMonitr": {}}}), SCHEMA)
    assert validate(merged(VALUES, {"metrics": {"port": "9464"}}), SCHEMA)
    assert validate(merged(VALUES, {"image": {"pullPolicy": "Sometimes"}}), SCHEMA)
    assert validate(merged(VALUES, {"operator": {"replicas": -1}}), SCHEMA)
    assert validate(merged(VALUES, {"operator": {"replicas": 2}}), SCHEMA) == []  # shards
    assert validate(
        merged(VALUES, {"regions": [{"name": "Bad_Name", "spec": {"gpus": []}}]}), SCHEMA
    )


def test_ci_files_cover_the_options() -> None:
    docs = [yaml.safe_load(p.read_text(encoding="utf-8")) or {} for p in CI_FILES]
    assert {} in docs, "one ci/ file must be the defaults"
    assert any(d.get("metrics", {}).get("serviceMonitor", {}).get("enabled") for d in docs)
    assert any(d.get("regions") for d in docs)
    assert any(d.get("rbac", {}).get("httpRoutes") for d in docs)
    assert any(d.get("operator", {}).get("replicas", 1) > 1 for d in docs)


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.name)
def test_regions_from_values_are_valid_regions(path: Path) -> None:
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for item in values.get("regions", []):
        doc = {
            "apiVersion": "wattscale.io/v1alpha1",
            "kind": "Region",
            "metadata": {"name": item["name"]},
            "spec": item["spec"],
        }
        try:
            parse_object(doc)
        except InvalidObjectError as err:  # pragma: no cover - the message is the point
            pytest.fail(f"{path.name}: region {item['name']}: {err.problems}")


# ---- templates -----------------------------------------------------------------------------------


def _values_paths(node: Any, prefix: str = "") -> set[str]:
    paths = {prefix} if prefix else set()
    if isinstance(node, dict):
        for key, value in node.items():
            paths |= _values_paths(value, f"{prefix}.{key}" if prefix else key)
    return paths


def test_templates_only_read_values_that_exist() -> None:
    known = _values_paths(VALUES)
    for template in TEMPLATES:
        for ref in re.findall(r"\.Values\.([A-Za-z_][\w.]*)", template.read_text(encoding="utf-8")):
            assert ref.rstrip(".") in known, f"{template.name} reads .Values.{ref}, not in values"


def test_expected_templates_exist() -> None:
    names = {p.name for p in TEMPLATES}
    for name in (
        "_helpers.tpl",
        "NOTES.txt",
        "deployment.yaml",
        "rbac.yaml",
        "service.yaml",
        "serviceaccount.yaml",
        "servicemonitor.yaml",
        "dashboards.yaml",
        "regions.yaml",
    ):
        assert name in names


def test_deployment_is_hardened_and_standalone() -> None:
    text = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    assert "replicas: {{ .Values.operator.replicas }}" in text
    assert VALUES["operator"]["replicas"] == 1
    # 0 (an operator run elsewhere), 1, or more: shards (kopf --standalone, our own Leases).
    assert SCHEMA["properties"]["operator"]["properties"]["replicas"]["minimum"] == 0
    assert "$sharded := gt (int .Values.operator.replicas) 1" in text
    assert "type: Recreate" in text
    assert "type: RollingUpdate" in text
    assert "- --shards" in text
    assert "fieldPath: metadata.name" in text  # POD_NAME: the replica's Lease identity
    assert "--standalone" in text
    assert "/healthz" in text
    assert "livenessProbe" in text
    assert "readinessProbe" in text
    assert "mountPath: /tmp" in text
    assert VALUES["securityContext"]["readOnlyRootFilesystem"] is True
    assert VALUES["securityContext"]["allowPrivilegeEscalation"] is False
    assert VALUES["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert VALUES["podSecurityContext"]["runAsNonRoot"] is True
    assert VALUES["podSecurityContext"]["runAsUser"] == 65532
    assert VALUES["podSecurityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert VALUES["metrics"]["port"] == 9464


def test_secrets_are_readable_only_in_the_release_namespace() -> None:
    text = (CHART / "templates" / "rbac.yaml").read_text(encoding="utf-8")
    docs = text.split("\n---\n")
    secret_docs = [d for d in docs if '"secrets"' in d]
    assert len(secret_docs) == 1
    assert "kind: Role\n" in secret_docs[0]
    assert "ClusterRole\n" not in secret_docs[0]
    assert 'verbs: ["get"]' in secret_docs[0]


def test_no_wildcards_in_rbac() -> None:
    text = (CHART / "templates" / "rbac.yaml").read_text(encoding="utf-8")
    assert '"*"' not in text
    assert "'*'" not in text
