"""Capacity-learning benchmark (not a test): learned vs true per-replica capacity.

The vLLM emulator (tests/fakes/vllm_emulator.py) is driven by the Azure LLM conversation trace
(``../shared/data/traces/azure_llm_2023_conv.csv``): its request-rate shape over the hour in
1-minute bins and its real prompt/output token counts (mean ~1,155 in / ~211 out). It runs in
virtual time. Every 30 s a window is measured the way the reader measures it through Prometheus:
output tokens/s per replica from the counters, and TTFT/TPOT p95 with ``histogram_quantile``'s
linear interpolation over vLLM's buckets (summed over replicas). Windows feed the
:class:`CapacityLearner`, whose prior is a deliberately wrong hint.

The true capacity is the largest constant output tokens/s per replica (same token mix) whose
exact p95 TTFT and TPOT meet the SLO, found by bisection on the same model.

Scenarios (each ``--hours`` of virtual time, the trace looped):
  fixed       replicas fixed so the trace's peaks reach ~1.25x capacity and the troughs ~0.45x;
  autoscaled  a reactive policy sizes replicas every 30 s from the measured demand and the
              learner's current estimate with 20 % headroom, i.e. the loop the operator runs;
  step        the operator e2e test's situation, for ``--step-seconds``: fixed-size requests
              (1,000 in / 200 out), load stepping from 1,500 to 9,000 output tok/s after 60 s,
              the same autoscaler every 2 s with new replicas serving 4 s after the decision
              (scale-down after 10 s), windows as the operator reads them in that test: an 8-s
              ``rate()`` window read every 2 s, tokens/s divided by the pods reporting now.
              Overloads, draining queues and scale changes: the transients.
For each, hints of 0.5x, 1x and 2x the true capacity. The last line is
``capacity_error_max_pct=`` over the scenarios where the load reached the boundary.

Usage: ``python bench/capacity.py [--hours H] [--seed S]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.autoscaler import ColdStartAutoscaler
from tests.fakes.rate_window import RateWindowMeter, histogram_quantile
from tests.fakes.vllm_emulator import (
    ConstantLoad,
    Emulator,
    LoadProfile,
    Replica,
    TraceLoad,
    measure_capacity,
)
from wattscale.metrics import (
    CapacityEstimate,
    CapacityLearner,
    CapacityLearnerConfig,
    CapacityObservation,
    LatencySlo,
)

SLO = LatencySlo(ttft_p95_seconds=1.0, tpot_p95_seconds=0.050)
WINDOW_SECONDS = 30.0
CONFIG = CapacityLearnerConfig()
DT_SECONDS = 0.05


class WindowMeter:
    """Measures windows as PromQL would: counter and bucket deltas between two instants."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.prev: dict[str, tuple[float, list[int], list[int]]] = {}
        self._snap()

    def _state(self, r: Replica) -> tuple[float, list[int], list[int]]:
        return (r.generation_tokens_total, list(r.ttft.counts), list(r.tpot.counts))

    def _snap(self) -> None:
        self.prev = {r.pod: self._state(r) for r in self.emu.replicas}

    def window(self) -> CapacityObservation | None:
        reps = self.emu.replicas
        gen = 0.0
        ttft = [0.0] * (len(reps[0].ttft.bounds) + 1)
        tpot = [0.0] * (len(reps[0].tpot.bounds) + 1)
        n = 0
        for r in reps:
            if r.pod not in self.prev:
                continue  # a new pod: its first window starts now
            g0, t0, p0 = self.prev[r.pod]
            g1, t1, p1 = self._state(r)
            gen += g1 - g0
            ttft = [a + b - c for a, b, c in zip(ttft, t1, t0, strict=True)]
            tpot = [a + b - c for a, b, c in zip(tpot, p1, p0, strict=True)]
            n += 1
        self._snap()
        if n == 0:
            return None
        b = reps[0]
        t95 = histogram_quantile(0.95, b.ttft.bounds, ttft)
        p95 = histogram_quantile(0.95, b.tpot.bounds, tpot)
        return CapacityObservation(
            tokens_per_second_per_replica=gen / WINDOW_SECONDS / n,
            ttft_p95_seconds=None if math.isnan(t95) else t95,
            tpot_p95_seconds=None if math.isnan(p95) else p95,
            waiting_requests_per_replica=sum(len(r.waiting) for r in reps) / len(reps),
            replicas=n,
            t_seconds=self.emu.now,
            window_seconds=WINDOW_SECONDS,
        )


