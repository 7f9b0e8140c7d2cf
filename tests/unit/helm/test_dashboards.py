"""The Grafana dashboards: generated, valid Grafana JSON, templated, and free of typo'd metrics.

Every metric name in every PromQL expression (panel targets, template variables, annotations)
must be one the operator exports (``OperatorMetrics``, with the suffixes prometheus_client adds)
or a known vLLM/DCGM name; and every family the operator exports must appear on some dashboard.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from wattscale.telemetry.metrics import OperatorMetrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD_DIR = ROOT / "helm" / "wattscale" / "dashboards"
FILES = sorted(DASHBOARD_DIR.glob("*.json"))
EXPECTED_FILES = {"fleet-overview.json", "deployment.json", "operator-health.json"}

# Names the dashboards may use besides the operator's own (DESIGN.md section 6).
VLLM_DCGM = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    *(
        f"vllm:{h}_{suffix}"
        for h in (
            "time_to_first_token_seconds",
            "time_per_output_token_seconds",
            "inter_token_latency_seconds",
            "e2e_request_latency_seconds",
        )
        for suffix in ("bucket", "sum", "count")
    ),
}

# PromQL functions, aggregations and keywords, plus Grafana's label_values().
PROMQL_WORDS = {
    "abs", "absent", "absent_over_time", "and", "avg", "avg_over_time", "bool", "bottomk", "by",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "count", "count_over_time",
    "count_values", "delta", "deriv", "floor", "group", "group_left", "group_right",
    "histogram_quantile", "idelta", "ignoring", "on", "without",
    "increase", "irate", "label_join", "label_replace", "label_values", "last_over_time",
    "max", "max_over_time", "min", "min_over_time", "offset", "or", "quantile",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc", "stddev",
    "stdvar", "sum", "sum_over_time", "time", "timestamp", "topk", "unless", "vector",
}  # fmt: skip
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _load_generator() -> ModuleType:
    path = ROOT / "hack" / "gen_dashboards.py"
    spec = importlib.util.spec_from_file_location("gen_dashboards", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()


def operator_metric_names() -> set[str]:
    """Every series name the operator exposes, as prometheus_client writes it."""
    metrics = OperatorMetrics(registry=CollectorRegistry())
    names: set[str] = set()
    for family in metrics.registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}_{s}" for s in ("bucket", "sum", "count"))
        else:
            names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label names, functions and keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = GROUPING.sub("", text)  # by (...), on (...), ...
    text = re.sub(r"(label_values\([^,)]*),[^)]*\)", r"\1)", text)  # label_values(m, LABEL)
    return {w for w in IDENT.findall(text) if w not in PROMQL_WORDS}


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return board


def all_exprs() -> list[tuple[str, str, str]]:
    return [(p.name, where, expr) for p in FILES for where, expr in GEN.iter_exprs(load(p))]


def test_the_three_dashboards_are_committed() -> None:
    assert {p.name for p in FILES} == EXPECTED_FILES


def test_committed_json_equals_generator_output() -> None:
    rendered: dict[str, str] = GEN.rendered()
    assert set(rendered) == EXPECTED_FILES
    for name, text in rendered.items():
        committed = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} drifted: run .venv/bin/python hack/gen_dashboards.py"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_grafana_model_basics(path: Path) -> None:
    board = load(path)
    assert isinstance(board["schemaVersion"], int)
    assert board["schemaVersion"] >= 36
    assert board["uid"].startswith("wattscale-")
    assert len(board["uid"]) <= 40
    assert board["title"]
    assert "wattscale" in board["tags"]
    assert board["panels"]


def test_uids_and_titles_are_unique_across_dashboards() -> None:
    boards = [load(p) for p in FILES]
    assert len({b["uid"] for b in boards}) == len(boards)
    assert len({b["title"] for b in boards}) == len(boards)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_panel_ids_are_unique_and_positions_fit(path: Path) -> None:
    panels = load(path)["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    assert all(isinstance(i, int) and i > 0 for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0
        assert pos["w"] > 0
        assert pos["x"] + pos["w"] <= 24, f"panel {panel['title']!r} wider than the grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_query_uses_the_datasource_variable(path: Path) -> None:
    board = load(path)
    templated = {"type": "prometheus", "uid": "${datasource}"}
    for panel in board["panels"]:
        if panel["type"] == "row":
            assert "targets" not in panel
            continue
        assert panel["datasource"] == templated, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"] == templated, panel["title"]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == templated, var["name"]
    for ann in board["annotations"]["list"]:
        if not ann.get("builtIn"):
            assert ann["datasource"] == templated, ann["name"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_templated_by_datasource_namespace_and_deployment(path: Path) -> None:
    variables = {v["name"]: v for v in load(path)["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "deployment", "region"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"] is True
        assert variables[name]["allValue"] == ".*"
    # Every $variable used anywhere is defined (Grafana's $__ built-ins excepted).
    text = path.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    assert {u for u in used if not u.startswith("__")} <= set(variables)


def test_the_deployment_dashboard_shows_decisions_as_annotations() -> None:
    board = load(DASHBOARD_DIR / "deployment.json")
    exprs = [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    assert any("wattscale_decisions_total" in e for e in exprs)


@pytest.mark.parametrize(
    ("file", "where", "expr"), all_exprs(), ids=[f"{f}:{w}" for f, w, _ in all_exprs()]
)
def test_promql_references_only_known_metrics(file: str, where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{file} {where}: no metric in {expr!r}"
    unknown = names - operator_metric_names() - VLLM_DCGM
    assert not unknown, f"{file} {where}: unknown metric(s) {sorted(unknown)} in {expr!r}"
    assert expr.count("(") == expr.count(")"), f"{file} {where}: unbalanced parentheses"
    assert expr.count("{") == expr.count("}"), f"{file} {where}: unbalanced braces"


def test_every_operator_metric_is_on_some_dashboard() -> None:
    used = set().union(*(metric_names(expr) for _, _, expr in all_exprs()))
    families = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
                for n in operator_metric_names()}  # fmt: skip
    shown = {f for f in families if any(u == f or u.startswith(f"{f}_") for u in used)}
    missing = families - shown
    assert not missing, f"metrics on no dashboard: {sorted(missing)} (edit hack/gen_dashboards.py)"


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (region, currency) (increase(wattscale_gpu_cost_total{namespace=~"$namespace"}'
        '[1d])) / on (region) group_left wattscale_region_price_per_kwh{region="a b"} or vector(0)'
    )
    assert metric_names(expr) == {"wattscale_gpu_cost_total", "wattscale_region_price_per_kwh"}
    assert metric_names("label_values(wattscale_desired_replicas, namespace)") == {
        "wattscale_desired_replicas"
    }
    assert metric_names("wattscale_cost_per_hr") == {"wattscale_cost_per_hr"}


def test_docs_show_the_current_layouts_and_every_panel() -> None:
    doc = (ROOT / "docs" / "dashboards.md").read_text(encoding="utf-8")
    for name, build in GEN.DASHBOARDS.items():
        board = build()
        assert GEN.ascii_layout(board) in doc, (
            f"docs/dashboards.md: the wireframe of {name} is stale; paste the output of "
            "`hack/gen_dashboards.py --ascii`"
        )
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert f"| {panel['title']} |" in doc, f"docs/dashboards.md misses {panel['title']}"
