"""The committed CRDs are exactly what the models generate, and they are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from wattscale.api.crdgen import crds, render
from wattscale.cli import main

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = {"$ref", "anyOf", "oneOf", "allOf", "const", "title"}


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _walk(value, f"{path}.{key}")
        if "items" in node:
            found += _walk(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("name", sorted(crds()))
def test_committed_crds_match_the_models(name: str) -> None:
    committed = (ROOT / "crds" / name).read_text()
    assert committed == render(crds()[name]), "crds/ drifted: run `make crds` and commit"


def test_crds_command_writes_the_same_files(tmp_path: Path) -> None:
    assert main(["crds", "--output-dir", str(tmp_path)]) == 0
    for name in crds():
        assert (tmp_path / name).read_text() == (ROOT / "crds" / name).read_text()


@pytest.mark.parametrize("name", sorted(crds()))
def test_schema_is_structural_and_documented(name: str) -> None:
    root = crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(root):
        assert not FORBIDDEN & set(node), f"{path} uses {FORBIDDEN & set(node)}"
        extra = node.get("additionalProperties")
        assert extra is None or (isinstance(extra, dict) and "properties" not in node), path
        assert "type" in node, f"{path} has no type"
        if path.count(".") >= 2 and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"


def test_cel_rules_are_emitted_with_field_paths() -> None:
    text = yaml.safe_dump(crds())
    assert "self.minReplicas <= self.maxReplicas" in text
    assert "fieldPath: .maxReplicas" in text
    assert "type entsoe requires biddingZone" in text


def test_printer_columns() -> None:
    version = crds()["wattscale.io_inferencedeployments.yaml"]["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names[:5] == ["Model", "Replicas", "Ready", "Regions", "Cost/h"]
    assert names[-1] == "Age"
