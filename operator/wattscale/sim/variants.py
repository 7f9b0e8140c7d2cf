"""Variants of Llama-3.1-8B for `wattscale simulate --variants`: the same model on other GPUs.

A run with variants replays the same trace, prices and carbon with one column per (region,
variant) (`sim.pools`); wattscale plans them as pools (`planner`: a pool is a variant in a
region). Figures, all for Llama-3.1-8B(-Instruct), BF16, vLLM, one GPU per replica:

- ``h100`` (NVIDIA-H100-80GB-HBM3): the replay's default `ReplicaModel`, from the ML.ENERGY
  leaderboard v3 (Dec 2025, vLLM 0.11, H100): ~7,000 output tok/s within a 25 ms p95 TPOT,
  486 W at batch 8, 610 W at batch 64 (0.12 J/token), 690 W from batch 256 (see DESIGN.md §6;
  https://ml.energy/blog/measurement/energy/llm-inference-energy-a-longitudinal-analysis).
- ``a100`` (NVIDIA-A100-SXM4-80GB): ML.ENERGY v3 measures H100 and B200 only, and the A100
  runs of its leaderboard v2.0 (A100-SXM4-40GB, Sept 2024) were not retrievable here, so the
  A100 point is the closest documented derivation, not a measurement: decoding an 8B model is
  memory-bound, so throughput and the no-load TPOT scale with HBM bandwidth (2.04 TB/s vs
  3.35 TB/s: x0.61 -> ~4,300 tok/s, 8.9 ms), prefill with dense BF16 compute (312 vs 989
  TFLOP/s: x0.32), and the power anchors with the board limit (400 W vs 700 W: x0.57), which
  keeps the leaderboard's shape of power over batch. Its GPU-hour price is the H100's x0.6
  (the ratio of on-demand list prices, e.g. 1.79 vs 2.99 USD/h at one cloud in 2024-25).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from wattscale.sim.errors import SimInputError
from wattscale.sim.markets import MarketRule
from wattscale.sim.model import ReplicaModel
from wattscale.sim.pools import PoolModels
from wattscale.sim.scenario import Scenario

A100_BANDWIDTH_RATIO = 2.039 / 3.35
A100_COMPUTE_RATIO = 312.0 / 989.0
A100_POWER_RATIO = 400.0 / 700.0
A100_PRICE_RATIO = 0.6


@dataclass(frozen=True)
class SimVariant:
    """One way to serve the model: a GPU product and what one replica of it does."""

    name: str
    gpu_product: str
    model: ReplicaModel
    price_ratio: float  # its GPU-hour price / the run's --gpu-hour-cost (the H100's)


def _a100(h100: ReplicaModel) -> ReplicaModel:
    """Llama-3.1-8B on one A100-SXM4-80GB, derived from the H100 figures (module doc)."""
    return replace(
        h100,
        capacity_tokens_per_s=round(h100.capacity_tokens_per_s * A100_BANDWIDTH_RATIO, -2),
        tpot_floor_ms=h100.tpot_floor_ms / A100_BANDWIDTH_RATIO,
        prefill_tokens_per_s=h100.prefill_tokens_per_s * A100_COMPUTE_RATIO,
        idle_watts=h100.idle_watts * A100_POWER_RATIO,
        max_watts=h100.max_watts * A100_POWER_RATIO,
        empty_watts=h100.empty_watts * A100_POWER_RATIO,
        power_anchor_watts=tuple(w * A100_POWER_RATIO for w in h100.power_anchor_watts),
    )


def catalogue(h100: ReplicaModel) -> dict[str, SimVariant]:
    """The variants `--variants` may name, built on the run's H100 model (its SLO, cold start)."""
    return {
        "h100": SimVariant("h100", "NVIDIA-H100-80GB-HBM3", h100, 1.0),
        "a100": SimVariant("a100", "NVIDIA-A100-SXM4-80GB", _a100(h100), A100_PRICE_RATIO),
    }


def parse_variants(text: str, h100: ReplicaModel) -> list[SimVariant]:
    """`h100,a100` -> the variants, checked (unknown or repeated names are refused)."""
    known = catalogue(h100)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise SimInputError(
            f"--variants: unknown variant {', '.join(unknown) or '(none)'} "
            f"(choose from {', '.join(known)})"
        )
    if len(set(names)) != len(names):
        raise SimInputError(f"--variants: a variant is named twice ({text})")
    return [known[n] for n in names]


def expand(scenario: Scenario, variants: list[SimVariant]) -> Scenario:
    """The scenario with one column per (region, variant), region-major; each region offers
    every variant's GPU product with the scenario's quota (in replicas of one GPU)."""
    n_v = len(variants)
    regions = scenario.regions
    columns = tuple(f"{r}/{v.name}" for r in regions for v in variants)
    region_of = tuple(i for i in range(len(regions)) for _ in variants)
    variant_of = tuple(v for _ in regions for v in range(n_v))
    repeat = np.asarray(region_of)
    markets: tuple[MarketRule, ...] = ()
    if scenario.markets:  # empty: every region real-time
        markets = tuple(scenario.markets[i] for i in region_of)
    lead = scenario.price_lead_usd_mwh
    pools = PoolModels(
        names=tuple(v.name for v in variants),
        products=tuple(v.gpu_product for v in variants),
        models=tuple(v.model for v in variants),
        gpu_hour_cost=tuple(scenario.gpu_hour_cost * v.price_ratio for v in variants),
        region_names=regions,
        variant_of=variant_of,
        region_of=region_of,
    )
    return replace(
        scenario,
        regions=columns,
        home_region=f"{scenario.home_region}/{variants[0].name}",
        price_usd_mwh=scenario.price_usd_mwh[:, repeat],
        carbon_g_per_kwh=scenario.carbon_g_per_kwh[:, repeat],
        quota=tuple(scenario.quota[i] for i in region_of),
        markets=markets,
        price_lead_usd_mwh=None if lead is None else lead[repeat],
        pools=pools,
    )
