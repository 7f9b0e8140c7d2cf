"""Fleet-scale benchmark (not a test): N InferenceDeployments x 3 regions on the operator's path.

Each configuration runs in its own worker process, so CPU and RSS are the operator's alone:
the worker builds a real :class:`RegionDirectory` (real ``MetricsReader`` over HTTP, real CSV
price and carbon feeds from ``../shared/data``) whose member clusters are the test fakes, and
drives :class:`Reconciler.reconcile` for every deployment, pass after pass, on a virtual clock
30 s apart, exactly as the kopf timer would call it (the hub status carried from pass to
pass; a hub write counted whenever the handler would PATCH). Prometheus is a canned server in
another process on 127.0.0.1 (one URL prefix per region) that answers every instant and range
query the reader sends, per deployment or aggregated ``by`` the deployment label, and counts
them.

Two paths, in the same run:
  old  today's per-deployment reads (every deployment queries each region's Prometheus);
  new  the fleet path (one snapshot per Region per pass, shared by every deployment).

Printed per (path, N): CPU ms per deployment per pass and CPU s per pass in the steady state,
the CPU of the first pass after a (re)start ("warm": with the warm-start budget, at most 50
deployments replay their Prometheus history per interval; the rest, and the forecasters
settling, happen in unmeasured passes before the steady ones), the passes whose sweep took
longer than the 30-s interval in wall time (on a shared machine: see the load), instant and
range queries per region per steady pass, queries per region in the first pass, hub status
writes in the last pass (the canned readings are constant, so a settled pass that changes
nothing writes nothing) and peak RSS. The old path runs at N = 10 and 100 by default
(``--old-max``): at 1,000 it needs minutes of CPU per pass, which is the point. The last three
lines are ``scale_n1000_cpu_s_per_pass=``, ``prometheus_queries_per_region_per_pass=`` (new path,
steady passes, N = 1,000, instant queries) and ``planner_fleet_100_s=``.

Sharded (``--shards 2 --shard-sizes 3000``): the fleet of N deployments is served by K
operator replicas, each in turn in its own worker process: every timer fires for every
deployment, the kopf handler's ``owned_pass`` returns at once for the others' (the shards as
the rendezvous hash over K settled Leases gives them), so each replica's CPU per pass covers
its shard plus the early returns. Printed per replica, then the largest replica's CPU per
owned deployment against one replica's at the largest single-replica N.

Usage: ``python bench/scale.py [--sizes 10,100,1000,3000] [--passes 3] [--old-max 100]
[--shards 2 --shard-sizes 3000 --shard-passes 2]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from urllib.request import urlopen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMESPACE = "ml-serving"
REGIONS = {"us-west": "US-CAL-CISO", "us-east": "US-MIDA-PJM", "us-south": "US-TEX-ERCO"}
INTERVAL_SECONDS = 30.0
DEPLOYMENT_LABEL = "wattscale_io_deployment"

# ------------------------------------------------------------------------- canned Prometheus

_DEPLOYMENT_RE = re.compile(DEPLOYMENT_LABEL + r'="([^"]+)"')
_AGE_NAME_RE = re.compile(r'"ws_name", "([^"]+)"')
_QUANTILE_RE = re.compile(r"histogram_quantile\(([0-9.]+)")


def _value(query: str) -> float | None:
    """The canned value of one (per-deployment) reading; None: an empty vector."""
    if "== 0" in query:
        return None  # no scrape target is down
    if "timestamp(" in query:
        return 5.0  # seconds since the newest sample
    if "histogram_quantile" in query:
        q = float(_QUANTILE_RE.search(query).group(1))  # type: ignore[union-attr]
        base = 0.30 if "time_to_first_token" in query else 0.030
        return base if q >= 0.9 else base / 2
    table = (
        ("count(up", 2.0),
        ("count by", 2.0),
        ("DCGM_FI_DEV_TOTAL_ENERGY", 216_000.0),
        ("DCGM_FI_DEV_GPU_UTIL", 0.6),
        ("count(", 2.0),
        ("DCGM_FI_DEV_POWER_USAGE", 900.0),
        ("generation_tokens", 4_000.0),
        ("prompt_tokens", 12_000.0),
        ("request_success", 10.0),
        ("num_requests_running", 24.0),
        ("num_requests_waiting", 0.0),
        ("cache_usage", 0.3),
    )
    for needle, value in table:
        if needle in query:
            return value
    return 1.0


class _Canned:
    """State shared by the handler threads: counts per region, the deployments that exist."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {}
        self.deployments: list[str] = []

    def count(self, region: str, kind: str) -> None:
        with self.lock:
            by_kind = self.counts.setdefault(region, {})
            by_kind[kind] = by_kind.get(kind, 0) + 1


