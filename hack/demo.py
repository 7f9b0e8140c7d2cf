"""The live demo behind `make demo`: the operator on the example, in accelerated time.

It runs the operator (`wattscale run`, exactly as the e2e suite does, under the Helm chart's
ServiceAccount when the world provides one) against the local stack (`make dev-up`: a hub and
three region clusters with fake GPU nodes), applies examples/llama-3.1-8b.yaml, and shows what it
decides with `kubectl get inferencedeployments -w` while a short story plays:

* electricity prices are real: the bundled sample (operator/wattscale/data/sample/prices) for
  CAISO NP15 (us-west), PJM DOM (us-east) and DE-LU (eu-central), one market hour every
  ``--seconds-per-hour`` seconds, served by a local HTTP feed in the CSV shape the operator reads;
* users' load rises; a demand-response event, announced 30 s ahead, empties one region for a
  while (the operator moves out make-before-break before it begins); load falls back.

What cannot run here is emulated at its real interface, as in the e2e tests: vLLM and DCGM
metrics come from tests/fakes/vllm_emulator.py through a real Prometheus per region, and a
balancer thread splits the load over the Ready replicas. Nothing here is part of the product.

Usage: hack/demo.py [--seconds-per-hour 10] [--story-seconds 300]   (see `make demo`)
"""

from __future__ import annotations

import argparse
import csv
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from operator_clock import step_passes  # noqa: E402
from operator_world import World, open_world, region_manifest  # noqa: E402
from stack import Stack, check_bins  # noqa: E402

SAMPLE = ROOT / "operator" / "wattscale" / "data" / "sample" / "prices"
MARKETS = {"us-west": "US-CAL-CISO", "us-east": "US-MIDA-PJM", "eu-central": "DE-LU"}
FIRST_HOUR = datetime(2024, 7, 8, 14, tzinfo=UTC)
"""Where the replay starts: a July afternoon in California, evening peak coming in PJM."""
EMULATED_TOKENS_PER_SECOND = 2500
"""What one emulated vLLM replica serves within the example's SLO (docs/metrics.md)."""
COLD_START_SECONDS = 10
"""The example's cold start (240 s for a real 8B model), accelerated like the market hours."""


def hub_kubectl(stack: Stack) -> list[str]:
    return [str(stack.bin_dir / "kubectl"), "--kubeconfig", str(stack.kubeconfig(stack.hub))]


def say(text: str) -> None:
    print(f"\033[1;36m[{time.strftime('%H:%M:%S')}] {text}\033[0m", flush=True)


def hourly_usd_per_kwh(market: str) -> list[tuple[datetime, float]]:
    """The bundled sample's hourly prices of one market, in USD/kWh, from ``FIRST_HOUR`` on."""
    with (SAMPLE / f"{market}.csv").open() as f:
        rows = [
            (datetime.fromisoformat(r["timestamp_utc"].replace("Z", "+00:00")), r["price_usd_mwh"])
            for r in csv.DictReader(f)
        ]
    return [(t, float(p) / 1000) for t, p in rows if t >= FIRST_HOUR]


def example_deployment(namespace: str) -> dict[str, Any]:
    """examples/llama-3.1-8b.yaml with what this stack cannot provide or needs sped up changed."""
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "llama-3.1-8b.yaml").read_text())
    manifest["metadata"]["namespace"] = namespace
    spec = manifest["spec"]
    changes = {
        "engine.env (HF token Secret)": "dropped: nothing downloads a model here",
        "engine.modelCache (PVC)": "dropped: the fake clusters have no storage provisioner",
        "placement.regions": "all three clusters of the stack",
        "placement.users": "dropped: the demo Regions declare no user latencies",
        "placement.objective": "cost (the demo feeds carry prices, not carbon)",
        "placement timers": f"coldStart {COLD_START_SECONDS} s, stabilisation 20 s, drain 4 s"
        " (accelerated time)",
        "capacity hint": f"{EMULATED_TOKENS_PER_SECOND} tok/s, what an emulated replica serves",
    }
    spec["engine"].pop("env", None)
    spec["engine"].pop("modelCache", None)
    spec["placement"].update(
        regions=list(MARKETS),
        objective="cost",
        coldStartSeconds=COLD_START_SECONDS,
        scaleDownStabilizationSeconds=20,
        drainSeconds=4,
    )
    spec["placement"].pop("users", None)
    spec["placement"].pop("carbonPricePerTonne", None)
    spec["slo"]["maxReplicas"] = 16
    spec["capacity"]["tokensPerSecondPerReplica"] = EMULATED_TOKENS_PER_SECOND
    say("applying examples/llama-3.1-8b.yaml, changed for this stack:")
    for what, why in changes.items():
        print(f"    {what}: {why}")
    return manifest


