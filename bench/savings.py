"""Benchmark: how much wattscale saves on real data, against baselines and the offline optimum.

Not a test: it runs `wattscale simulate` (the library, same code path) on a fixed set of
scenarios from the shared data and prints, per scenario and at the end,
`cost_vs_oracle=`, `savings_captured=`, `slo_attainment=`, `energy_savings_vs_static=`,
`energy_savings_vs_reactive=`, and whether wattscale beats every baseline on total cost at
equal or better SLO attainment.

Scenarios (chosen before looking at any result; the same defaults everywhere):
- US trio US-CAL-CISO/US-TEX-ERCO/US-MIDA-PJM (home US-CAL-CISO) and EU trio DE-LU/FR/NL (home
  DE-LU), 14 days each;
- a winter period (from 2024-01-08) and a summer period (from 2024-07-08);
- a power-billed owner (`--gpu-hour-cost 0`) and a cloud renter (`--gpu-hour-cost 2.5`).
Load: the ServeGen language m-large 14-day rate series, its local midnight at the home region's
standard time, scaled to a 20-replica peak.

Data: `$WATTSCALE_DATA_DIR`, else `<repo>/../shared/data`. Run: `.venv/bin/python bench/savings.py`
(`--jobs N` parallel processes, `--days N` for a quicker look, `--json OUT` to keep the results).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wattscale.cli_simulate import REGION_UTC_OFFSET_HOURS
from wattscale.sim.policies.base import Policy
from wattscale.sim.policies.wattscale import WattscalePolicy
from wattscale.sim.run import simulate
from wattscale.sim.scenario import build_scenario

REPO = Path(__file__).resolve().parents[1]
TRIOS = {
    "US": ("US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM"),
    "EU": ("DE-LU", "FR", "NL"),
}
PERIODS = {"winter": "2024-01-08", "summer": "2024-07-08"}
GPU_HOUR_COSTS = (0.0, 2.5)
TRACE = "traces/servegen_language_m-large_rate_10min.csv"
PEAK_REPLICAS = 20
BASELINES = ("static", "reactive", "carbon-capped", "greedy")
METRICS = (
    "cost_vs_oracle",
    "savings_captured",
    "slo_attainment",
    "energy_savings_vs_static",
    "energy_savings_vs_reactive",
)


@dataclass(frozen=True)
class Case:
    trio: str
    period: str
    gpu_hour_cost: float
    days: float
    headroom: float | None = None
    horizon_minutes: int | None = None

    @property
    def label(self) -> str:
        return f"{self.trio}-{self.period}-gpu{self.gpu_hour_cost:g}"


def data_dir() -> Path:
    env = os.environ.get("WATTSCALE_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


def run_case(case: Case) -> dict[str, Any]:
    data = data_dir()
    regions = list(TRIOS[case.trio])
    began = time.monotonic()
    scenario = build_scenario(
        trace=data / TRACE,
        prices_dir=data / "prices",
        carbon_dir=data / "carbon",
        regions=regions,
        home_region=regions[0],
        start=datetime.strptime(PERIODS[case.period], "%Y-%m-%d").replace(tzinfo=UTC),
        days=case.days,
        peak_replicas=PEAK_REPLICAS,
        gpu_hour_cost=case.gpu_hour_cost,
        trace_tz_offset_hours=REGION_UTC_OFFSET_HOURS[regions[0]],
    )
    factories: dict[str, Callable[[], Policy]] = {}
    if case.headroom is not None or case.horizon_minutes is not None:
        headroom, minutes = case.headroom, case.horizon_minutes
        factories["wattscale"] = lambda: WattscalePolicy(headroom=headroom, horizon_minutes=minutes)
    result = simulate(scenario, ["wattscale", *BASELINES, "oracle"], factories=factories)
    doc = result.to_json()
    ws = result.results["wattscale"]
    beaten = [
        b
        for b in BASELINES
        if ws.total_cost < result.results[b].total_cost
        and ws.slo_attainment >= result.results[b].slo_attainment
    ]
    doc["label"] = case.label
    doc["beats"] = beaten
    doc["seconds"] = round(time.monotonic() - began, 1)
    return doc


def verdict(doc: dict[str, Any]) -> str:
    """Per baseline: cheaper at equal or better SLO, or by how much SLO attainment differs."""
    pol = doc["policies"]
    ws = pol["wattscale"]
    parts = []
    for b in BASELINES:
        cheaper = ws["total_cost"] < pol[b]["total_cost"]
        slo_gap_pp = 100 * (pol[b]["slo_attainment"] - ws["slo_attainment"])
        if cheaper and slo_gap_pp <= 0:
            parts.append(f"{b}: cheaper, SLO >=")
        elif cheaper:
            parts.append(f"{b}: cheaper, SLO lower by {slo_gap_pp:.2f} pp")
        else:
            parts.append(f"{b}: NOT cheaper")
    oracle = pol["oracle"]
    holds = all(
        p["total_cost"] >= oracle["lower_bound_cost"] - 1e-6
        for n, p in pol.items()
        if p["slo_attainment"] >= oracle["slo_attainment"]
    )
    parts.append("oracle bound holds" if holds else "ORACLE BOUND VIOLATED")
    return "wattscale vs " + "; ".join(parts)


def line(label: str, values: dict[str, float]) -> str:
    return f"{label:<22} " + " ".join(f"{k}={values[k]:.4f}" for k in METRICS if k in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--headroom",
        type=float,
        help="sensitivity only: wattscale's headroom factor instead of the API default (1.2)",
    )
    parser.add_argument(
        "--horizon-minutes",
        type=int,
        help="sensitivity only: wattscale's planning horizon instead of the controller's (60)",
    )
    args = parser.parse_args(argv)
    if not (data_dir() / "prices").is_dir():
        print(f"no data at {data_dir()} (set WATTSCALE_DATA_DIR)", file=sys.stderr)
        return 2
    cases = [
        Case(trio, period, gpu, args.days, args.headroom, args.horizon_minutes)
        for trio in TRIOS
        for period in PERIODS
        for gpu in GPU_HOUR_COSTS
    ]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        docs = list(pool.map(run_case, cases))
    for doc in docs:
        pol = doc["policies"]
        print(line(doc["label"], doc["headline"]))
        costs = "  ".join(f"{n}={pol[n]['total_cost']:.2f}" for n in pol)
        slos = "  ".join(f"{n}={pol[n]['slo_attainment']:.4f}" for n in pol)
        print(f"{'':<22} total_cost {doc['currency']}: {costs}")
        print(f"{'':<22} slo: {slos}")
        print(f"{'':<22} {verdict(doc)}; {doc['seconds']} s")
        for w in doc["warnings"]:
            print(f"{'':<22} warning: {w}")
    print()
    mean: dict[str, float] = {}
    for key in METRICS:
        vals = [d["headline"][key] for d in docs if key in d["headline"]]
        if vals:
            mean[key] = sum(vals) / len(vals)
    print(line("ALL (mean)", mean))
    worst = {
        "cost_vs_oracle": max(d["headline"]["cost_vs_oracle"] for d in docs),
        "savings_captured": min(d["headline"]["savings_captured"] for d in docs),
        "slo_attainment": min(d["headline"]["slo_attainment"] for d in docs),
        "energy_savings_vs_static": min(d["headline"]["energy_savings_vs_static"] for d in docs),
        "energy_savings_vs_reactive": min(
            d["headline"]["energy_savings_vs_reactive"] for d in docs
        ),
    }
    print(line("ALL (worst)", worst))
    beats_all = sum(1 for d in docs if len(d["beats"]) == len(BASELINES))
    cheaper_all = sum(
        1
        for d in docs
        if all(
            d["policies"]["wattscale"]["total_cost"] < d["policies"][b]["total_cost"]
            for b in BASELINES
        )
    )
    print(
        f"wattscale beats every baseline at equal or better SLO in {beats_all}/{len(docs)} "
        f"scenarios; is the cheapest non-oracle policy in {cheaper_all}/{len(docs)}"
    )
    print("oracle: LP relaxation (a lower bound on any policy's cost), see docs/simulator.md")
    if args.json is not None:
        args.json.write_text(json.dumps(docs, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