def _samples(
    state: _Canned, query: str, now: float, ranged: bool, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    match = _DEPLOYMENT_RE.search(query)
    names = [match.group(1)] if match else list(state.deployments)
    grouped = match is None
    ages = _AGE_NAME_RE.findall(query)
    value = _value(query)
    if value is None:
        return []
    out: list[dict[str, Any]] = []
    for name in names:
        labels: dict[str, str] = {"namespace": NAMESPACE, DEPLOYMENT_LABEL: name} if grouped else {}
        for metric in [{**labels, "ws_name": a} for a in ages] or [labels]:
            if ranged:
                points = []
                t = start
                while t <= end:
                    points.append([t, repr(value)])
                    t += step
                out.append({"metric": metric, "values": points})
            else:
                out.append({"metric": metric, "value": [now, repr(value)]})
    return out


def serve(port_file: Path) -> None:
    """Run the canned Prometheus until killed; writes its port to ``port_file``."""
    state = _Canned()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _params(self) -> dict[str, str]:
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                body = self.rfile.read(length).decode()
                params.update({k: v[0] for k, v in parse_qs(body).items()})
            return params

        def _send(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            path = urlparse(self.path).path
            params = self._params()
            if path == "/bench/reset":
                with state.lock:
                    state.counts = {}
                    state.deployments = [d for d in params.get("deployments", "").split(",") if d]
                self._send({"ok": True})
                return
            if path == "/bench/counts":
                with state.lock:
                    self._send(state.counts)
                return
            parts = path.strip("/").split("/")  # r/<region>/api/v1/query[_range]
            region, endpoint = parts[1], parts[-1]
            ranged = endpoint == "query_range"
            state.count(region, endpoint)
            query = params.get("query", "")
            now = time.time()
            result = _samples(
                state,
                query,
                now,
                ranged,
                float(params.get("start", now)),
                float(params.get("end", now)),
                float(str(params.get("step", "60")).rstrip("s")),
            )
            kind = "matrix" if ranged else "vector"
            self._send({"status": "success", "data": {"resultType": kind, "result": result}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def _get(url: str) -> Any:
    with urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


# -------------------------------------------------------------------------------- the worker


def _region_spec(name: str, zone: str, base: str) -> dict[str, Any]:
    from tests.cases.malformed import example
    from tests.fakes import data

    spec = copy.deepcopy(example("Region")["spec"])
    spec["clusterRef"] = None
    spec["prometheus"] = {"url": f"{base}/r/{name}"}
    spec["energy"] = {
        "currency": "USD",
        "pue": "1.2",
        "price": {"type": "csv", "path": str(data.prices_csv(zone))},
        "carbon": {"type": "csv", "path": str(data.carbon_csv(zone))},
    }
    spec["latency"] = [
        {"population": "us-users", "rttMs": 20},
        {"population": "eu-users", "rttMs": 150},
    ]
    return spec


def _deployment_spec() -> dict[str, Any]:
    from tests.cases.malformed import example

    spec = copy.deepcopy(example("InferenceDeployment")["spec"])
    spec["placement"]["regions"] = list(REGIONS)
    spec["placement"]["homeRegion"] = "us-west"
    return spec


def _feeds_read(directory: Any, now: datetime) -> None:
    """Wait (bounded) until every Region's background feed refreshers have read once."""
    for _ in range(600):
        snaps = [directory.get(r).signals.read(now) for r in REGIONS]
        if not any("not read yet" in p for s in snaps for p in s.problems(now)):
            return
        time.sleep(0.1)
    raise SystemExit("feeds were not read within 60 s")


def _catch_up(
    reconciler: Any,
    fleet: Any,
    names: list[str],
    spec: dict[str, Any],
    statuses: dict[str, dict[str, Any]],
    clock: list[float],
) -> None:
    """Passes (not measured) until every deployment has warm-started and its status settled."""
    from wattscale.controller.memory import WarmBudget

    budget = reconciler._warm_budget
    reconciler._warm_budget = WarmBudget(len(names), INTERVAL_SECONDS)
    for _ in range(6):
        clock[0] += INTERVAL_SECONDS
        if fleet is not None:
            fleet.refresh()
        for d in names:
            statuses[d] = {
                **statuses[d],
                **reconciler.reconcile(
                    name=d, namespace=NAMESPACE, spec=spec, status=statuses[d], generation=1
                ).status,
            }
    reconciler._warm_budget = budget


def _ownership(shard: str) -> Any:
    """Replica ``i`` of ``k`` (``"i/k"``): every replica's Lease live and settled for good."""
    from wattscale.fleet.shards import LeaseRecord, Ownership, ShardView

    i, k = (int(x) for x in shard.split("/"))
    members = [f"replica-{m}" for m in range(k)]
    leases = tuple(LeaseRecord(f"lease-{m}", m, 0.0, 1e15, 1e15) for m in members)
    ownership = Ownership(members[i], sharded=True)
    ownership.update(ShardView(members[i], leases, None, 0.0))
    return ownership


def worker(n: int, path: str, passes: int, base: str, shard: str = "") -> dict[str, Any]:
    """Run ``passes`` + 1 passes over ``n`` deployments; return the figures as a dict.

    With ``shard`` (``"i/k"``) this is replica ``i`` of ``k``: every timer still fires, the
    kopf handler's :func:`owned_pass` returns at once for deployments another replica owns."""
    from tests.fakes.world import T0, FakeCluster
    from wattscale.controller.handlers import owned_pass
    from wattscale.controller.reconcile import Reconciler
    from wattscale.controller.report import status_patch
    from wattscale.controller.settings import Settings
    from wattscale.fleet.ledger import QuotaLedger
    from wattscale.fleet.regions import RegionDirectory
    from wattscale.fleet.snapshot import FleetSnapshot

    names = [f"d-{i:04d}" for i in range(n)]
    _get(f"{base}/bench/reset?deployments={','.join(names)}")
    clusters = {r: FakeCluster(r) for r in REGIONS}
    directory = RegionDirectory(lambda ref: "", lambda name, spec, secrets: clusters[name])
    for region, zone in REGIONS.items():
        runtime = directory.upsert(region, 1, _region_spec(region, zone, base))
        if runtime.errors:
            raise SystemExit(f"region {region}: {runtime.errors}")
    clock = [T0.timestamp()]
    settings = Settings(interval_seconds=INTERVAL_SECONDS)
    fleet = ledger = None
    if path == "new":  # as handlers.build_registry wires it
        fleet = FleetSnapshot(directory, lambda: clock[0], feeds_period_seconds=INTERVAL_SECONDS)
        ledger = QuotaLedger()
    reconciler = Reconciler(directory, settings, clock=lambda: clock[0], fleet=fleet, ledger=ledger)
    ownership = _ownership(shard if shard else "0/1")
    if shard and ledger is not None:
        # As share_quotas wires it (the ceilings themselves are Lease I/O: none here).
        ledger.shard(lambda: ownership.predicate(clock[0]), lambda key: 1 << 30)
    spec = _deployment_spec()
    statuses: dict[str, dict[str, Any]] = {d: {} for d in names}
    owned = [d for d in names if ownership.owns(NAMESPACE, d, clock[0])]
    rows = []
    for p in range(passes + 2):
        if p == 1:
            # Not measured: the rest of the warm starts (spread over intervals after a restart)
            # and the forecasters settling, so the passes after it are the steady state.
            _catch_up(reconciler, fleet, owned, spec, statuses, clock)
            _get(f"{base}/bench/reset?deployments={','.join(names)}")
            continue
        clock[0] += INTERVAL_SECONDS
        writes = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if fleet is not None:
            fleet.refresh()
            if p == 0:
                _feeds_read(directory, datetime.fromtimestamp(clock[0], UTC))
        for d in names:
            outcome = owned_pass(
                reconciler,
                ownership,
                name=d,
                namespace=NAMESPACE,
                spec=spec,
                status=statuses[d],
                generation=1,
            )
            if outcome is None:
                continue  # another replica's
            if path == "old":
                writes += 1  # today: the handler patches the whole status on every pass
                statuses[d] = outcome.status
            else:
                patch = status_patch(statuses[d], outcome.status)
                writes += 1 if patch else 0
                statuses[d] = {**statuses[d], **patch}
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        counts = _get(f"{base}/bench/counts")
        _get(f"{base}/bench/reset?deployments={','.join(names)}")
        instant = [c.get("query", 0) for c in counts.values()]
        ranged = [c.get("query_range", 0) for c in counts.values()]
        rows.append(
            {
                "pass": p,
                "cpu_s": cpu,
                "wall_s": wall,
                "queries_per_region": max(instant) if instant else 0,
                "range_per_region": max(ranged) if ranged else 0,
                "writes": writes,
            }
        )
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    label = f"{path} {shard}" if shard else path
    return {"n": n, "path": label, "passes": rows, "rss_mib": rss_mib, "owned": len(owned)}


# ---------------------------------------------------------------------------------- the main


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    steady = result["passes"][1:]
    warm = result["passes"][0]  # the first pass after a (re)start
    cpu = sum(r["cpu_s"] for r in steady) / len(steady)
    return {
        "path": result["path"],
        "n": result["n"],
        "cpu_ms_per_deployment": 1000 * cpu / max(result["owned"], 1),
        "owned": result["owned"],
        "cpu_s_per_pass": cpu,
        "warm_cpu_s": warm["cpu_s"],
        "missed": sum(1 for r in result["passes"] if r["wall_s"] > INTERVAL_SECONDS),
        "queries_per_region": round(sum(r["queries_per_region"] for r in steady) / len(steady)),
        "warm_queries_per_region": warm["queries_per_region"] + warm["range_per_region"],
        "range_per_region": max(r["range_per_region"] for r in steady),
        "writes_per_pass": steady[-1]["writes"],
        "rss_mib": result["rss_mib"],
    }


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['path']:9} {row['n']:>5} {row['owned']:>5} {row['cpu_ms_per_deployment']:>10.1f} "
        f"{row['cpu_s_per_pass']:>10.2f} {row['warm_cpu_s']:>10.2f} "
        f"{row['missed']:>6} {row['queries_per_region']:>8} "
        f"{row['range_per_region']:>7} "
        f"{row['warm_queries_per_region']:>10} {row['writes_per_pass']:>7.0f} "
        f"{row['rss_mib']:>8.0f}",
        flush=True,
    )


def _run_worker(n: int, path: str, passes: int, base: str, shard: str = "") -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", str(n), "--path", path]
    cmd += ["--passes", str(passes), "--base", base]
    if shard:
        cmd += ["--shard", shard]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def planner_fleet_seconds(members: int = 100) -> tuple[float, str]:
    """Seconds for one fleet solve of ``members`` deployments sharing 3 regions under a binding
    quota (64 GPUs per region; together they need ~1.3x that), two user populations each, with
    explanation on; and a line on what it decided."""
    import random

    from wattscale.planner import (
        LatencyBudget,
        PlanRequest,
        PoolInput,
        PoolKey,
        Population,
        RegionInput,
        replica_power,
    )
    from wattscale.planner.fleet import FleetMember, plan_fleet

    rng = random.Random(7)
    power = replica_power("H100", 1)
    prices = {"us-west": 0.09, "us-east": 0.05, "us-south": 0.04}
    rtt = {"us-west": {"us": 20.0, "eu": 150.0}, "us-east": {"us": 40.0, "eu": 90.0}}
    quota = 64
    fleet = []
    for i in range(members):
        capacity = 6000.0
        regions = tuple(
            RegionInput(
                name=name,
                pools=(PoolInput("H100", 2.5, power.idle_watts, power.max_watts, capacity, quota),),
                price_per_kwh=price,
                carbon_g_per_kwh=300.0,
                rtt_ms=rtt.get(name, {"us": 30.0, "eu": 120.0}),
            )
            for name, price in prices.items()
        )
        demand = rng.uniform(1.0, 4.0) * capacity
        request = PlanRequest(
            now_seconds=0.0,
            regions=regions,
            demand_tokens_per_second=(demand,) * 10,
            latency=LatencyBudget(
                500.0, 250.0, (Population("us", 0.7), Population("eu", 0.3)), 50.0
            ),
        )
        fleet.append(FleetMember(f"ns/d-{i:03d}", request, priority=rng.choice([0, 0, 0, 1])))
    t0 = time.perf_counter()
    result = plan_fleet(fleet)
    seconds = time.perf_counter() - t0
    held = {k.region: sum(v.values()) for k, v in result.held.items()}
    bound = sum(1 for d in result.decisions.values() if d.explanation.binding_constraint == "quota")
    worst = max(
        sum(d.target.get(PoolKey(r, "H100"), 0) for d in result.decisions.values()) for r in prices
    )
    return seconds, (
        f"fleet solve: {members} deployments, GPUs held per region {held} (quota {quota}, "
        f"largest total target {worst}), {bound} bound by the quota"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,3000")
    parser.add_argument("--passes", type=int, default=6, help="steady passes after the warm-up")
    parser.add_argument("--old-max", type=int, default=100, help="largest N on the old path")
    parser.add_argument("--paths", default="old,new")
    parser.add_argument(
        "--shards", type=int, default=2, help="replicas sharing the --shard-sizes fleets"
    )
    parser.add_argument(
        "--shard-sizes", default="3000", help="N run as --shards replicas (each in turn)"
    )
    parser.add_argument(
        "--shard-passes", type=int, default=2, help="steady passes per replica when sharded"
    )
    parser.add_argument("--shard", default="", help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", default="new", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.passes, args.base, args.shard)))
        return

    port_file = Path(f"/tmp/wattscale-bench-scale-{os.getpid()}.port")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port_file.read_text()}"
        rows = []
        print(
            f"{'path':9} {'N':>5} {'owned':>5} {'cpu ms/dep':>10} {'cpu s/pass':>10} "
            f"{'warm cpu s':>10} "
            f"{'missed':>6} {'q/region':>8} {'range q':>7} {'warm q/reg':>10} {'writes':>7} "
            f"{'RSS MiB':>8}",
            flush=True,
        )
        for n in [int(s) for s in args.sizes.split(",")]:
            for path in args.paths.split(","):
                if path == "old" and n > args.old_max:
                    continue
                row = _summary(_run_worker(n, path, args.passes, base))
                rows.append(row)
                _print_row(row)
        sharded = []
        for n in [int(x) for x in args.shard_sizes.split(",") if x] if args.shards > 1 else []:
            for i in range(args.shards):
                row = _summary(_run_worker(n, "new", args.shard_passes, base, f"{i}/{args.shards}"))
                sharded.append(row)
                _print_row(row)
            mine = [r for r in sharded if r["n"] == n]
            singles = [r for r in rows if r["path"] == "new"]
            one = max(singles, key=lambda r: r["n"]) if singles else None
            worst = max(r["cpu_s_per_pass"] for r in mine)
            per_dep = max(r["cpu_ms_per_deployment"] for r in mine)
            versus = (
                f"; CPU per owned deployment vs one replica at N={one['n']}: "
                f"{per_dep / one['cpu_ms_per_deployment']:.3f}x"
                if one
                else ""
            )
            print(
                f"N={n} over {args.shards} replicas: owned {[r['owned'] for r in mine]}, "
                f"CPU s per pass per replica {[round(r['cpu_s_per_pass'], 2) for r in mine]} "
                f"(max {worst:.2f} of the {INTERVAL_SECONDS:.0f}-s interval){versus}"
            )
        for n in sorted({r["n"] for r in rows}):
            old = next((r for r in rows if r["n"] == n and r["path"] == "old"), None)
            new = next((r for r in rows if r["n"] == n and r["path"] == "new"), None)
            if old and new:
                print(
                    f"N={n}: new/old CPU per deployment "
                    f"{new['cpu_ms_per_deployment'] / old['cpu_ms_per_deployment']:.3f}, "
                    f"queries per region {new['queries_per_region']} vs "
                    f"{old['queries_per_region']}"
                )
        at1000 = next((r for r in rows if r["n"] == 1000 and r["path"] == "new"), None)
        cpu1000 = at1000["cpu_s_per_pass"] if at1000 else float("nan")
        queries = at1000["queries_per_region"] if at1000 else -1
        fleet_s, fleet_line = planner_fleet_seconds()
        print(fleet_line)
        print(f"scale_n1000_cpu_s_per_pass={cpu1000:.3f}")
        print(f"prometheus_queries_per_region_per_pass={queries}")
        print(f"planner_fleet_100_s={fleet_s:.4f}")
    finally:
        server.terminate()
        server.wait(timeout=10)
        port_file.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