class Replay(threading.Thread):
    """Moves every region's price to the next market hour every ``seconds_per_hour``."""

    def __init__(self, world: World, seconds_per_hour: float) -> None:
        super().__init__(name="price-replay", daemon=True)
        self.world = world
        self.seconds_per_hour = seconds_per_hour
        self.series = {region: hourly_usd_per_kwh(m) for region, m in MARKETS.items()}
        self.stop = threading.Event()
        self.set_hour(0)

    def set_hour(self, index: int) -> None:
        hour = self.series["us-west"][index][0]
        prices = {region: s[index][1] for region, s in self.series.items()}
        self.world.board.prices.update(prices)
        cheapest = min(prices, key=lambda r: prices[r])
        shown = "  ".join(f"{r} {p * 1000:6.1f}" for r, p in prices.items())
        say(f"market hour {hour:%Y-%m-%d %H:%M}Z  USD/MWh: {shown}  (cheapest: {cheapest})")

    def run(self) -> None:
        index = 0
        while not self.stop.wait(self.seconds_per_hour):
            index = (index + 1) % len(self.series["us-west"])
            self.set_hour(index)


def _is_decimal(text: str) -> bool:
    head, dot, tail = text.partition(".")
    return bool(dot) and head.isdigit() and tail.isdigit()