def run_step(
    truth: float, hint: float, seconds: float, seed: int
) -> tuple[CapacityEstimate, dict[str, float]]:
    """The step scenario (see the module docstring)."""
    loop, ready, down_after, dt = 2.0, 4.0, 10.0, DT_SECONDS
    emu = Emulator(ConstantLoad(1500.0), replicas=1, seed=seed)
    learner = CapacityLearner(SLO, hint, CONFIG)
    meter = RateWindowMeter(emu, 8.0)
    scaler = ColdStartAutoscaler(emu, ready, down_after)
    windows = violating = replica_sum = 0
    min_estimate = math.inf
    while emu.now < seconds:
        for _ in range(round(loop / dt)):
            emu.advance(dt)
            scaler.tick()
        if emu.now >= 60.0:
            emu.set_load(ConstantLoad(9000.0))
        obs = meter.window()
        learner.observe(obs)
        windows += 1
        replica_sum += len(emu.replicas)
        ratio = SLO.ratio(obs)
        violating += int(ratio is not None and ratio > 1)
        capacity = learner.estimate(emu.now).tokens_per_second_per_replica
        min_estimate = min(min_estimate, capacity)
        want = max(1, math.ceil(obs.tokens_per_second_per_replica * obs.replicas * 1.2 / capacity))
        scaler.decide(want)
    est = learner.estimate(emu.now)
    stats = {
        "windows": windows,
        "violating_pct": 100.0 * violating / max(1, windows),
        "mean_replicas": replica_sum / max(1, windows),
        "final_replicas": len(emu.replicas),
        "min_estimate": min_estimate / truth,
        "transient": est.observations_rejected.get("transient", 0),
    }
    return est, stats


