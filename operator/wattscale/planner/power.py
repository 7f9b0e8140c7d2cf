"""Replica power model: default idle/max watts per GPU product, affine in utilisation.

The planner models the electrical power of one vLLM replica as affine in its utilisation::

    P(util) = idle_watts + (max_watts - idle_watts) * util,   util = load / capacity

where ``capacity`` is the token rate the replica serves within the latency SLO. Summed over the
``r`` replicas of a pool that share ``load`` evenly, the pool draws
``r * idle_watts + (max_watts - idle_watts) * load / capacity``: linear in (r, load), which is
what makes the optimisation a small mixed-integer linear problem and why consolidation pays
(idle power is far from zero).

Defaults, per GPU (watts), and where they come from:

* H100 (SXM, 700 W board limit). ML.ENERGY leaderboard v3, vLLM, Llama-3.1-8B on one H100:
  ~486 W at batch 8, ~610 W at batch 64, ~690 W at batch 256 and above. ``max_watts`` = 690
  (the saturated figure: slightly pessimistic when the SLO caps the batch lower). ``idle_watts``
  = 90: an H100 that holds a model in HBM with a live CUDA context idles at about 70-100 W
  (nvidia-smi readings reported by operators; assumption, not a leaderboard figure).
* H200: same board limit as H100; assumed like H100 (idle 100 W, max 690 W).
* A100 (SXM 80 GB, 400 W board limit): assumption idle 60 W, max 380 W.
* L40S (350 W board limit): assumption idle 40 W, max 330 W.
* L4 (72 W board limit): assumption idle 16 W, max 70 W.
* B200 (1000 W board limit): assumption idle 140 W, max 950 W.

Host share: the CPU, memory, NICs and fans of the server, split per GPU. Assumption: 50 W idle
and 100 W busy per GPU (a DGX-class 8-GPU server draws roughly 0.8-1.6 kW outside its GPUs).
Every figure can be overridden per Region/GPU product; these are only defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_GPU_POWER",
    "DEFAULT_HOST_IDLE_WATTS_PER_GPU",
    "DEFAULT_HOST_MAX_WATTS_PER_GPU",
    "GpuPower",
    "ReplicaPower",
    "replica_power",
]

DEFAULT_HOST_IDLE_WATTS_PER_GPU = 50.0
DEFAULT_HOST_MAX_WATTS_PER_GPU = 100.0


@dataclass(frozen=True, slots=True)
class GpuPower:
    """Power of one GPU serving a model: idle (model loaded, no requests) and at capacity."""

    idle_watts: float
    max_watts: float
    board_limit_watts: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.idle_watts <= self.max_watts:
            raise ValueError("need 0 <= idle_watts <= max_watts")


DEFAULT_GPU_POWER: dict[str, GpuPower] = {
    "H100": GpuPower(idle_watts=90.0, max_watts=690.0, board_limit_watts=700.0),
    "H200": GpuPower(idle_watts=100.0, max_watts=690.0, board_limit_watts=700.0),
    "A100": GpuPower(idle_watts=60.0, max_watts=380.0, board_limit_watts=400.0),
    "L40S": GpuPower(idle_watts=40.0, max_watts=330.0, board_limit_watts=350.0),
    "L4": GpuPower(idle_watts=16.0, max_watts=70.0, board_limit_watts=72.0),
    "B200": GpuPower(idle_watts=140.0, max_watts=950.0, board_limit_watts=1000.0),
}


@dataclass(frozen=True, slots=True)
class ReplicaPower:
    """Power of one replica (all its GPUs plus their host share), before PUE."""

    idle_watts: float
    max_watts: float

    def at_utilisation(self, util: float) -> float:
        """Watts at utilisation ``util`` in [0, 1] (clamped)."""
        u = min(max(util, 0.0), 1.0)
        return self.idle_watts + (self.max_watts - self.idle_watts) * u


def replica_power(
    gpu_product: str,
    gpus_per_replica: int = 1,
    *,
    override: GpuPower | None = None,
    host_idle_watts_per_gpu: float = DEFAULT_HOST_IDLE_WATTS_PER_GPU,
    host_max_watts_per_gpu: float = DEFAULT_HOST_MAX_WATTS_PER_GPU,
) -> ReplicaPower:
    """Idle and max watts of one replica of ``gpus_per_replica`` GPUs of ``gpu_product``.

    Raises ``KeyError`` for a product missing from :data:`DEFAULT_GPU_POWER` when no
    ``override`` is given. Product names are matched case-insensitively on the table keys.
    """
    if gpus_per_replica < 1:
        raise ValueError("gpus_per_replica must be >= 1")
    gpu = override
    if gpu is None:
        table = {k.upper(): v for k, v in DEFAULT_GPU_POWER.items()}
        gpu = table[gpu_product.upper()]
    n = float(gpus_per_replica)
    return ReplicaPower(
        idle_watts=n * (gpu.idle_watts + host_idle_watts_per_gpu),
        max_watts=n * (gpu.max_watts + host_max_watts_per_gpu),
    )
