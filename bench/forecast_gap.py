"""Benchmark: how much of wattscale's distance to the oracle a perfect forecast would close.

Not a test, and not a policy anyone can run: a study of where ``cost_vs_oracle`` comes from.
The same scenario is replayed with wattscale three times, the planner, guard-rails, learned
capacity and power unchanged; only the demand handed to the planner (its forecast, or what it
measured) differs:

- ``live``: the operator's own forecast from demand read as the operator reads it (the mean
  over the metrics' rate window: what ``wattscale simulate`` runs);
- ``level``: the future's level, known exactly: the centred 11-minute mean of the demand
  that will come (the minute-to-minute bursts around it stay unknown);
- ``exact``: the future itself, minute by minute.

``level`` minus ``live`` is what a better forecaster of the level could gain at most; what is
left between ``exact`` and the oracle is the planner's own structure (whole replicas, the
headroom it derives, the scale-down guard-rails, cold starts), which no forecast removes. Each
row prints cost, ``cost_vs_oracle``, SLO attainment and replica-hours; the oracle is solved
once per scenario.

Run: ``.venv/bin/python bench/forecast_gap.py`` (the embedded default scenario: 3 US regions,
3 days, a cloud renter at 2.5 USD per GPU-hour); ``--prices-dir``, ``--carbon-dir``,
``--regions``, ``--start``, ``--days``, ``--trace``, ``--gpu-hour-cost`` as
``wattscale simulate`` takes them. About ten seconds per row on two shared cores.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from wattscale.cli_simulate import _checked_scenario, configure_parser
from wattscale.sim.accounting import account
from wattscale.sim.engine import replay
from wattscale.sim.policies.base import Observation
from wattscale.sim.policies.oracle import solve_oracle
from wattscale.sim.policies.wattscale import WattscalePolicy

LEVEL_MINUTES = 11
"""The level's window: centred, odd, about the 10-minute windows the rate traces are given in."""


class ForesightPolicy(WattscalePolicy):
    """wattscale handed ``future`` (per minute) as its forecast instead of its own."""

    def __init__(self, future: np.ndarray) -> None:
        super().__init__()
        self._future = future

    def _forecast(self, obs: Observation, steps: int) -> tuple[float, ...]:
        seg = self._future[obs.minute : obs.minute + steps]
        if seg.shape[0] < steps:  # past the period's end: its last minute carried forward
            seg = np.concatenate([seg, np.full(steps - seg.shape[0], self._future[-1])])
        return tuple(float(x) for x in seg)


def level(demand: np.ndarray, minutes: int = LEVEL_MINUTES) -> np.ndarray:
    """The centred ``minutes``-minute mean of ``demand`` (edges padded with their value)."""
    half = minutes // 2
    padded = np.pad(demand, half, mode="edge")
    return np.convolve(padded, np.ones(minutes) / minutes, mode="valid")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/forecast_gap.py", description=__doc__)
    configure_parser(parser)
    args = parser.parse_args(argv)
    scenario = _checked_scenario(args)
    demand = np.asarray(scenario.load.output_tokens_per_s, dtype=np.float64)
    oracle = account("oracle", scenario, solve_oracle(scenario).trajectory)
    print(
        f"{', '.join(scenario.regions)}, {scenario.start:%Y-%m-%d} + "
        f"{scenario.minutes / 1440:g} days, {scenario.load.source}, GPU "
        f"{scenario.gpu_hour_cost:g} USD/h: oracle (LP) {oracle.total_cost:,.2f} USD"
    )
    print(f"{'forecast':<8} {'USD':>10} {'vs oracle':>9} {'SLO met':>8} {'replica-h':>9}")
    runs = {
        "live": WattscalePolicy(),
        "level": ForesightPolicy(level(demand)),
        "exact": ForesightPolicy(demand),
    }
    for name, policy in runs.items():
        r = replay(policy, scenario)
        print(
            f"{name:<8} {r.total_cost:>10,.2f} {r.total_cost / oracle.total_cost:>9.4f} "
            f"{100 * r.slo_attainment:>7.2f}% {r.replica_hours:>9,.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