def run(
    load: LoadProfile,
    truth: float,
    hint: float,
    hours: float,
    replicas_fixed: int | None,
    seed: int,
) -> tuple[CapacityEstimate, dict[str, float]]:
    """One scenario; returns the final estimate and a few statistics."""
    emu = Emulator(load, replicas=replicas_fixed or 1, seed=seed)
    learner = CapacityLearner(SLO, hint, CONFIG)
    meter = WindowMeter(emu)
    steps = int(WINDOW_SECONDS / DT_SECONDS)
    windows = violating = 0
    replica_sum = 0
    loads: list[float] = []
    while emu.now < hours * 3600:
        for _ in range(steps):
            emu.advance(DT_SECONDS)
        obs = meter.window()
        if obs is None:
            continue
        learner.observe(obs)
        windows += 1
        replica_sum += len(emu.replicas)
        loads.append(obs.tokens_per_second_per_replica / truth)
        ratio = SLO.ratio(obs)
        violating += int(ratio is not None and ratio > 1)
        if replicas_fixed is None:
            est = learner.estimate(emu.now)
            demand = obs.tokens_per_second_per_replica * obs.replicas
            want = max(1, math.ceil(demand * 1.2 / est.tokens_per_second_per_replica))
            emu.set_replicas(want)
    est = learner.estimate(emu.now)
    loads.sort()
    stats = {
        "windows": windows,
        "violating_pct": 100.0 * violating / max(1, windows),
        "mean_replicas": replica_sum / max(1, windows),
        "load_p10": loads[len(loads) // 10] if loads else 0.0,
        "load_p90": loads[9 * len(loads) // 10] if loads else 0.0,
    }
    return est, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--mean-tokens-per-second", type=float, default=6000.0)
    ap.add_argument("--violation-target", type=float, default=None)
    ap.add_argument("--scenarios", default="fixed,autoscaled,step")
    ap.add_argument("--hints", default="0.5,1,2")
    ap.add_argument("--step-seconds", type=float, default=600.0)
    args = ap.parse_args()
    global CONFIG
    if args.violation_target is not None:
        CONFIG = CapacityLearnerConfig(window_violation_target=args.violation_target)

    started = time.monotonic()
    truth = measure_capacity(
        SLO.ttft_p95_seconds,
        SLO.tpot_p95_seconds,
        load_factory=lambda tps: TraceLoad(tps, flat=True),
        seconds=600.0,
        iterations=12,
    )
    print(
        f"SLO p95 TTFT <= {SLO.ttft_p95_seconds:g} s, p95 TPOT <= {SLO.tpot_p95_seconds:g} s;"
        f" Azure conversation token mix; true capacity {truth:.0f} output tok/s/replica"
        f" ({time.monotonic() - started:.0f} s to measure)"
    )
    load = TraceLoad(args.mean_tokens_per_second)
    # Fixed: mean load per replica ~0.8x capacity, so the trace's peaks (1.54x mean) cross it.
    fixed = max(1, round(args.mean_tokens_per_second / (0.8 * truth)))
    header = (
        f"{'scenario':<11}{'hint':>6}{'learned':>9}{'error':>8}{'80% interval':>17}"
        f"{'conf':>6}{'windows':>8}{'viol%':>7}{'replicas':>9}{'load p10-p90 (x true)':>23}"
    )
    print(header)
    errors: list[float] = []
    chosen = args.scenarios.split(",")
    for scenario, replicas in (("fixed", fixed), ("autoscaled", None)):
        if scenario not in chosen:
            continue
        for factor in (float(h) for h in args.hints.split(",")):
            est, st = run(load, truth, factor * truth, args.hours, replicas, args.seed)
            err = est.tokens_per_second_per_replica / truth - 1
            lo, hi = (
                est.lower_tokens_per_second_per_replica,
                est.upper_tokens_per_second_per_replica,
            )
            interval = f"[{lo:.0f}, {hi:.0f}]"
            reached = st["violating_pct"] > 0
            if reached:
                errors.append(abs(err))
            print(
                f"{scenario:<11}{factor:>5.1f}x{est.tokens_per_second_per_replica:>9.0f}"
                f"{err:>+8.1%}"
                f"{interval:>17}"
                f"{est.confidence:>6.2f}{st['windows']:>8.0f}{st['violating_pct']:>7.1f}"
                f"{st['mean_replicas']:>9.1f}{st['load_p10']:>15.2f} - {st['load_p90']:.2f}",
                flush=True,
            )
    if "step" in chosen:
        step_truth = measure_capacity(SLO.ttft_p95_seconds, SLO.tpot_p95_seconds)
        print(
            f"step: 1,000-in/200-out requests, true capacity {step_truth:.0f} output tok/s/replica;"
            " 9,000 tok/s needs"
            f" {math.ceil(9000 * 1.2 / step_truth)} replicas at 20 % headroom"
        )
        print(
            f"{'scenario':<11}{'hint':>6}{'learned':>9}{'error':>8}{'80% interval':>17}"
            f"{'conf':>6}{'windows':>8}{'viol%':>7}{'transient':>10}{'lowest (x true)':>16}"
            f"{'replicas end':>13}"
        )
        for factor in (float(h) for h in args.hints.split(",")):
            est, st = run_step(step_truth, factor * step_truth, args.step_seconds, args.seed)
            err = est.tokens_per_second_per_replica / step_truth - 1
            errors.append(abs(err))
            interval = (
                f"[{est.lower_tokens_per_second_per_replica:.0f},"
                f" {est.upper_tokens_per_second_per_replica:.0f}]"
            )
            print(
                f"{'step':<11}{factor:>5.1f}x{est.tokens_per_second_per_replica:>9.0f}"
                f"{err:>+8.1%}{interval:>17}{est.confidence:>6.2f}{st['windows']:>8.0f}"
                f"{st['violating_pct']:>7.1f}{st['transient']:>10.0f}{st['min_estimate']:>16.2f}"
                f"{st['final_replicas']:>13.0f}",
                flush=True,
            )
    print(f"elapsed_seconds={time.monotonic() - started:.0f}")
    print(f"capacity_error_max_pct={100 * max(errors) if errors else float('nan'):.1f}")


if __name__ == "__main__":
    main()
