"""The world the operator e2e tests run in: feeds, emulated vLLM + DCGM, Prometheus, the operator.

Real parts: the hub and three region clusters (KWOK nodes, real API servers, real Deployment
controllers), one real Prometheus per region scraping an emulated vLLM/DCGM per region through
HTTP service discovery, a feed server answering price and carbon CSVs in the shape of the shared
data, and the operator itself as a subprocess (`wattscale run`), exactly as a user starts it out
of cluster: under the Helm chart's ServiceAccount (the chart is installed on the hub for each
world, see ``chart.operator_identity``), so every scenario also proves the chart's RBAC is not too
little; member clusters are reached with the kubeconfigs of the Region Secrets, as in production.
A world fails at its end if the operator's log shows the API server refusing it anything.

One more real Prometheus scrapes the operator's own ``/metrics`` (1 s, ``honor_labels``, the same
port across operator restarts), so that tests can run the chart's dashboard queries against what
the operator exported during the scenario (``World.dashboard_gaps``).

A balancer thread plays the part of the load balancer and the kubelet: it reads each region's
Ready replicas from its cluster (every workload of the deployment: one per GPU variant), tells
that region's emulator how many vLLM pods it has, and splits the users' total load over all
Ready replicas in proportion to what each serves within the SLO (as a load-aware gateway would:
a region's engine may be slower, see ``build_world``'s ``engines``).
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chart import (
    SCALE_TO_ZERO_METRIC,
    VARIANT_METRIC,
    Identity,
    dashboard_gaps,
    member_identities,
    operator_identity,
    rbac_refusals,
)
from operator_clock import (
    COLD_START_SECONDS,
    INTERVAL_SECONDS,
    RATE_WINDOW_SECONDS,
    REGION_INTERVAL_SECONDS,
    SCALE_DOWN_STABILIZATION_SECONDS,
    STALLED,
    OperatorClock,
)
from stack import KubectlError, Stack

from tests.fakes.gateway_emulator import GatewayServer
from tests.fakes.prometheus import PrometheusServer, free_port, http_sd_config
from tests.fakes.vllm_emulator import (
    ConstantLoad,
    Emulator,
    EmulatorServer,
    EngineParams,
    measure_capacity,
)
from tests.series import runs
from wattscale.clusters.render import LABEL_DEPLOYMENT

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "wattscale-system"
PRODUCT = "NVIDIA-H100-80GB-HBM3"
CARBON_G_PER_KWH = 300.0
"""Grid carbon intensity every region's carbon feed reports unless a test sets another."""
EMULATED_CAPACITY_TOKENS_PER_SECOND = measure_capacity(1.0, 0.05, seconds=120, iterations=10)
"""Output tok/s one emulated vLLM replica serves within p95 TTFT 1 s / TPOT 50 ms for the
constant load the balancer offers (1,000-token prompts, 200-token outputs): found by bisection
on the emulator's exact p95s in virtual time (~2,945; half a second, deterministic). Loads in
the scenarios stay clear of multiples of it: the operator judges the SLO from vLLM's histograms
and may rightly learn a few per cent more, so a load at a multiple would make the need a coin
toss."""


def slo_needs(tokens_per_second: float) -> int:
    """Replicas the SLO needs for this load: what one emulated replica serves within it."""
    return math.ceil(tokens_per_second / EMULATED_CAPACITY_TOKENS_PER_SECOND)


