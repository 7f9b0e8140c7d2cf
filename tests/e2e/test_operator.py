"""The operator, end to end, on the hub + three region clusters (issue 8's headline scenario).

One InferenceDeployment is applied to the hub; the operator (a `wattscale run` subprocess, under
the Helm chart's ServiceAccount: see operator_world.py) must bring replicas up where power is
cheapest, grow them before the SLO breaks when load rises, move them make-before-break when that
region's price jumps, and move load out of a region while a grid event excludes it. Then the
faults: a hand-scaled Deployment, an operator killed and restarted, a dead price feed, and a
Region that does not exist. Last, every dashboard query runs against the real Prometheus that
scraped the operator all along, and must return data.

The tests run in file order and share one world; each starts from where the previous one left it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_world import World, deployment_manifest, open_world, region_manifest
from stack import Stack

pytestmark = pytest.mark.e2e

REGIONS = ["us-west", "us-east", "eu-central"]
PRICES = {"us-west": 0.20, "us-east": 0.05, "eu-central": 0.30}
EMULATED_CAPACITY_TOKENS_PER_SECOND = 2500.0
"""Output tok/s one emulated vLLM replica serves within p95 TTFT 1 s / TPOT 50 ms (measured by
bisection on the emulator: ~2,566 tok/s; docs/metrics.md)."""


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    assert stack.regions == REGIONS, f"the stack's regions changed: {stack.regions}"
    with open_world(stack, tmp_path_factory.mktemp("operator"), PRICES) as w:
        w.total_tokens_per_second = 1500.0
        stack.apply(stack.hub, deployment_manifest("llama", w.namespace, REGIONS))
        yield w


def _total_ready(ready: dict[str, int]) -> int:
    return sum(ready.values())


def test_replicas_come_up_where_power_is_cheapest(world: World) -> None:
    world.wait(
        "replicas run in us-east (the cheapest region) and are Ready",
        lambda: (
            world.ready_replicas()["us-east"] >= 1
            and world.condition("Ready").get("status") == "True"
        ),
        timeout=120,
    )
    desired = world.desired()
    assert desired["us-west"] == 0, desired
    assert desired["eu-central"] == 0, desired
    out = world.stack.kubectl(world.stack.hub, "get", "infd", "-n", world.namespace).stdout
    assert "meta-llama/Llama-3.1-8B-Instruct" in out
    assert "us-east=" in out
    dep = world.stack.get_json("us-east", "deployment", "llama-vllm", "-n", world.namespace)
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": "1"}


def test_regions_report_their_health_and_carry_no_finalizer(world: World) -> None:
    """Every Region shows Reachable and SignalsFresh, written by the operator's health loop;
    and no finalizer, so deleting a Region never waits for an operator (kopf would put one on
    every object a kopf timer watches: the loop is not a kopf timer for that reason)."""

    def healthy(region: str) -> bool:
        status = world.stack.get_json(world.stack.hub, "region", region).get("status") or {}
        kinds = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return status.get("reachable") is True and kinds == {
            "Reachable": "True",
            "SignalsFresh": "True",
        }

    for region in REGIONS:
        world.wait(
            f"Region {region} reports Reachable and SignalsFresh", lambda r=region: healthy(r)
        )
        meta = world.stack.get_json(world.stack.hub, "region", region)["metadata"]
        assert not meta.get("finalizers"), f"Region {region} carries {meta['finalizers']}"


def test_replicas_grow_with_load_before_the_slo_breaks(world: World) -> None:
    before = _total_ready(world.ready_replicas())
    assert before <= 2, f"{before} replicas for 1,500 tok/s"
    world.total_tokens_per_second = 9000.0
    world.wait(
        "replicas grow to cover 9,000 tok/s with headroom, and serve it",
        lambda: (
            _total_ready(world.ready_replicas()) >= 4
            and world.status()["explanation"].get("demandTokensPerSecond", 0) > 7000
        ),
        timeout=150,
    )
    world.wait(
        "the SLO holds at the new size",
        lambda: world.condition("SLOMet").get("status") == "True",
        timeout=120,
    )


def test_price_jump_moves_replicas_make_before_break(world: World) -> None:
    world.wait(
        "replicas are all in us-east",
        lambda: world.desired()["us-east"] == sum(world.desired().values()),
        timeout=60,
    )
    needed = world.desired()["us-east"]
    mark = len(world.ready_history)
    world.board.prices["us-east"] = 1.50  # a price spike at home
    pending = world.stack.kubectl(
        "us-west", "get", "pods", "-A", "--field-selector=status.phase=Pending", "--no-headers"
    ).stdout
    assert not pending.strip(), f"us-west already has Pending pods (GPUs taken?):\n{pending}"
    world.wait(
        "replicas leave us-east for us-west (the next cheapest)",
        lambda: world.ready_replicas()["us-east"] == 0 and world.desired()["us-west"] >= needed,
        timeout=180,
    )
    during = [r for _, r in world.ready_history[mark:]]
    # What the SLO needs: the offered load over what one emulated replica serves within it
    # (not `needed`, which also holds any surplus the capacity estimate had bought).
    slo_needs = math.ceil(world.total_tokens_per_second / EMULATED_CAPACITY_TOKENS_PER_SECOND)
    assert min(_total_ready(r) for r in during) >= slo_needs, f"Ready dropped in the move: {during}"
    overlap = [r for r in during if r["us-east"] > 0 and r["us-west"] > 0]
    assert overlap, "the new replicas never ran beside the old ones (break before make)"


def test_grid_event_moves_load_out_for_its_duration(world: World) -> None:
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    event = {
        "gridEvents": {
            "type": "static",
            "refreshSeconds": 1,
            "events": [{"start": start, "end": end, "capFraction": 0.0, "reason": "e2e DR"}],
        }
    }
    rig = world.rigs["us-west"]
    world.stack.apply(
        world.stack.hub, region_manifest("us-west", world.board, rig.prometheus.url, event)
    )
    world.wait(
        "load leaves us-west while the grid event excludes it",
        lambda: (
            world.ready_replicas()["us-west"] == 0 and _total_ready(world.ready_replicas()) >= 4
        ),
        timeout=180,
    )
    explanation = world.status()["explanation"]
    west = next(r for r in explanation["regions"] if r["name"] == "us-west")
    assert west.get("gridEventCapReplicas") == 0
    world.stack.apply(world.stack.hub, region_manifest("us-west", world.board, rig.prometheus.url))


def test_hand_scaled_deployment_is_reverted(world: World) -> None:
    region = max(world.desired(), key=lambda r: world.desired()[r])
    want = world.desired()[region]
    world.stack.kubectl(
        region,
        "scale",
        "deployment",
        "llama-vllm",
        "-n",
        world.namespace,
        f"--replicas={want + 3}",
    )

    def reverted() -> bool:
        live = world.stack.get_json(region, "deployment", "llama-vllm", "-n", world.namespace)
        return bool(live["spec"]["replicas"] == world.desired()[region] < want + 3)

    world.wait("the operator sets the replicas back", reverted, timeout=60)
    assert "ManualScaleReverted" in [e["reason"] for e in world.events()]


def test_operator_killed_and_restarted_resumes_without_flapping(
    world: World, tmp_path: Path
) -> None:
    before = world.desired()
    world.kill_operator()
    world.start_operator(tmp_path)
    world.wait(
        "the restarted operator decides again",
        lambda: world.status()["lastDecision"]["time"] > "",
        timeout=60,
    )
    time.sleep(10)
    after = world.desired()
    assert sum(after.values()) >= sum(before.values()) - 0, (before, after)


def test_dead_price_feed_holds_and_reports(world: World) -> None:
    before = sum(world.desired().values())
    world.board.broken = set(REGIONS)
    world.total_tokens_per_second = 1000.0  # load falls while the feeds are dead
    try:
        world.wait(
            "SignalsFresh turns False",
            lambda: world.condition("SignalsFresh").get("status") == "False",
            timeout=90,
        )
        time.sleep(20)  # longer than the scale-down window
        assert sum(world.desired().values()) >= before
    finally:
        world.board.broken = set()
        world.total_tokens_per_second = 9000.0


def test_unknown_region_is_a_condition_and_an_event(world: World) -> None:
    bad = deployment_manifest("typo", world.namespace, ["us-east", "us-esat"])
    bad["spec"]["placement"]["homeRegion"] = "us-east"
    world.stack.apply(world.stack.hub, bad)
    try:

        def refused() -> bool:
            obj = world.stack.get_json(world.stack.hub, "infd", "typo", "-n", world.namespace)
            reason = (obj.get("status") or {}).get("lastDecision", {}).get("reason")
            return bool(reason == "UnknownRegion")

        world.wait("the typo'd region is reported", refused, timeout=60)
        for region in REGIONS:
            proc = world.stack.kubectl(
                region, "get", "deployment", "typo-vllm", "-n", world.namespace, check=False
            )
            assert proc.returncode != 0, f"{region} got a Deployment for an invalid spec"
    finally:
        world.stack.kubectl(
            world.stack.hub,
            "delete",
            "infd",
            "typo",
            "-n",
            world.namespace,
            "--timeout=60s",
            check=False,
        )


def test_every_dashboard_query_returns_data_from_the_scenario(world: World) -> None:
    """Every PromQL expression of every dashboard (panels, template variables, annotations) is
    accepted by the real Prometheus that scraped the operator through this scenario and returns
    data, and so does every series selector inside it (chart.dashboard_gaps).

    The scenario provides what the panels show: measured power from the emulated DCGM, carbon
    from the regions' carbon feeds, feed errors from the dead price feed. That test runs after
    the restart on purpose: counters start empty in a new operator process, and a counter the
    current process does not export has no samples in the last ``$__rate_interval``.
    """
    prom = world.operator_prometheus
    prom.wait_for("wattscale_signal_fetch_errors_total", timeout_seconds=30)
    deadline = time.monotonic() + 30
    while (gaps := world.dashboard_gaps()) and time.monotonic() < deadline:
        time.sleep(2)
    assert not gaps, "dashboard queries without data from the scenario:\n" + "\n".join(gaps)
    # Panels that compare two series must have both, not just one of them.
    for both in (
        'wattscale_power_watts{source="measured"}',  # "Power: modelled vs measured"
        'wattscale_power_watts{source="modelled"}',
        'wattscale_capacity_tokens_per_second{source="hint"}',  # "Capacity per replica"
        'wattscale_capacity_tokens_per_second{source="used"}',
    ):
        assert prom.query(both), f"no {both} in the operator's metrics"
