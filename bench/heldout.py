"""Benchmark: wattscale on five scenarios kept out of ``bench/savings.py``'s set, paired.

The 14-day benchmark's regions, months and traces are the ones the sizing was developed on. A
change to a default is also judged here, on what nobody tuned for (docs/simulator.md's
"held-out runs"): other markets, other years, other traces, an owner and renters.

- ``default``: ``wattscale simulate``'s embedded default (the bundled 7-day sample: CAISO,
  ERCOT and PJM from 2024-07-08, 3 days, ServeGen language m-large, renter);
- ``eu-azure``: DE-LU/FR/NL from 2023-03-06, 3 days, the Azure conversation trace, renter;
- ``us-mooncake``: CAISO/ERCOT/PJM from 2022-10-03, 3 days, the Mooncake conversation trace,
  renter;
- ``apac``: AU-NSW/JP-TK/SG from 2024-02-05, 4 days, ServeGen language m-mid, renter;
- ``eu-r1-owner``: ES/FR/DE-LU from 2021-11-01, 4 days, ServeGen reason deepseek-r1, owner
  (GPU cost 0).

Each scenario is replayed with wattscale at each capacity hint (``--hints``, default the exact
one) beside reactive and the oracle, and printed as USD, cost over the oracle, SLO attainment
and cold starts. ``--only NAME[,NAME]`` picks scenarios, ``--jobs N`` runs N in parallel (2),
``--json OUT`` keeps the results. About 8 minutes for all five on two shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from savings import data_dir  # bench/savings.py: the same ../shared/data, WATTSCALE_DATA_DIR

from wattscale.cli_simulate import _checked_scenario, configure_parser
from wattscale.sim.policies.wattscale import WattscalePolicy
from wattscale.sim.run import simulate
from wattscale.sim.scenario import Scenario

US = "US-CAL-CISO,US-TEX-ERCO,US-MIDA-PJM"
SCENARIOS: dict[str, tuple[str, ...]] = {
    "default": (),
    "eu-azure": ("azure_llm_2023_conv.csv", "DE-LU,FR,NL", "2023-03-06", "3"),
    "us-mooncake": ("mooncake_fast25_conversation.csv", US, "2022-10-03", "3"),
    "apac": ("servegen_language_m-mid_rate_10min.csv", "AU-NSW,JP-TK,SG", "2024-02-05", "4"),
    "eu-r1-owner": (
        "servegen_reason_deepseek-r1_rate_10min.csv",
        "ES,FR,DE-LU",
        "2021-11-01",
        "4",
        "0",
    ),
}
"""Per scenario: trace file, regions, start, days[, GPU USD per hour] (empty: the default)."""


def simulate_args(name: str) -> list[str]:
    """The ``wattscale simulate`` options of a held-out scenario."""
    spec = SCENARIOS[name]
    if not spec:
        return []
    data = data_dir()
    trace, regions, start, days, *cost = spec
    args = ["--prices-dir", str(data / "prices"), "--carbon-dir", str(data / "carbon")]
    args += ["--trace", str(data / "traces" / trace), "--regions", regions]
    args += ["--start", start, "--days", days]
    return args + (["--gpu-hour-cost", cost[0]] if cost else [])


def scenario(name: str) -> Scenario:
    """The held-out scenario ``name``, built as ``wattscale simulate`` builds it."""
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return _checked_scenario(parser.parse_args(simulate_args(name)))


def run(name: str, hints: tuple[float, ...]) -> dict[str, Any]:
    factories = {f"ws{h:g}": partial(WattscalePolicy, capacity_hint_factor=h) for h in hints}
    result = simulate(scenario(name), [*factories, "reactive", "oracle"], factories=factories)
    doc = result.to_json()
    return {"scenario": name, "policies": doc["policies"]}


def rows(doc: dict[str, Any]) -> list[str]:
    pol = doc["policies"]
    oracle = pol["oracle"]["total_cost"]
    out = []
    for name, p in pol.items():
        ratio = p["total_cost"] / oracle if oracle > 0 else float("nan")
        out.append(
            f"{doc['scenario']:<12} {name:<9} {p['total_cost']:>10,.2f} {ratio:>7.4f} "
            f"{100 * p['slo_attainment']:>7.2f}% {p['cold_starts']:>6}"
        )
    return out


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--only``, ``--jobs`` and ``--json``, shared with ``bench/frontier.py``."""
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=Path)


def chosen(only: str) -> list[str] | None:
    """The scenarios ``--only`` names; None (and a message) when one is unknown."""
    names = [n for n in only.split(",") if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return None
    return names


def run_all(
    names: list[str],
    job: Callable[[str], dict[str, Any]],
    jobs: int,
    out: Path | None,
    show: Callable[[dict[str, Any]], list[str]],
) -> None:
    """Run ``job`` on each scenario (``jobs`` at a time), print each result as it comes, and
    keep them all in ``out`` (JSON) when given."""
    results = []
    with ProcessPoolExecutor(max(1, jobs)) as pool:
        for doc in pool.map(job, names):
            results.append(doc)
            print("\n".join(show(doc)), flush=True)
    if out:
        out.write_text(json.dumps(results, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/heldout.py", description=__doc__)
    add_options(parser)
    parser.add_argument("--hints", default="1", help="capacity hint factors, comma-separated")
    args = parser.parse_args(argv)
    names = chosen(args.only)
    if names is None:
        return 2
    try:
        hints = tuple(float(h) for h in args.hints.split(","))
    except ValueError:
        print(f"--hints {args.hints!r} is not a list of numbers", file=sys.stderr)
        return 2
    print(f"{'scenario':<12} {'policy':<9} {'USD':>10} {'/oracle':>7} {'SLO met':>8} {'cold':>6}")
    run_all(names, partial(run, hints=hints), args.jobs, args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