class Samples:
    """What the status said at each poll: desired per region, and each new decision (for a
    failure message that says why the operator did what it did)."""

    def __init__(self, regions: list[str]) -> None:
        self.regions = regions
        self.desired: list[dict[str, int]] = []
        self.shifting: list[bool] = []
        self.decisions: list[str] = []
        self.decision_of: list[int] = []
        """Per sample, the index of the decision its status showed."""

    def take(self, status: dict[str, Any]) -> dict[str, Any]:
        desired = {r["name"]: r["desiredReplicas"] for r in status.get("regions", [])}
        self.desired.append({region: desired.get(region, 0) for region in self.regions})
        self.shifting.append(bool(status.get("shift")))
        last = status.get("lastDecision") or {}
        ex = status.get("explanation") or {}
        line = (
            f"{last.get('reason')}: {last.get('message')} [demand "
            f"{ex.get('demandTokensPerSecond')}, need {ex.get('needTokensPerSecond')}, capacity "
            f"{status.get('capacityTokensPerSecondPerReplica')} ({ex.get('capacitySource')})]"
        )
        breaches = [n for n in ex.get("notes") or [] if "over the SLO; its queue" in n]
        if breaches:
            line += " " + "; ".join(breaches)
        if not self.decisions or self.decisions[-1] != line:
            self.decisions.append(line)
        self.decision_of.append(len(self.decisions) - 1)
        return status

    def moves(self, region: str, start: int = 0) -> str:
        """Each change of one region's desired replicas from sample ``start`` on, with the
        decision that made it, oldest first: the last line of a failure message is the turn."""
        lines = []
        for i in range(max(start, 1), len(self.desired)):
            before, after = self.desired[i - 1][region], self.desired[i][region]
            if before != after:
                lines.append(
                    f"{region} {before} -> {after} by {self.decisions[self.decision_of[i]]}"
                )
        return "\n".join(lines)

    def totals(self) -> list[int]:
        return [sum(d.values()) for d in self.desired]

    def at_rest(self, region: str) -> list[int]:
        """One region's desired replicas, read while no make-before-break move was under way
        (status.shift): a move adds the new side before it removes the old one, which is not a
        flap."""
        pairs = zip(self.desired, self.shifting, strict=True)
        return [d[region] for d, moving in pairs if not moving]

    def report(self) -> str:
        """Each region's desired series, then the decisions in order."""
        series = [f"{r}: {runs([d[r] for d in self.desired])}" for r in self.regions]
        return "\n".join([*series, *self.decisions])


class PriceBoard:
    """An HTTP server with one hourly price CSV and one carbon CSV per region, set by the test.

    ``broken`` regions answer 503 for their price (a dead price feed); carbon keeps answering.
    """

    def __init__(self, prices_per_kwh: dict[str, float]) -> None:
        self.prices = dict(prices_per_kwh)
        self.carbon = dict.fromkeys(prices_per_kwh, CARBON_G_PER_KWH)
        self.broken: set[str] = set()
        board = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, _, name = self.path.strip("/").rpartition("/")
                region = name.removesuffix(".csv")
                if kind == "carbon" and region in board.carbon:
                    body = board.carbon_csv(region).encode()
                elif kind == "" and region in board.prices and region not in board.broken:
                    body = board.csv(region).encode()
                else:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, region: str) -> str:
        return f"http://127.0.0.1:{self.port}/{region}.csv"

    def carbon_url(self, region: str) -> str:
        return f"http://127.0.0.1:{self.port}/carbon/{region}.csv"

    def csv(self, region: str) -> str:
        """The shape of ../shared/data/prices/<REGION>.csv, around now."""
        per_mwh = self.prices[region] * 1000
        rows = ["timestamp_utc,region,price_per_mwh,currency,price_usd_mwh"]
        rows += [f"{t},{region},{per_mwh:.2f},USD,{per_mwh:.2f}" for t in _hours_around_now()]
        return "\n".join(rows) + "\n"

    def carbon_csv(self, region: str) -> str:
        """The shape of ../shared/data/carbon/<REGION>.csv, around now."""
        rows = ["timestamp_utc,region,gco2_per_kwh"]
        rows += [f"{t},{region},{self.carbon[region]:.1f}" for t in _hours_around_now()]
        return "\n".join(rows) + "\n"

    def stop(self) -> None:
        self.httpd.shutdown()


def _hours_around_now() -> list[str]:
    """Hourly timestamps from 3 h ago to 23 h ahead, as the shared data writes them."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return [(hour + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(-3, 24)]


@dataclass
class RegionRig:
    """One region's emulator and Prometheus."""

    name: str
    emulator: EmulatorServer
    prometheus: PrometheusServer
    capacity_tokens_per_second: float = EMULATED_CAPACITY_TOKENS_PER_SECOND
    """What one replica of this region's engine serves within the SLO (the balancer's weight)."""
    replicas: int = 0
    tokens_per_second: float = 0.0

    def control(self, replicas: int, tokens_per_second: float) -> None:
        """Tell the emulator what runs and what it gets (only when something changed)."""
        emu = self.emulator.emulator
        if replicas != self.replicas:
            emu.set_replicas(replicas)
            self.replicas = replicas
        if abs(tokens_per_second - self.tokens_per_second) > 0.01 * max(1.0, tokens_per_second):
            emu.set_load(ConstantLoad(tokens_per_second))
            self.tokens_per_second = tokens_per_second


