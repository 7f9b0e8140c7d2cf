#!/usr/bin/env python3
"""Generate the Grafana dashboards shipped in helm/wattscale/dashboards/ (run, then commit).

    .venv/bin/python hack/gen_dashboards.py            # write the JSON files
    .venv/bin/python hack/gen_dashboards.py --check    # exit 1 if the committed files differ

Three dashboards, all templated by ``$datasource`` (a Prometheus data source), ``$namespace``,
``$deployment`` and ``$region``; every query uses only the operator's own metric families
(``wattscale.telemetry.metrics``). A unit test checks the committed JSON equals this script's
output and that every metric name in every expression exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

OUT_DIR = Path(__file__).resolve().parents[1] / "helm" / "wattscale" / "dashboards"
SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}
TAG = "wattscale"

# Label filters every per-deployment query carries (the template variables).
DEP = 'namespace=~"$namespace", deployment=~"$deployment"'
DEP_REGION = f'{DEP}, region=~"$region"'
REGION = 'region=~"$region"'
DECISIONS_BY_REASON = (
    f"sum by (reason) (increase(wattscale_decisions_total{{{DEP}}}[$__rate_interval]))"
)


@dataclass
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str = "__auto"
    instant: bool = False


@dataclass
class Panel:
    """A panel before layout: what it shows; the builder assigns id and position."""

    title: str
    description: str
    queries: list[Query]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    stack: bool = False
    decimals: int | None = None
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    min_zero: bool = True
    extra_options: JSON = field(default_factory=dict)
    overrides: list[JSON] = field(default_factory=list)


@dataclass
class Row:
    """A full-width row header."""

    title: str


def _target(q: Query, ref: str) -> JSON:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": q.expr,
        "instant": q.instant,
        "legendFormat": q.legend,
        "range": not q.instant,
        "refId": ref,
    }


def _thresholds(steps: list[tuple[float | None, str]]) -> JSON:
    if not steps:
        steps = [(None, "green")]
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def _panel_json(p: Panel, pid: int, x: int, y: int) -> JSON:
    defaults: JSON = {
        "unit": p.unit,
        "thresholds": _thresholds(p.thresholds),
        "color": {"mode": "thresholds" if p.kind == "stat" else "palette-classic"},
    }
    if p.decimals is not None:
        defaults["decimals"] = p.decimals
    if p.min_zero and p.kind in ("timeseries", "bargauge"):
        defaults["min"] = 0
    options: JSON
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 30 if p.stack else 10,
            "showPoints": "never",
            "spanNulls": True,
            "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
        }
        options = {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif p.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    elif p.kind == "bargauge":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    elif p.kind == "state-timeline":
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
        defaults["color"] = {"mode": "thresholds"}
        options = {
            "showValue": "never",
            "mergeValues": True,
            "rowHeight": 0.9,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "single"},
        }
    elif p.kind == "table":
        options = {"showHeader": True, "cellHeight": "sm"}
    else:
        raise ValueError(f"unknown panel kind {p.kind}")
    options.update(p.extra_options)
    refs = "ABCDEFGHIJ"
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DS,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "targets": [_target(q, refs[i]) for i, q in enumerate(p.queries)],
        "fieldConfig": {"defaults": defaults, "overrides": p.overrides},
        "options": options,
    }


def _layout(items: list[Panel | Row]) -> list[JSON]:
    """Place panels left to right in rows 24 units wide; rows start a new line."""
    panels: list[JSON] = []
    pid, x, y, line_h = 1, 0, 0, 0
    for item in items:
        if isinstance(item, Row) or x + item.width > 24:
            y, x, line_h = y + line_h, 0, 0
        if isinstance(item, Row):
            panels.append(
                {
                    "id": pid,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
        else:
            panels.append(_panel_json(item, pid, x, y))
            x += item.width
            line_h = max(line_h, item.height)
        pid += 1
    return panels


def _query_variable(name: str, label: str, query: str) -> JSON:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        # A plain label_values(...) string: the form every Grafana version reads (newer ones
        # migrate it to their structured editor on load).
        "query": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def _templating() -> JSON:
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "options": [],
                "regex": "",
                "refresh": 1,
                "includeAll": False,
                "multi": False,
                "hide": 0,
            },
            _query_variable(
                "namespace", "Namespace", "label_values(wattscale_desired_replicas, namespace)"
            ),
            _query_variable(
                "deployment",
                "InferenceDeployment",
                'label_values(wattscale_desired_replicas{namespace=~"$namespace"}, deployment)',
            ),
            _query_variable("region", "Region", "label_values(wattscale_region_available, region)"),
        ]
    }


def _annotations(decisions: bool) -> JSON:
    items: list[JSON] = [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
    ]
    if decisions:
        items.append(
            {
                "datasource": DS,
                "enable": True,
                "iconColor": "orange",
                "name": "Decisions",
                "expr": (
                    f"sum by (namespace, deployment, reason) "
                    f"(increase(wattscale_decisions_total{{{DEP}}}[2m])) > 0"
                ),
                "step": "2m",
                "titleFormat": "{{reason}}",
                "textFormat": "{{namespace}}/{{deployment}}: {{reason}}",
                "tagKeys": "reason,deployment",
                "useValueForTime": False,
            }
        )
    return {"list": items}


def dashboard(uid: str, title: str, description: str, items: list[Panel | Row]) -> JSON:
    """A complete dashboard in Grafana's JSON model."""
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {},
        "weekStart": "",
        "links": [
            {
                "title": "wattscale",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "annotations": _annotations(decisions=uid == "wattscale-deployment"),
        "templating": _templating(),
        "panels": _layout(items),
    }


# ---- shared expressions -------------------------------------------------------------------------


def _increase_by_currency(metric: str, window: str, labels: str = DEP_REGION) -> str:
    return f"sum by (currency) (increase({metric}{{{labels}}}[{window}]))"


def _spend(window: str, labels: str = DEP_REGION) -> str:
    """Money spent over ``window``: electricity + GPU-hours - credits from negative prices."""
    return (
        f"{_increase_by_currency('wattscale_energy_cost_total', window, labels)}"
        f" + {_increase_by_currency('wattscale_gpu_cost_total', window, labels)}"
        f" - {_increase_by_currency('wattscale_energy_credit_total', window, labels)}"
    )


def _counterfactual(window: str) -> str:
    return _increase_by_currency("wattscale_counterfactual_cost_total", window, DEP)


def _quantiles(metric: str) -> list[Query]:
    return [
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[$__rate_interval])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


# ---- the dashboards -----------------------------------------------------------------------------


def fleet_overview() -> JSON:
    """Money, energy and carbon for every InferenceDeployment and region at a glance."""
    items: list[Panel | Row] = [
        Row("Now and today"),
        Panel(
            "Cost rate",
            "Total cost per hour now (GPU-hours + electricity incl. PUE), by currency.",
            [
                Query(
                    f"sum by (currency) (wattscale_cost_per_hour{{{DEP_REGION}}})", "{{currency}}/h"
                )
            ],
            kind="stat",
            width=4,
            height=5,
            decimals=2,
        ),
        Panel(
            "Cost today",
            "Money spent over the last 24 h: electricity + GPU-hours - credits earned while "
            "prices were negative.",
            [Query(_spend("1d"), "{{currency}}")],
            kind="stat",
            width=4,
            height=5,
            decimals=2,
        ),
        Panel(
            "Savings today",
            "Counterfactual cost (the SLO-safe replica count in the home region) minus what was "
            "spent, over the last 24 h, for whole deployments (the region filter does not apply).",
            [Query(f"{_counterfactual('1d')} - ({_spend('1d', DEP)})", "{{currency}}")],
            kind="stat",
            width=4,
            height=5,
            decimals=2,
            thresholds=[(None, "red"), (0, "green")],
        ),
        Panel(
            "Savings today, %",
            "Savings as a share of the counterfactual cost over the last 24 h (whole deployments).",
            [Query(f"1 - ({_spend('1d', DEP)}) / ({_counterfactual('1d')})", "{{currency}}")],
            kind="stat",
            unit="percentunit",
            width=4,
            height=5,
            decimals=1,
            thresholds=[(None, "red"), (0, "yellow"), (0.05, "green")],
        ),
        Panel(
            "Carbon today",
            "Emissions over the last 24 h (energy incl. PUE x grid carbon intensity).",
            [Query(f"sum(increase(wattscale_carbon_grams_total{{{DEP_REGION}}}[1d])) / 1000")],
            kind="stat",
            unit="masskg",
            width=4,
            height=5,
            decimals=1,
        ),
        Panel(
            "Power now",
            "Power drawn incl. PUE: measured (DCGM) where available, else modelled; averaged "
            "over 5 minutes from the energy counter.",
            [Query(f"sum(rate(wattscale_energy_joules_total{{{DEP_REGION}}}[5m]))")],
            kind="stat",
            unit="watt",
            width=4,
            height=5,
        ),
        Row("Cost"),
        Panel(
            "Cost rate by region",
            "Cost per hour, stacked by region and currency.",
            [
                Query(
                    f"sum by (region, currency) (wattscale_cost_per_hour{{{DEP_REGION}}})",
                    "{{region}} ({{currency}}/h)",
                )
            ],
            stack=True,
            decimals=2,
        ),
        Panel(
            "Cost rate vs counterfactual",
            "What the fleet costs per hour now, against what the SLO-safe count in each "
            "deployment's home region would cost. The gap is the saving (all regions).",
            [
                Query(
                    f"sum by (currency) (wattscale_cost_per_hour{{{DEP}}})",
                    "actual ({{currency}}/h)",
                ),
                Query(
                    f"sum by (currency) (wattscale_counterfactual_cost_per_hour{{{DEP}}})",
                    "counterfactual ({{currency}}/h)",
                ),
            ],
            decimals=2,
        ),
        Panel(
            "Cost today by deployment",
            "Money spent over the last 24 h per InferenceDeployment.",
            [
                Query(
                    "sum by (namespace, deployment, currency) (increase("
                    f"wattscale_energy_cost_total{{{DEP_REGION}}}[1d]))"
                    " + sum by (namespace, deployment, currency) (increase("
                    f"wattscale_gpu_cost_total{{{DEP_REGION}}}[1d]))"
                    " - sum by (namespace, deployment, currency) (increase("
                    f"wattscale_energy_credit_total{{{DEP_REGION}}}[1d]))",
                    "{{namespace}}/{{deployment}} ({{currency}})",
                    instant=True,
                )
            ],
            kind="bargauge",
            decimals=2,
        ),
        Panel(
            "Spend by kind, last 24 h",
            "Where the money goes: GPU-hours against electricity.",
            [
                Query(
                    _increase_by_currency("wattscale_gpu_cost_total", "1d"), "GPU ({{currency}})"
                ),
                Query(
                    _increase_by_currency("wattscale_energy_cost_total", "1d"),
                    "electricity ({{currency}})",
                ),
                Query(
                    _increase_by_currency("wattscale_energy_credit_total", "1d"),
                    "negative-price credit ({{currency}})",
                ),
            ],
            kind="bargauge",
            decimals=2,
        ),
        Row("Energy and carbon"),
        Panel(
            "Electricity price by region",
            "Price per kWh each region's feed reports, in the region's currency.",
            [
                Query(
                    f"wattscale_region_price_per_kwh{{{REGION}}}",
                    "{{region}} ({{currency}}/kWh)",
                )
            ],
            decimals=3,
            min_zero=False,
        ),
        Panel(
            "Grid carbon intensity by region",
            "Grid carbon intensity each region's feed reports, gCO2eq/kWh.",
            [Query(f"wattscale_region_carbon_grams_per_kwh{{{REGION}}}", "{{region}}")],
        ),
        Panel(
            "Power by region",
            "Power drawn incl. PUE per region (5-minute average of the energy counter).",
            [
                Query(
                    f"sum by (region) (rate(wattscale_energy_joules_total{{{DEP_REGION}}}[5m]))",
                    "{{region}}",
                )
            ],
            unit="watt",
            stack=True,
        ),
        Panel(
            "Emission rate by region",
            "Grams of CO2eq per hour, stacked by region.",
            [
                Query(
                    f"sum by (region) (wattscale_carbon_grams_per_hour{{{DEP_REGION}}})",
                    "{{region}}",
                )
            ],
            unit="massg",
            stack=True,
        ),
        Row("Replicas"),
        Panel(
            "Ready replicas by region",
            "vLLM replicas Ready, stacked by region: watch them move to cheaper power.",
            [
                Query(
                    f"sum by (region) (wattscale_ready_replicas{{{DEP_REGION}}})",
                    "{{region}}",
                )
            ],
            stack=True,
            width=16,
            decimals=0,
        ),
        Panel(
            "Replicas: desired vs ready",
            "All regions together: what the operator wants against what is Ready.",
            [
                Query(f"sum(wattscale_desired_replicas{{{DEP_REGION}}})", "desired"),
                Query(f"sum(wattscale_ready_replicas{{{DEP_REGION}}})", "ready"),
            ],
            width=8,
            decimals=0,
        ),
    ]
    return dashboard(
        "wattscale-fleet",
        "wattscale / Fleet overview",
        "Cost, savings, energy and carbon of every InferenceDeployment, by region.",
        items,
    )


def deployment_view() -> JSON:
    """One InferenceDeployment: SLO, replicas, traffic, capacity, money, decisions."""
    slo_override = [
        {
            "matcher": {"id": "byRegexp", "options": "target.*"},
            "properties": [
                {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                {"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}},
            ],
        }
    ]

    def slo(metric: str, what: str) -> Panel:
        return Panel(
            f"{metric.upper()} p95 vs target",
            f"Observed p95 {what} (from vLLM's histograms) against the SLO target (dashed).",
            [
                Query(
                    f'wattscale_observed_p95_seconds{{{DEP}, metric="{metric}"}}',
                    "observed {{namespace}}/{{deployment}}",
                ),
                Query(
                    f'wattscale_slo_target_seconds{{{DEP}, metric="{metric}"}}',
                    "target {{namespace}}/{{deployment}}",
                ),
            ],
            unit="s",
            overrides=slo_override,
        )

    items: list[Panel | Row] = [
        Row("Now"),
        Panel(
            "Ready / desired replicas",
            "Ready vLLM replicas and the operator's target, all regions.",
            [
                Query(f"sum(wattscale_ready_replicas{{{DEP_REGION}}})", "ready"),
                Query(f"sum(wattscale_desired_replicas{{{DEP_REGION}}})", "desired"),
            ],
            kind="stat",
            width=6,
            height=5,
            decimals=0,
        ),
        Panel(
            "Cost rate",
            "Cost per hour now, by currency.",
            [
                Query(
                    f"sum by (currency) (wattscale_cost_per_hour{{{DEP_REGION}}})", "{{currency}}/h"
                )
            ],
            kind="stat",
            width=6,
            height=5,
            decimals=2,
        ),
        Panel(
            "Savings now, %",
            "1 - cost rate / counterfactual cost rate, all regions.",
            [
                Query(
                    f"1 - sum by (currency) (wattscale_cost_per_hour{{{DEP}}})"
                    f" / sum by (currency) (wattscale_counterfactual_cost_per_hour{{{DEP}}})",
                    "{{currency}}",
                )
            ],
            kind="stat",
            unit="percentunit",
            width=6,
            height=5,
            decimals=1,
            thresholds=[(None, "red"), (0, "yellow"), (0.05, "green")],
        ),
        Panel(
            "Emission rate",
            "Grams of CO2eq per hour now.",
            [Query(f"sum(wattscale_carbon_grams_per_hour{{{DEP_REGION}}})")],
            kind="stat",
            unit="massg",
            width=6,
            height=5,
        ),
        Row("Latency SLO"),
        slo("ttft", "time to first token"),
        slo("tpot", "time per output token"),
        Row("Replicas and traffic"),
        Panel(
            "Ready replicas by region",
            "Ready vLLM replicas per region, stacked; dashed: desired.",
            [
                Query(
                    f"sum by (region) (wattscale_ready_replicas{{{DEP_REGION}}})",
                    "ready {{region}}",
                ),
                Query(
                    f"sum by (region) (wattscale_desired_replicas{{{DEP_REGION}}})",
                    "desired {{region}}",
                ),
            ],
            decimals=0,
            overrides=[
                {
                    "matcher": {"id": "byRegexp", "options": "desired.*"},
                    "properties": [
                        {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                        {"id": "custom.fillOpacity", "value": 0},
                    ],
                }
            ],
        ),
        Panel(
            "Desired replicas by variant",
            "With spec.engine.variants: the replicas the operator wants per GPU variant and "
            "region, stacked (empty for deployments without variants).",
            [
                Query(
                    f"sum by (region, variant) "
                    f"(wattscale_variant_desired_replicas{{{DEP_REGION}}})",
                    "{{region}}/{{variant}}",
                )
            ],
            decimals=0,
            stack=True,
        ),
        Panel(
            "Traffic weight by region",
            "Share of requests routed to each region (status and, if configured, HTTPRoute).",
            [
                Query(
                    f"sum by (region) (wattscale_traffic_weight_ratio{{{DEP_REGION}}})"
                    f" / scalar(count(count by (namespace, deployment) "
                    f"(wattscale_traffic_weight_ratio{{{DEP}}})))",
                    "{{region}}",
                )
            ],
            unit="percentunit",
            stack=True,
        ),
        Panel(
            "Demand vs capacity",
            "Output-token demand against what the Ready replicas serve within the SLO "
            "(ready replicas x per-replica capacity in use).",
            [
                Query(f"sum(wattscale_demand_tokens_per_second{{{DEP}}})", "demand"),
                Query(
                    f"sum(sum by (namespace, deployment) (wattscale_ready_replicas{{{DEP_REGION}}})"
                    " * on (namespace, deployment) "
                    f'wattscale_capacity_tokens_per_second{{{DEP}, source="used"}})',
                    "capacity",
                ),
            ],
        ),
        Panel(
            "Capacity per replica: used vs hint",
            "Output tokens/s one replica serves within the SLO: learned online (used) against "
            "the spec.capacity hint.",
            [
                Query(
                    f"wattscale_capacity_tokens_per_second{{{DEP}}}",
                    "{{source}} {{namespace}}/{{deployment}}",
                )
            ],
        ),
        Panel(
            "Requests waiting at the gateway",
            "With slo.minReplicas 0: the requests the scale-to-zero wake query reads (waiting "
            "for, or failed by, the deployment at the gateway); above 0 while at zero wakes it.",
            [
                Query(
                    f"wattscale_gateway_waiting_requests{{{DEP}}}",
                    "{{namespace}}/{{deployment}}",
                )
            ],
        ),
        Row("Cost, power and carbon"),
        Panel(
            "Cost rate by region vs counterfactual",
            "Cost per hour stacked by region, and the counterfactual (SLO-safe count in the home "
            "region).",
            [
                Query(
                    f"sum by (region, currency) (wattscale_cost_per_hour{{{DEP_REGION}}})",
                    "{{region}} ({{currency}}/h)",
                ),
                Query(
                    f"sum by (currency) (wattscale_counterfactual_cost_per_hour{{{DEP}}})",
                    "counterfactual ({{currency}}/h)",
                ),
            ],
            decimals=2,
        ),
        Panel(
            "Power: modelled vs measured",
            "Power incl. PUE per region: the operator's model against DCGM measurements.",
            [
                Query(
                    f"sum by (region, source) (wattscale_power_watts{{{DEP_REGION}}})",
                    "{{region}} {{source}}",
                )
            ],
            unit="watt",
        ),
        Panel(
            "Emission rate by region",
            "Grams of CO2eq per hour, stacked by region.",
            [
                Query(
                    f"sum by (region) (wattscale_carbon_grams_per_hour{{{DEP_REGION}}})",
                    "{{region}}",
                )
            ],
            unit="massg",
            stack=True,
        ),
        Panel(
            "Decisions by reason",
            "Control-loop decisions per reason code (also shown as annotations).",
            [
                Query(
                    DECISIONS_BY_REASON,
                    "{{reason}}",
                )
            ],
            stack=True,
            extra_options={"legend": {"displayMode": "table", "placement": "right"}},
        ),
    ]
    return dashboard(
        "wattscale-deployment",
        "wattscale / InferenceDeployment",
        "One InferenceDeployment: latency SLO, replicas and traffic per region, capacity, cost "
        "and the operator's decisions.",
        items,
    )


def operator_health() -> JSON:
    """Is the operator healthy: feeds fresh, errors, loop latency, regions reachable."""
    items: list[Panel | Row] = [
        Row("Regions and feeds"),
        Panel(
            "Regions unavailable",
            "Regions whose cluster did not answer the last health check.",
            [Query(f"count(wattscale_region_available{{{REGION}}} == 0) or vector(0)")],
            kind="stat",
            width=6,
            height=5,
            decimals=0,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "Oldest signal",
            "Age of the stalest feed's newest data point.",
            [Query(f"max(wattscale_signal_age_seconds{{{REGION}}})")],
            kind="stat",
            unit="s",
            width=6,
            height=5,
            thresholds=[(None, "green"), (3600, "yellow"), (7200, "red")],
        ),
        Panel(
            "Feed errors, last 24 h",
            "Failed feed reads over the last 24 h, all sources.",
            [
                Query(
                    f"sum(increase(wattscale_signal_fetch_errors_total{{{REGION}}}[1d]))"
                    " or vector(0)"
                )
            ],
            kind="stat",
            width=6,
            height=5,
            decimals=0,
            thresholds=[(None, "green"), (1, "yellow"), (100, "red")],
        ),
        Panel(
            "Plans per minute",
            "How often the planner runs (all InferenceDeployments).",
            [Query("sum(rate(wattscale_planner_duration_seconds_count[5m])) * 60")],
            kind="stat",
            width=6,
            height=5,
            decimals=1,
        ),
        Panel(
            "Region availability",
            "1 when the region's cluster answers; red stretches mean it was unreachable.",
            [Query(f"wattscale_region_available{{{REGION}}}", "{{region}}")],
            kind="state-timeline",
            width=24,
            height=6,
            thresholds=[(None, "red"), (1, "green")],
        ),
        Panel(
            "Signal age",
            "Age of each feed's newest data point, by region, kind (price, carbon, gridEvents) "
            "and source.",
            [
                Query(
                    f"wattscale_signal_age_seconds{{{REGION}}}",
                    "{{region}} {{kind}} ({{source}})",
                )
            ],
            unit="s",
        ),
        Panel(
            "Feed errors by class",
            "Failed feed reads per interval, by region, source and error class.",
            [
                Query(
                    "sum by (region, kind, source, error) (increase("
                    f"wattscale_signal_fetch_errors_total{{{REGION}}}[$__rate_interval]))",
                    "{{region}} {{source}}: {{error}}",
                )
            ],
            stack=True,
        ),
        Row("Control loop"),
        Panel(
            "Planner latency",
            "Time to compute one plan, quantiles over all InferenceDeployments.",
            _quantiles("wattscale_planner_duration_seconds"),
            unit="s",
            width=8,
        ),
        Panel(
            "Reconcile duration",
            "Time for one control-loop pass of one InferenceDeployment (observe, plan, act).",
            _quantiles("wattscale_reconcile_duration_seconds"),
            unit="s",
            width=8,
        ),
        Panel(
            "Reconciles per minute",
            "Control-loop passes per minute, and their mean duration.",
            [
                Query("sum(rate(wattscale_reconcile_duration_seconds_count[5m])) * 60", "passes"),
                Query(
                    "sum(rate(wattscale_reconcile_duration_seconds_sum[5m]))"
                    " / sum(rate(wattscale_reconcile_duration_seconds_count[5m]))",
                    "mean seconds",
                ),
            ],
            width=8,
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "mean seconds"},
                    "properties": [
                        {"id": "unit", "value": "s"},
                        {"id": "custom.axisPlacement", "value": "right"},
                    ],
                }
            ],
        ),
        Panel(
            "Guard-rail and fallback decisions",
            "Decisions per reason code across the selected InferenceDeployments: a burst of "
            "hold or fallback reasons points at stale or missing inputs.",
            [
                Query(
                    DECISIONS_BY_REASON,
                    "{{reason}}",
                )
            ],
            width=24,
            stack=True,
        ),
    ]
    return dashboard(
        "wattscale-operator",
        "wattscale / Operator health",
        "Signal freshness, feed errors, planner and reconcile latency, region availability.",
        items,
    )


DASHBOARDS = {
    "fleet-overview.json": fleet_overview,
    "deployment.json": deployment_view,
    "operator-health.json": operator_health,
}


def render(board: JSON) -> str:
    """The exact text committed for a dashboard (stable key order, trailing newline)."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> text of every dashboard."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def iter_exprs(board: JSON) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query in a dashboard: panel targets, variables, annotations."""
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            yield f"variable {var['name']}", var["definition"]
    for ann in board.get("annotations", {}).get("list", []):
        if "expr" in ann:
            yield f"annotation {ann['name']}", ann["expr"]


def ascii_layout(board: JSON, cols_per_unit: int = 4) -> str:
    """A text wireframe of a dashboard's grid (for docs/dashboards.md): boxes titled by panel."""
    width = 24 * cols_per_unit
    bands: dict[int, list[JSON]] = {}
    for panel in board["panels"]:
        bands.setdefault(panel["gridPos"]["y"], []).append(panel)
    lines: list[str] = []
    for y in sorted(bands):
        band = sorted(bands[y], key=lambda p: p["gridPos"]["x"])
        if band[0]["type"] == "row":
            title = f" {band[0]['title']} "
            lines.append(f"{'=' * 3}{title}{'=' * (width - 3 - len(title))}")
            continue
        height = max(4, max(p["gridPos"]["h"] for p in band) // 2)
        canvas = [[" "] * width for _ in range(height)]
        for panel in band:
            pos = panel["gridPos"]
            x0, x1 = pos["x"] * cols_per_unit, (pos["x"] + pos["w"]) * cols_per_unit - 1
            for x in range(x0, x1 + 1):
                canvas[0][x] = canvas[-1][x] = "-"
            for row in canvas:
                row[x0] = row[x1] = "|"
            for row in (canvas[0], canvas[-1]):
                row[x0] = row[x1] = "+"
            words = _wrap(panel["title"], x1 - x0 - 3)
            for i, text in enumerate(words[: height - 2]):
                for j, ch in enumerate(text):
                    canvas[1 + i][x0 + 2 + j] = ch
        lines.extend("".join(row).rstrip() for row in canvas)
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    out: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return [w[:width] for w in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if committed files differ")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--ascii", action="store_true", help="print text wireframes, write nothing")
    args = parser.parse_args(argv)
    if args.ascii:
        for name, build in DASHBOARDS.items():
            print(f"{name}\n{ascii_layout(build())}")
        return 0
    stale = []
    for name, text in rendered().items():
        path: Path = args.out_dir / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run hack/gen_dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
