"""Benchmark: cost at equal SLO attainment, wattscale's curve against an HPA's (held-out runs).

wattscale and the ``reactive`` HPA each trade cost for SLO attainment through one knob a user
sets: the HPA's target utilisation (the baseline's 0.7), and wattscale's headroom
(``spec.slo.headroomPercent``; unset, the default, it is derived from the measured forecast
error). At their defaults the two land at different attainments, so "cheaper" alone does not
say which is the better autoscaler, and "as much SLO" alone does not say what it costs. This
replays the HPA at several targets and wattscale at its default and at fixed headrooms, on
``bench/heldout.py``'s five scenarios, and reads each default's rival off the other's curve:
what the HPA costs at wattscale's attainment, and what wattscale costs at the HPA's (linear
between the two nearest points of its frontier, the settings no other beats on both cost and
SLO; never extrapolated, "-" outside it). Exact capacity hint; about 30 minutes on two cores.

    python bench/frontier.py [--only default,apac] [--jobs 2] [--json OUT]
    python bench/frontier.py --summarise OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from heldout import (  # the held-out scenarios and their options, as bench/heldout.py
    add_options,
    chosen,
    run_all,
    scenario,
)

from wattscale.sim.policies.base import Policy
from wattscale.sim.policies.reactive import TARGET_UTILISATION, ReactivePolicy
from wattscale.sim.policies.wattscale import WattscalePolicy
from wattscale.sim.run import simulate

HPA_TARGETS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
"""The HPA's target utilisations replayed (0.7 is the baseline's default)."""
HEADROOMS = (None, 1.15, 1.25, 1.35, 1.5)
"""wattscale's headrooms replayed (None: derived, the default)."""


HPA = {f"hpa{target:g}": target for target in HPA_TARGETS}
"""Policy name -> the HPA's target."""
WATTSCALE = {("ws" if h is None else f"ws{h:g}"): h for h in HEADROOMS}
"""Policy name -> wattscale's headroom."""


def _factories() -> dict[str, Callable[[], Policy]]:
    out: dict[str, Callable[[], Policy]] = {}
    for name, target in HPA.items():
        out[name] = partial(ReactivePolicy, target)
    for name, headroom in WATTSCALE.items():
        out[name] = partial(WattscalePolicy, headroom=headroom)
    return out


def run(name: str) -> dict[str, Any]:
    factories = _factories()
    result = simulate(scenario(name), [*factories, "oracle"], factories=factories)
    return {"scenario": name, "policies": result.to_json()["policies"]}


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (attainment, cost) points no other point beats on both (as much SLO for no more
    cost), by attainment: a knob's replays are noisy, and a setting that costs more for less
    SLO than another is not one a user would pick."""
    best = sorted(set(points), key=lambda p: (-p[0], p[1]))
    out: list[tuple[float, float]] = []
    for p in best:
        if not out or p[1] < out[-1][1]:
            out.append(p)
    return out[::-1]


def cost_at(points: Sequence[tuple[float, float]], attainment: float) -> float | None:
    """Cost on the frontier of (attainment, cost) points at ``attainment``: linear between the
    nearest frontier point below and the nearest above; None outside the frontier."""
    front = frontier(points)
    below = [p for p in front if p[0] <= attainment]
    above = [p for p in front if p[0] >= attainment]
    if not below or not above:
        return None
    lo, hi = below[-1], above[0]
    if hi[0] == lo[0]:
        return min(lo[1], hi[1])
    return lo[1] + (hi[1] - lo[1]) * (attainment - lo[0]) / (hi[0] - lo[0])


def _curve(pol: dict[str, Any], names: dict[str, Any]) -> list[tuple[float, float]]:
    """(attainment, cost) of the policies ``names`` lists."""
    return [(pol[n]["slo_attainment"], pol[n]["total_cost"]) for n in names if n in pol]


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Both defaults and each one's rival on the other's curve."""
    pol = doc["policies"]
    ws, hpa = pol["ws"], pol[f"hpa{TARGET_UTILISATION:g}"]
    return {
        "scenario": doc["scenario"],
        "oracle": pol["oracle"]["total_cost"],
        "ws": (ws["slo_attainment"], ws["total_cost"]),
        "hpa": (hpa["slo_attainment"], hpa["total_cost"]),
        "hpa_at_ws_slo": cost_at(_curve(pol, HPA), ws["slo_attainment"]),
        "ws_at_hpa_slo": cost_at(_curve(pol, WATTSCALE), hpa["slo_attainment"]),
    }


def _pct(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{100 * (1 - a / b):+.1f} %"


def _usd(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def lines(doc: dict[str, Any]) -> list[str]:
    s = summary(doc)
    out = [f"{doc['scenario']}: oracle {s['oracle']:,.2f} USD"]
    for name, p in doc["policies"].items():
        if name != "oracle":
            out.append(f"  {name:<8} {p['total_cost']:>10,.2f} {100 * p['slo_attainment']:>7.2f} %")
    (ws_slo, ws_usd), (hpa_slo, hpa_usd) = s["ws"], s["hpa"]
    out.append(
        f"  at wattscale's {100 * ws_slo:.2f} %: wattscale {ws_usd:,.2f}, HPA "
        f"{_usd(s['hpa_at_ws_slo'])} (wattscale saves {_pct(ws_usd, s['hpa_at_ws_slo'])})"
    )
    out.append(
        f"  at the HPA's {100 * hpa_slo:.2f} %: HPA {hpa_usd:,.2f}, wattscale "
        f"{_usd(s['ws_at_hpa_slo'])} (wattscale saves {_pct(s['ws_at_hpa_slo'], hpa_usd)})"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/frontier.py", description=__doc__)
    add_options(parser)
    parser.add_argument("--summarise", type=Path, help="print a --json result, replay nothing")
    args = parser.parse_args(argv)
    if args.summarise:
        for doc in json.loads(args.summarise.read_text()):
            print("\n".join(lines(doc)))
        return 0
    names = chosen(args.only)
    if names is None:
        return 2
    run_all(names, run, args.jobs, args.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