@dataclass
class World:
    stack: Stack
    namespace: str
    name: str
    board: PriceBoard
    rigs: dict[str, RegionRig]
    identity: Identity
    """The chart release whose ServiceAccount the operator runs as."""
    operator_prometheus: PrometheusServer
    """Scrapes the operator's /metrics on ``metrics_port``."""
    metrics_port: int
    clock: OperatorClock
    """Counts the operator's passes for this world's InferenceDeployment (waits are in passes)."""
    total_tokens_per_second: float = 0.0
    """What users send; the balancer ramps the offered load towards it at ``ramp_per_second``."""
    ramp_per_second: float = 250.0
    offered_tokens_per_second: float = 0.0
    operator: subprocess.Popen[bytes] | None = None
    operator_log: Path | None = None
    operator_logs: list[Path] = field(default_factory=list)
    """Every log of every operator process this world started (restarts make new ones)."""
    ready_history: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    # --- the balancer ----------------------------------------------------------------------

    def ready_workloads(self, region: str) -> dict[str, int]:
        """Ready replicas of each of the deployment's workloads (one per GPU variant) in one
        region; empty when its cluster does not answer."""
        try:
            selector = f"{LABEL_DEPLOYMENT}={self.name}"
            found = self.stack.get_json(
                region, "deployments", "-n", self.namespace, "-l", selector, timeout=10
            )
        except KubectlError:
            return {}
        return {
            d["metadata"]["name"]: int((d.get("status") or {}).get("readyReplicas") or 0)
            for d in found.get("items", [])
        }

    def ready_replicas(self) -> dict[str, int]:
        """Ready replicas per region, over all the deployment's workloads (0: none, or the
        cluster does not answer)."""
        return {region: sum(self.ready_workloads(region).values()) for region in self.rigs}

    def _balance_forever(self) -> None:
        while not self._stop.is_set():
            try:
                ready = self.ready_replicas()
            except Exception:  # a cluster being stopped by a test: try again
                time.sleep(0.5)
                continue
            self.ready_history.append((time.time(), ready))
            serves = {r: ready[r] * rig.capacity_tokens_per_second for r, rig in self.rigs.items()}
            total = sum(serves.values())
            # Users do not arrive all at once: the offered load ramps towards the target.
            gap = self.total_tokens_per_second - self.offered_tokens_per_second
            step = self.ramp_per_second * 0.5
            self.offered_tokens_per_second += max(-step, min(step, gap))
            for region, rig in self.rigs.items():
                share = self.offered_tokens_per_second * serves[region] / total if total else 0.0
                rig.control(replicas=ready[region], tokens_per_second=share)
            self._stop.wait(0.5)

    def start_balancer(self) -> None:
        threading.Thread(target=self._balance_forever, name="balancer", daemon=True).start()

    # --- the operator ----------------------------------------------------------------------

    def start_operator(self, tmp: Path) -> None:
        """Start `wattscale run` under the chart's ServiceAccount, /metrics on ``metrics_port``."""
        self.operator_log = tmp / f"operator-{int(time.time())}.log"
        self.operator_logs.append(self.operator_log)
        self.clock.restarted()
        env = dict(self.stack.env)
        env.update(
            # SIGABRT then dumps every thread's stack into the log (see stall_report).
            PYTHONFAULTHANDLER="1",
            KUBECONFIG=str(self.identity.kubeconfig),
            WATTSCALE_OPERATOR_NAMESPACE=OPERATOR_NAMESPACE,
            WATTSCALE_RATE_WINDOW_SECONDS=f"{RATE_WINDOW_SECONDS:g}",
            WATTSCALE_REGION_INTERVAL_SECONDS=f"{REGION_INTERVAL_SECONDS:g}",
        )
        cmd = [
            sys.executable,
            "-m",
            "wattscale.cli",
            "run",
            "--standalone",
            "--all-namespaces",
            "--interval",
            f"{INTERVAL_SECONDS:g}",
            "--metrics-port",
            str(self.metrics_port),
            "--metrics-address",
            "127.0.0.1",
        ]
        log = self.operator_log.open("wb")
        self.operator = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        # No core file in the repository if stall_report ever aborts it.
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(self.operator.pid, resource.RLIMIT_CORE, (0, 0))

    def kill_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.send_signal(signal.SIGKILL)
            self.operator.wait(timeout=10)
        self.operator = None

    def stop_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.terminate()
            try:
                self.operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait(timeout=10)
        self.operator = None

    def operator_output(self, chars: int = 4000) -> str:
        if self.operator_log is None or not self.operator_log.exists():
            return ""
        return self.operator_log.read_text(errors="replace")[-chars:]

    def rbac_refusals(self) -> list[str]:
        """Lines of any of this world's operator logs where the hub refused the operator."""
        return [
            f"{log.name}: {line}"
            for log in self.operator_logs
            if log.exists()
            for line in rbac_refusals(log.read_text(errors="replace"))
        ]

    def dashboard_gaps(self, feature: str = "") -> list[str]:
        """Dashboard queries the operator's Prometheus refuses or has no data for (chart.py):
        those of one feature's panels (``"scale-to-zero"``, ``"variants"``: their metrics are
        exported only for deployments that use it), or every other one."""
        features = {"scale-to-zero": SCALE_TO_ZERO_METRIC, "variants": VARIANT_METRIC}
        if feature:
            metric = features[feature]
            return dashboard_gaps(self.operator_prometheus, keep=lambda expr: metric in expr)
        return dashboard_gaps(
            self.operator_prometheus,
            keep=lambda expr: not any(m in expr for m in features.values()),
        )

    def get(self) -> dict[str, Any]:
        return self.stack.get_json(
            self.stack.hub, "inferencedeployments", self.name, "-n", self.namespace
        )

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.get().get("status") or {}
        return status

    def condition(self, type_: str) -> dict[str, Any]:
        for c in self.status().get("conditions", []):
            if c["type"] == type_:
                return dict(c)
        return {}

    def desired(self) -> dict[str, int]:
        return {r["name"]: r["desiredReplicas"] for r in self.status().get("regions", [])}

    def events(self) -> list[dict[str, Any]]:
        data = self.stack.get_json(
            self.stack.hub,
            "events",
            "-n",
            self.namespace,
            "--field-selector",
            f"involvedObject.name={self.name}",
        )
        return list(data.get("items", []))

    def wait(self, what: str, check: Callable[[], bool], passes: int) -> None:
        """Poll ``check`` until it holds, for at most ``passes`` passes of the operator (see
        operator_clock.py: the budget stretches with a busy machine). A ``check`` that raises is
        "not yet"; an operator that died ends the wait at once."""
        try:
            self.clock.wait(what, check, passes, alive=self.alive, describe=self.describe)
        except AssertionError as err:
            if STALLED not in str(err):
                raise
            raise AssertionError(f"{err}\n{self.stall_report()}") from None

    def stall_report(self) -> str:
        """Where a stalled operator is stuck: SIGABRT makes it dump every thread's stack into
        its log (PYTHONFAULTHANDLER) and exit; the world's teardown copes without it."""
        if self.operator is None or self.operator.poll() is not None:
            return "(no operator process to ask)"
        self.operator.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.operator.wait(timeout=10)
        return f"stacks of the stalled operator:\n{self.operator_output(12000)}"

    def let_pass(self, passes: int, each: Callable[[], object] | None = None) -> None:
        """Let ``passes`` operator passes go by, calling ``each`` about once a second."""

        def sample() -> None:
            self.alive()
            if each is not None:
                each()

        self.clock.let_pass(passes, sample)

    def alive(self) -> None:
        """Fail at once, with its log, if the operator process died."""
        if self.operator is not None and self.operator.poll() is not None:
            raise AssertionError(
                f"the operator exited ({self.operator.returncode}):\n{self.operator_output()}"
            )

    def describe(self) -> str:
        try:
            status = json.dumps(self.status(), indent=1)[:3000]
        except Exception as exc:  # a failure message must not fail
            status = f"(unreadable: {exc})"
        try:
            events = "\n".join(
                f"  {e.get('lastTimestamp') or e.get('eventTime')} x{e.get('count', 1)} "
                f"{e.get('reason')}: {str(e.get('message', ''))[:300]}"
                for e in sorted(
                    self.events(), key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""
                )[-25:]
            )
        except Exception as exc:
            events = f"(unreadable: {exc})"
        return (
            f"status: {status}\nlast events:\n{events}\n"
            f"operator log tail:\n{self.operator_output()}"
        )

    def close(self) -> None:
        self._stop.set()
        self.stop_operator()
        self.operator_prometheus.cleanup()
        for rig in self.rigs.values():
            rig.prometheus.cleanup()
            rig.emulator.stop()
        self.board.stop()


