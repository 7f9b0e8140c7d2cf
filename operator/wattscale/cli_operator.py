"""`wattscale run` (the operator) and `wattscale explain` (the last decision in plain words)."""

from __future__ import annotations

import argparse
import logging
from typing import Any, cast

import yaml


def add_operator_parsers(sub: Any) -> None:
    """Register `run` and `explain` on the main CLI's subparsers."""
    p = sub.add_parser("run", help="run the operator against the current kubeconfig's cluster")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        help="no kopf peering (the chart always sets it; several replicas share with --shards)",
    )
    p.add_argument(
        "--shards",
        action="store_true",
        default=None,
        help="share the fleet with other replicas: each owns a shard (Leases on the hub)",
    )
    p.add_argument(
        "--liveness", default=None, help="kopf liveness URL, e.g. http://0.0.0.0:8080/healthz"
    )
    p.add_argument("--interval", type=float, default=None, help="seconds between passes (30)")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (9464; 0 = off)")
    p.add_argument("--metrics-address", default=None, help="metrics bind address (0.0.0.0)")
    p.add_argument(
        "--operator-namespace", default=None, help="where Secrets resolve (wattscale-system)"
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="speed up the operator's own timers (demos and tests only)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(handler=run_operator)

    e = sub.add_parser("explain", help="print the last decision for an InferenceDeployment")
    e.add_argument("name", help="InferenceDeployment name")
    e.add_argument("-n", "--namespace", default="default", help="its namespace")
    e.add_argument("--output", choices=["text", "yaml"], default="text")
    e.set_defaults(handler=run_explain)


def run_operator(args: argparse.Namespace) -> int:
    import kopf

    from wattscale.controller.handlers import build_registry, configure
    from wattscale.controller.settings import Settings, is_namespace_pattern
    from wattscale.telemetry.metrics import OperatorMetrics, serve

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every successful timer run at INFO: one line per object every interval.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings = Settings.from_env(
        interval_seconds=args.interval,
        region_interval_seconds=args.interval,
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        operator_namespace=args.operator_namespace,
        time_scale=args.time_scale,
        watch_namespaces=tuple(args.namespace or ()),
        sharding=args.shards,
    )
    metrics = OperatorMetrics()
    if settings.metrics_port:
        serve(metrics, settings.metrics_port, settings.metrics_address)
    registry, _ = build_registry(settings, metrics=metrics)
    kopf_settings = kopf.OperatorSettings()
    configure(kopf_settings)
    namespaces = args.namespace or []
    # Exact namespace names need no cluster scanning: kopf would otherwise list and watch every
    # namespace (cluster-wide) to match them, which a chart with watchNamespaces does not grant.
    kopf_settings.scanning.disabled = bool(namespaces) and not any(
        is_namespace_pattern(n) for n in namespaces
    )
    kopf.run(
        registry=registry,
        settings=kopf_settings,
        standalone=args.standalone,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness,
    )
    return 0


def explain_text(obj: dict[str, Any]) -> str:
    """The last decision of an InferenceDeployment, in plain words."""
    meta = obj.get("metadata", {})
    status = obj.get("status") or {}
    last = status.get("lastDecision") or {}
    ex = status.get("explanation") or {}
    cur = status.get("currency") or ""
    lines = [f"{meta.get('namespace')}/{meta.get('name')}: {obj.get('spec', {}).get('model')}"]
    if not last:
        return lines[0] + "\n  no decision yet (is the operator running?)"
    lines.append(f"  decided {last.get('time')}: {last.get('reason')}: {last.get('message')}")

    def tps(key: str) -> str:
        value = ex.get(key)
        return "unknown" if value is None else f"{value:,} tok/s"

    lines.append(
        f"  demand {tps('demandTokensPerSecond')}, forecast peak {tps('forecastTokensPerSecond')},"
        f" capacity needed {tps('needTokensPerSecond')}"
    )
    cap = status.get("capacityTokensPerSecondPerReplica")
    lines.append(
        f"  one replica serves {cap:,} tok/s within the SLO ({ex.get('capacitySource')})"
        if cap
        else "  capacity per replica unknown"
    )
    for r in ex.get("regions", []):
        bits = [r["name"]]
        bits.append(f"price {r['pricePerKwh']} {cur}/kWh" if r.get("pricePerKwh") else "price ?")
        if r.get("carbonGramsPerKwh") is not None:
            bits.append(f"{r['carbonGramsPerKwh']} gCO2/kWh")
        if not r.get("signalsFresh"):
            bits.append("signals STALE")
        if r.get("gridEventCapReplicas") is not None:
            bits.append(f"grid event: at most {r['gridEventCapReplicas']} replicas")
        if not r.get("available", True):
            bits.append("UNREACHABLE")
        lines.append("  region " + ", ".join(bits))
    for row in status.get("regions") or []:
        if row.get("variants"):
            split = ", ".join(f"{v}={n}" for v, n in row["variants"].items())
            lines.append(f"  variants in {row.get('name')}: {split}")
    for label, key in (("chosen", "chosen"), ("runner-up", "runnerUp"), ("before", "current")):
        plan = ex.get(key)
        if plan:
            reps = ", ".join(f"{k}={v}" for k, v in sorted(plan.get("replicas", {}).items()))
            lines.append(
                f"  {label:<9} {reps or 'nothing'}: {plan.get('costPerHour')} {cur}/h, "
                f"{plan.get('powerWatts')} W, {plan.get('carbonGramsPerHour')} gCO2/h"
            )
    if ex.get("bindingConstraint"):
        lines.append(f"  binding constraint: {ex['bindingConstraint']}")
    if status.get("savingsPercent") is not None:
        lines.append(
            f"  cost {status.get('costPerHour')} {cur}/h vs "
            f"{status.get('counterfactualCostPerHour')} all in the home region: "
            f"{status.get('savingsPercent')} % saved"
        )
    conditions: list[dict[str, Any]] = status.get("conditions", [])
    zero = next((c for c in conditions if c.get("type") == "ScaledToZero"), {})
    if zero:
        state = "asleep" if zero.get("status") == "True" else "awake"
        lines.append(
            f"  scale to zero: {state} since {zero.get('lastTransitionTime')} "
            f"({zero.get('reason')}): {zero.get('message')}"
        )
    for note in ex.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def run_explain(args: argparse.Namespace) -> int:
    from kubernetes import client

    from wattscale.api.common import GROUP, VERSION
    from wattscale.clusters.client import hub_client

    api = client.CustomObjectsApi(hub_client())
    try:
        obj = cast(
            dict[str, Any],
            api.get_namespaced_custom_object(
                GROUP, VERSION, args.namespace, "inferencedeployments", args.name
            ),
        )
    except client.exceptions.ApiException as err:
        print(f"wattscale explain: cannot read {args.namespace}/{args.name}: {err.reason}")
        return 1
    if args.output == "yaml":
        print(yaml.safe_dump((obj.get("status") or {}).get("explanation") or {}, sort_keys=False))
    else:
        print(explain_text(obj))
    return 0