def watch(stack: Stack, namespace: str) -> subprocess.Popen[str]:
    """`kubectl get inferencedeployments -w`, printing a row only when a column other than AGE
    and COST/H changed (the operator refreshes status, and the cost with the price, every loop)."""
    proc = subprocess.Popen(
        [
            *hub_kubectl(stack),
            "get",
            "inferencedeployments",
            "-n",
            namespace,
            "-o",
            "wide",
            "-w",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=stack.env,
    )

    def relay() -> None:
        last = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            columns = line.split()[:-1]  # AGE is last
            key = " ".join(c for c in columns if not _is_decimal(c))  # COST/H is the decimal
            if key != last:
                print("    " + line.rstrip(), flush=True)
                last = key

    threading.Thread(target=relay, name="watch", daemon=True).start()
    return proc


def run_savings(world: World) -> str:
    """What the whole run spent against the counterfactual (the SLO-safe count all in the home
    region), from the operator's own counters: the sums the dashboards' Savings panels take.
    The explanation's line is one pass's rates; this is the run's."""
    url = f"http://127.0.0.1:{world.metrics_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
    except OSError as exc:
        return f"the operator's /metrics did not answer: {exc}"
    sums: dict[str, float] = {}
    currency = "?"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("namespace") == world.namespace and sample.name.endswith("_total"):
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
                currency = sample.labels.get("currency", currency)
    spent = (
        sums.get("wattscale_energy_cost_total", 0.0)
        + sums.get("wattscale_gpu_cost_total", 0.0)
        - sums.get("wattscale_energy_credit_total", 0.0)
    )
    counterfactual = sums.get("wattscale_counterfactual_cost_total", 0.0)
    if counterfactual <= 0:
        return "no counterfactual cost counted yet"
    saved = 100.0 * (counterfactual - spent) / counterfactual
    return (
        f"over the whole run: {spent:.2f} {currency} spent vs {counterfactual:.2f} for the "
        f"SLO-safe count of every pass all in the home region (no cold starts, no hysteresis): "
        f"{saved:.1f} % saved"
    )


def story(world: World, args: argparse.Namespace) -> None:
    stack = world.stack
    world.total_tokens_per_second = 1500.0
    replay = Replay(world, args.seconds_per_hour)
    stack.apply(stack.hub, example_deployment(world.namespace))
    watcher = watch(stack, world.namespace)
    try:
        world.wait(
            "the first replicas are Ready",
            lambda: sum(world.ready_replicas().values()) >= 1,
            passes=2 * step_passes(COLD_START_SECONDS),
        )
        say(
            "replicas are Ready where power is cheapest; prices now move every "
            f"{args.seconds_per_hour:g} s (one market hour)"
        )
        replay.start()
        beat = args.story_seconds / 5
        time.sleep(beat)
        say("users arrive: load ramps from 1,500 to 12,000 output tokens/s")
        world.total_tokens_per_second = 12000.0
        time.sleep(beat)
        region = max(world.desired(), key=lambda r: world.desired()[r])
        begins, ends = time.time() + 30, time.time() + 30 + beat
        say(
            f"demand response: the grid operator announces that {region} sheds all GPU load "
            f"from {time.strftime('%H:%M:%S', time.localtime(begins))} for {beat:.0f} s"
        )
        rig = world.rigs[region]
        event = {
            "gridEvents": {
                "type": "static",
                "refreshSeconds": 1,
                "events": [
                    {
                        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(begins)),
                        "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ends)),
                        "capFraction": 0.0,
                        "reason": "demo demand response",
                    }
                ],
            }
        }
        stack.apply(stack.hub, region_manifest(region, world.board, rig.prometheus.url, event))
        time.sleep(30 + beat)
        say(f"the event in {region} is over; load falls back to 4,000 tokens/s")
        stack.apply(stack.hub, region_manifest(region, world.board, rig.prometheus.url))
        world.total_tokens_per_second = 4000.0
        time.sleep(2 * beat)
    finally:
        replay.stop.set()
        watcher.terminate()
    say("the last decision, in plain words (wattscale explain):")
    subprocess.run(
        [sys.executable, "-m", "wattscale.cli", "explain", "llama-3-1-8b", "-n", world.namespace],
        env={**stack.env, "KUBECONFIG": str(stack.kubeconfig(stack.hub))},
        check=False,
    )
    say(f"the operator's counters (what the Grafana Savings panels sum): {run_savings(world)}")
    say("the operator's Events:")
    subprocess.run(
        [
            *hub_kubectl(stack),
            "get",
            "events",
            "-n",
            world.namespace,
            "--field-selector",
            "involvedObject.kind=InferenceDeployment",
            "--sort-by=.lastTimestamp",
            "-o",
            "custom-columns=TIME:.lastTimestamp,REASON:.reason,MESSAGE:.message",
        ],
        env=stack.env,
        check=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds-per-hour", type=float, default=10.0)
    parser.add_argument("--story-seconds", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="leave the clusters running")
    args = parser.parse_args()
    # `kill` and Ctrl-C both unwind through the finally blocks: the operator, the Prometheus
    # servers and the demo's objects go, and the clusters the demo started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = Stack.from_scripts(check_bins())
    started = stack.join()
    try:
        say(f"stack up (hub + {', '.join(stack.regions)}); starting the operator")
        workdir = stack.stack_dir / "demo"
        workdir.mkdir(parents=True, exist_ok=True)
        prices = dict.fromkeys(MARKETS, 0.1)  # until the replay sets the first hour
        with open_world(
            stack, workdir, prices, name="llama-3-1-8b", namespace_prefix="demo"
        ) as world:
            story(world, args)
    finally:
        stopped = stack.leave(keep=args.keep)
        if started and stopped:
            say(f"stopped the clusters this demo started: {', '.join(stopped)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