H100_OFFER: dict[str, Any] = {
    "product": PRODUCT,
    "hourlyCost": "2.50",
    "idleWatts": 90,
    "maxWatts": 690,
    "hostWattsPerGpu": 100,
    "available": 16,
}
"""What every Region offers unless a test says otherwise (the dev stack's nodes are H100s)."""


def region_manifest(
    name: str,
    board: PriceBoard,
    prometheus_url: str,
    extra_energy: dict[str, Any] | None = None,
    kubeconfig_secret: str | None = None,
    gpus: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Region on the hub; ``kubeconfig_secret``: the Secret (in the operator's namespace) the
    operator reaches the member with (default: hack/dev-up.sh's admin one); ``gpus``: its GPU
    offers (default: 16 H100 at 2.50 an hour, the products dev-up.sh's nodes carry)."""
    energy: dict[str, Any] = {
        "currency": "USD",
        "pue": "1.2",
        "price": {
            "type": "csv",
            "url": board.url(name),
            "refreshSeconds": 1,
            "timeoutSeconds": 2,
            "maxRetries": 0,
            "maxAgeSeconds": 10,
        },
        "carbon": {
            "type": "csv",
            "url": board.carbon_url(name),
            "refreshSeconds": 1,
            "timeoutSeconds": 2,
            "maxRetries": 0,
            "maxAgeSeconds": 10,
        },
    }
    energy.update(extra_energy or {})
    return {
        "apiVersion": "wattscale.io/v1alpha1",
        "kind": "Region",
        "metadata": {"name": name},
        "spec": {
            "clusterRef": {
                "kubeconfigSecretRef": {
                    "namespace": OPERATOR_NAMESPACE,
                    "name": kubeconfig_secret or f"region-{name}-kubeconfig",
                    "key": "kubeconfig",
                }
            },
            "prometheus": {"url": prometheus_url, "timeoutSeconds": 3},
            "energy": energy,
            "gpus": gpus or [H100_OFFER],
        },
    }


def deployment_manifest(name: str, namespace: str, regions: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "wattscale.io/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "engine": {"gpuProduct": PRODUCT, "gpusPerReplica": 1},
            # The emulator's replica (tests/fakes/vllm_emulator.py) serves ~2,900 output tok/s
            # within these targets (EMULATED_CAPACITY_TOKENS_PER_SECOND); the hint is lower.
            "slo": {"ttftP95Ms": 1000, "tpotP95Ms": 50, "minReplicas": 1, "maxReplicas": 24},
            "placement": {
                "regions": regions,
                "homeRegion": regions[0],
                "objective": "cost",
                "minSavingsPercent": 2,
                "coldStartSeconds": COLD_START_SECONDS,
                "scaleDownStabilizationSeconds": SCALE_DOWN_STABILIZATION_SECONDS,
                "drainSeconds": 2,
                "maxShiftPerStep": 4,
            },
            "capacity": {"tokensPerSecondPerReplica": 2500},
        },
    }


def build_world(
    stack: Stack,
    namespace: str,
    name: str,
    prices: dict[str, float],
    identity: Identity,
    gateway: GatewayServer | None = None,
    member_secrets: dict[str, str] | None = None,
    engines: dict[str, EngineParams] | None = None,
    offers: dict[str, list[dict[str, Any]]] | None = None,
    variants: dict[str, str] | None = None,
) -> World:
    """``gateway``: an emulated EPP, scraped by the first region's Prometheus only;
    ``member_secrets``: region -> the kubeconfig Secret its Region names (see region_manifest);
    ``engines``: region -> the emulated engine there, when not the default H100 (one engine per
    region: the emulator serves one performance model); ``offers``: region -> its GPU offers;
    ``variants``: region -> the variant its emulated pods serve and are labelled with (default:
    the first, whose pods carry no variant label)."""
    board = PriceBoard(prices)
    rigs: dict[str, RegionRig] = {}
    for i, region in enumerate(prices):
        engine = (engines or {}).get(region)
        emu = Emulator(
            ConstantLoad(0.0),
            replicas=0,
            namespace=namespace,
            deployment=name,
            params=engine,
            variant=(variants or {}).get(region, ""),
        )
        server = EmulatorServer(emu).start()
        scrapes = [http_sd_config(f"http://{server.address}/sd", interval_seconds=1.0)]
        if gateway is not None and i == 0:
            scrapes.append(gateway.scrape_config())
        prom = PrometheusServer(scrapes, scrape_interval_seconds=1.0).start()
        rigs[region] = RegionRig(region, server, prom)
        if engine is not None:
            rigs[region].capacity_tokens_per_second = measure_capacity(
                1.0, 0.05, params=engine, seconds=120, iterations=10
            )
    metrics_port = free_port()
    # The operator's own metrics, as the chart's ServiceMonitor scrapes them (honorLabels keeps
    # the operator's namespace/deployment labels, which the dashboards select on).
    operator_scrape = {
        "job_name": "wattscale",
        "honor_labels": True,
        "scrape_interval": "1s",
        "scrape_timeout": "800ms",
        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
    }
    world = World(
        stack=stack,
        namespace=namespace,
        name=name,
        board=board,
        rigs=rigs,
        identity=identity,
        operator_prometheus=PrometheusServer([operator_scrape]).start(),
        metrics_port=metrics_port,
        clock=OperatorClock(f"http://127.0.0.1:{metrics_port}/metrics", namespace, name),
    )
    for region, rig in rigs.items():
        secret = (member_secrets or {}).get(region)
        gpus = (offers or {}).get(region)
        stack.apply(
            stack.hub, region_manifest(region, board, rig.prometheus.url, None, secret, gpus)
        )
    return world


@contextlib.contextmanager
def open_world(
    stack: Stack,
    tmp: Path,
    prices: dict[str, float],
    name: str = "llama",
    namespace_prefix: str = "e2e-op",
    gateway: GatewayServer | None = None,
    engines: dict[str, EngineParams] | None = None,
    offers: dict[str, list[dict[str, Any]]] | None = None,
    variants: dict[str, str] | None = None,
) -> Iterator[World]:
    """A running world: a fresh namespace, Regions on the hub, balancer and operator started.

    The operator runs under the ServiceAccount of a chart release made for this world on the
    hub, and in each region as the member role docs/install.md documents (its Regions name
    kubeconfig Secrets of that ServiceAccount's token, :func:`chart.member_identities`). The
    caller applies its InferenceDeployment (``deployment_manifest``) and sets the load. On exit
    the InferenceDeployment goes first (so the operator's finalizer cleans the members), then the
    operator, rigs, Regions, release and namespace; then, if the operator was ever refused
    anything (HTTP 403), the world fails with those log lines. Only one world owns the hub's
    Regions at a time (``Stack.regions_owned``).
    """
    with stack.regions_owned():
        release_regions(stack, list(prices))  # what a world that died before its cleanup left
        namespace = f"{namespace_prefix}-{uuid.uuid4().hex[:6]}"
        stack.kubectl(stack.hub, "create", "namespace", namespace)
        with (
            operator_identity(stack, OPERATOR_NAMESPACE, tmp / "identity") as identity,
            member_identities(stack, list(prices), OPERATOR_NAMESPACE, tmp / "members") as secrets,
        ):
            world = build_world(
                stack, namespace, name, prices, identity, gateway, secrets,
                engines=engines, offers=offers, variants=variants,
            )  # fmt: skip
            try:
                world.start_balancer()
                world.start_operator(tmp)
                yield world
            finally:
                stack.kubectl(
                    stack.hub,
                    "delete",
                    "inferencedeployment",
                    "--all",
                    "-n",
                    namespace,
                    "--timeout=60s",
                    check=False,
                )
                world.close()
                release_regions(stack, list(prices))
                stack.kubectl(
                    stack.hub, "delete", "namespace", namespace, "--wait=false", check=False
                )
        refused = world.rbac_refusals()
        assert not refused, (
            "the hub or a member refused the operator (running as the chart's ServiceAccount "
            f"{identity.service_account} on the hub, docs/install.md's member role in the "
            "regions) something: that RBAC is too little:\n" + "\n".join(refused[:20])
        )


def release_regions(stack: Stack, regions: list[str]) -> None:
    """Delete these Regions from the hub (they carry no finalizer, so no operator is needed)."""
    for region in regions:
        stack.kubectl(
            stack.hub,
            "delete",
            "region",
            region,
            "--ignore-not-found",
            "--timeout=30s",
            check=False,
        )
