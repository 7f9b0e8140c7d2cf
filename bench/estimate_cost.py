"""Capacity-estimate cost benchmark (not a test): the refresh rule against estimating every pass.

One learner per GPU variant (the operator keeps one per deployment and per further variant)
holds ``--windows`` windows of a steady load well below the SLO, as after hours of serving;
then ``--passes`` control passes each add one such window and ask for the estimate. The
baseline asks the learner directly every pass (what ``variant_capacities`` did before
228776f); the schedule asks through :class:`EstimateSchedule`, the rule the first variant's
learner and the replay use (recompute while few windows are held, on news near the SLO, else
every ``ESTIMATE_REFRESH_INTERVALS`` intervals). Both run in this process, one after the other,
on the same windows. Printed: CPU ms per pass for each, how many estimates each computed, and
the ratio; the last line is ``estimate_schedule_cpu_ratio=`` (baseline / schedule).

Usage: ``python bench/estimate_cost.py [--windows 2000] [--passes 60] [--variants 2]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from wattscale.metrics.capacity import CapacityLearner, CapacityObservation, LatencySlo
from wattscale.metrics.capacity_schedule import EstimateSchedule

INTERVAL_SECONDS = 30.0
SLO = LatencySlo(ttft_p95_seconds=0.5, tpot_p95_seconds=0.05)
HINT_TOKENS_PER_SECOND = 2500.0


def _window(rng: random.Random, t_seconds: float) -> CapacityObservation:
    """One steady window at 50-70 % of the hint, latencies well inside the SLO."""
    load = HINT_TOKENS_PER_SECOND * rng.uniform(0.5, 0.7)
    return CapacityObservation(
        tokens_per_second_per_replica=load,
        ttft_p95_seconds=0.15 * rng.uniform(0.9, 1.1),
        tpot_p95_seconds=0.02 * (load / HINT_TOKENS_PER_SECOND) * rng.uniform(0.9, 1.1) + 0.01,
        waiting_requests_per_replica=0.0,
        replicas=4,
        t_seconds=t_seconds,
        window_seconds=INTERVAL_SECONDS,
        source="us-east",
    )


def _learners(n_variants: int, windows: int, seed: int) -> tuple[list[CapacityLearner], float]:
    rng = random.Random(seed)
    learners = [CapacityLearner(SLO, HINT_TOKENS_PER_SECOND) for _ in range(n_variants)]
    for i in range(windows):
        for learner in learners:
            learner.observe(_window(rng, i * INTERVAL_SECONDS))
    return learners, windows * INTERVAL_SECONDS


def run(n_variants: int, windows: int, passes: int, scheduled: bool) -> tuple[float, int]:
    """CPU ms per pass and estimates computed, over ``passes`` passes."""
    learners, now = _learners(n_variants, windows, seed=7)
    schedules = [EstimateSchedule() for _ in learners]
    for learner, schedule in zip(learners, schedules, strict=True):
        schedule.current(learner, now, INTERVAL_SECONDS)  # the estimate before the passes
    rng = random.Random(11)
    computed = 0
    start = time.process_time()
    for k in range(1, passes + 1):
        t = now + k * INTERVAL_SECONDS
        for learner, schedule in zip(learners, schedules, strict=True):
            window = _window(rng, t)
            if scheduled:
                before = schedule.estimate
                schedule.observe(learner, window)
                computed += schedule.current(learner, t, INTERVAL_SECONDS) is not before
            else:
                learner.observe(window)
                learner.estimate(t)
                computed += 1
    return 1000.0 * (time.process_time() - start) / passes, computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000, help="windows each learner holds")
    parser.add_argument("--passes", type=int, default=60)
    parser.add_argument("--variants", type=int, default=2, help="learners (GPU variants)")
    args = parser.parse_args()
    base_ms, base_n = run(args.variants, args.windows, args.passes, scheduled=False)
    sched_ms, sched_n = run(args.variants, args.windows, args.passes, scheduled=True)
    print(f"{args.variants} learners x {args.windows} windows, {args.passes} passes")
    print(f"every pass   {base_ms:8.1f} CPU ms/pass  {base_n:4d} estimates")
    print(f"schedule     {sched_ms:8.1f} CPU ms/pass  {sched_n:4d} estimates")
    print(f"estimate_schedule_cpu_ratio={base_ms / max(sched_ms, 1e-9):.1f}")


if __name__ == "__main__":
    main()
