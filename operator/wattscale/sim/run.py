"""Run a set of policies on one scenario and gather the results (and the headline ratios)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from wattscale.sim.accounting import PolicyResult, account
from wattscale.sim.engine import Progress, replay
from wattscale.sim.errors import SimInputError
from wattscale.sim.policies.base import Policy
from wattscale.sim.policies.carbon_capped import CarbonCappedPolicy
from wattscale.sim.policies.greedy import GreedyPolicy
from wattscale.sim.policies.oracle import OracleSolution, solve_oracle
from wattscale.sim.policies.reactive import ReactivePolicy
from wattscale.sim.policies.static import StaticPolicy
from wattscale.sim.scenario import Scenario

POLICY_NAMES = ("wattscale", "static", "reactive", "carbon-capped", "greedy", "oracle")
OPTIONAL_POLICY_NAMES = ("wattscale-zero",)
"""Run only when named: wattscale with slo.minReplicas 0 (scale to zero and back)."""
CURRENCY = "USD"


def _wattscale() -> Policy:
    from wattscale.sim.policies.wattscale import WattscalePolicy

    return WattscalePolicy()


def _wattscale_zero() -> Policy:
    from wattscale.sim.policies.wattscale import WattscalePolicy

    return WattscalePolicy(scale_to_zero=True)


FACTORIES: dict[str, Callable[[], Policy]] = {
    "wattscale": _wattscale,
    "wattscale-zero": _wattscale_zero,
    "static": StaticPolicy,
    "reactive": ReactivePolicy,
    "carbon-capped": CarbonCappedPolicy,
    "greedy": GreedyPolicy,
}


def parse_policies(text: str | None) -> list[str]:
    """`a,b,c` -> names, checked; None or empty -> all."""
    if not text:
        return list(POLICY_NAMES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = POLICY_NAMES + OPTIONAL_POLICY_NAMES
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SimInputError(f"unknown policy {', '.join(unknown)} (choose from {', '.join(known)})")
    return list(dict.fromkeys(names))


@dataclass
class SimulationResult:
    """Every policy's result on one scenario, in the order run."""

    scenario: Scenario
    results: dict[str, PolicyResult] = field(default_factory=dict)
    oracle: OracleSolution | None = None

    def ratio(self, key: str) -> float | None:
        """Headline ratios: wattscale vs the oracle, static and reactive (None if not run)."""
        r = self.results
        ws = r.get("wattscale")
        if ws is None:
            return None
        if key == "cost_vs_oracle" and "oracle" in r and r["oracle"].total_cost > 0:
            return ws.total_cost / r["oracle"].total_cost
        if key == "savings_captured" and "oracle" in r and "static" in r:
            room = r["static"].total_cost - r["oracle"].total_cost
            return (r["static"].total_cost - ws.total_cost) / room if room > 0 else None
        if key == "savings_vs_static" and "static" in r and r["static"].total_cost > 0:
            return 1.0 - ws.total_cost / r["static"].total_cost
        for base in ("static", "reactive"):
            if key == f"energy_savings_vs_{base}" and base in r and r[base].energy_kwh > 0:
                return 1.0 - ws.energy_kwh / r[base].energy_kwh
        return None

    def headline(self) -> dict[str, float]:
        keys = (
            "cost_vs_oracle",
            "savings_captured",
            "savings_vs_static",
            "energy_savings_vs_static",
            "energy_savings_vs_reactive",
        )
        out = {k: v for k in keys if (v := self.ratio(k)) is not None}
        if "wattscale" in self.results:
            out["slo_attainment"] = self.results["wattscale"].slo_attainment
        out.update(self.scale_to_zero())
        return out

    def scale_to_zero(self) -> dict[str, float]:
        """What scale to zero saved over wattscale at minReplicas 1, and the SLO it cost."""
        ws, zero = self.results.get("wattscale"), self.results.get("wattscale-zero")
        if ws is None or zero is None or ws.total_cost <= 0:
            return {}
        return {
            "scale_to_zero_savings": 1.0 - zero.total_cost / ws.total_cost,
            "scale_to_zero_slo_cost": ws.slo_attainment - zero.slo_attainment,
        }

    def to_json(self) -> dict[str, Any]:
        """The `--json` document: the issue's keys per policy, plus context."""
        sc = self.scenario
        policies: dict[str, Any] = {}
        for name, res in self.results.items():
            entry: dict[str, Any] = dict(res.summary())
            if name == "oracle" and self.oracle is not None:
                entry["method"] = self.oracle.label
                entry["lower_bound_cost"] = self.oracle.lower_bound
                entry["solve_seconds"] = round(self.oracle.solve_seconds, 3)
            policies[name] = entry
        return {
            "currency": CURRENCY,
            "policies": policies,
            "headline": self.headline(),
            "scenario": {
                "regions": list(sc.regions),
                "home_region": sc.home_region,
                "start": sc.start.isoformat().replace("+00:00", "Z"),
                "days": sc.minutes / 1440,
                "peak_replicas": sc.peak_replicas,
                "gpu_hour_cost": sc.gpu_hour_cost,
                "trace": sc.load.source,
                "cold_start_seconds": sc.model.cold_start_s,
                "ttft_slo_ms": sc.model.ttft_slo_ms,
                "tpot_slo_ms": sc.model.tpot_slo_ms,
                "reading_window_seconds": sc.reading_window_seconds,
                "price_column": "price_usd_mwh (fixed FX, see the data README)",
                "price_markets": {
                    r.region: {
                        "kind": r.kind,
                        "publish_local_time": (
                            None
                            if r.publish_local_time is None
                            else r.publish_local_time.strftime("%H:%M")
                        ),
                        "time_zone": r.time_zone,
                        "source": r.source,
                    }
                    for r in sc.price_knowledge.rules
                },
            },
            "warnings": list(sc.warnings),
        }


def simulate(
    scenario: Scenario,
    policies: list[str],
    progress: Callable[[str, int], Progress | None] | None = None,
    oracle_integer: bool = False,
    factories: dict[str, Callable[[], Policy]] | None = None,
) -> SimulationResult:
    """Replay each policy (the oracle is solved, then accounted the same way).

    `factories` replaces how named policies are built (sensitivity studies).
    """
    make = {**FACTORIES, **(factories or {})}
    out = SimulationResult(scenario=scenario)
    for name in policies:
        tick = progress(name, scenario.minutes) if progress is not None else None
        if name == "oracle":
            solution = solve_oracle(scenario, integer=oracle_integer)
            out.oracle = solution
            out.results[name] = account(name, scenario, solution.trajectory, (solution.label,))
            if tick is not None:
                tick(scenario.minutes - 1)
            continue
        policy = make[name]()
        result = replay(policy, scenario, tick)
        objective = getattr(policy, "objective", None)
        if isinstance(objective, str):
            price = float(getattr(policy, "carbon_price_per_tonne", 0.0) or 0.0)
            result = replace(result, objective=objective, carbon_price_per_tonne=price)
        out.results[name] = result
    return out
