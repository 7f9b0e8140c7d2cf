"""The API models refuse malformed objects with one readable line per problem."""

from __future__ import annotations

import pytest
import yaml

from tests.cases.malformed import CASES, Case, example
from wattscale.api import InvalidObjectError, parse_object
from wattscale.cli import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_object_gets_one_readable_line(case: Case) -> None:
    with pytest.raises(InvalidObjectError) as caught:
        parse_object(case.doc)
    assert caught.value.problems == [case.problem]


def test_there_are_at_least_ten_malformed_cases() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("kind", ["InferenceDeployment", "Region"])
def test_examples_are_valid(kind: str) -> None:
    obj = parse_object(example(kind))
    assert obj.kind == kind


def test_defaults_are_filled_in() -> None:
    doc = example("InferenceDeployment")
    del doc["spec"]["mode"]
    obj = parse_object(doc)
    assert obj.kind == "InferenceDeployment"
    assert obj.spec.mode == "Active"
    assert obj.spec.placement.coldStartSeconds == 240


def test_several_problems_are_all_reported() -> None:
    doc = example("InferenceDeployment")
    doc["spec"]["slo"]["ttftP95Ms"] = -1
    doc["spec"]["model"] = ""
    with pytest.raises(InvalidObjectError) as caught:
        parse_object(doc)
    assert sorted(caught.value.problems) == [
        "spec.model: must not be empty",
        "spec.slo.ttftP95Ms: must be >= 1 (got -1)",
    ]


def test_wrong_kind_and_api_version() -> None:
    with pytest.raises(InvalidObjectError, match=r"apiVersion: must be wattscale\.io/v1alpha1"):
        parse_object({"apiVersion": "v1", "kind": "Region", "spec": {}})
    with pytest.raises(InvalidObjectError, match="kind: must be one of"):
        parse_object({"apiVersion": "wattscale.io/v1alpha1", "kind": "Pod", "spec": {}})


def test_validate_command_prints_lines_not_tracebacks(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump_all([CASES[1].doc, example("Region")]))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}#0: {CASES[1].problem}", f"{path}#1: Region/us-west is valid"]


def test_validate_command_reports_unreadable_yaml(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.yaml"
    path.write_text("spec: [unclosed\n")
    assert main(["validate", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
