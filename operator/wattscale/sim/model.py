"""The replica model: capacity, power and latency of one vLLM replica, calibrated to H100 data.

Anchors (ML.ENERGY leaderboard v3, vLLM, Llama-3.1-8B on one H100; see DESIGN.md §6):
~7,000 output tok/s at p95 inter-token latency <= 25 ms; ~486 W at batch 8, ~610 W at batch 64,
~690 W at batch 256+; 700 W board limit.

- Capacity: `capacity_tokens_per_s` output tokens/s is what one replica serves with p95 TPOT at
  the TPOT SLO. Above it the batch grows past the calibrated point and TPOT misses the SLO.
- Power is affine in utilisation u = served tokens/s / capacity:
  P(u) = idle_watts + (max_watts - idle_watts) * u, at the board, times PUE at the meter. With the
  defaults (300 W, 690 W) P(0.76) = 596 W and P(1) = 690 W match the batch-64 and batch-256
  anchors; 300 W at u = 0 sits between a truly idle H100 holding a model (~100 W) and the batch-8
  figure, because a serving replica is rarely empty for a whole minute. A replica that is still
  loading its model (cold start) draws idle power.
- Latency: each region's Ready replicas form one pool (the load balancer spreads requests) of
  c = replicas * concurrency slots, where concurrency = capacity * TPOT SLO (about 175 sequences,
  Little's law). Requests queue as in M/M/c; the probability of waiting uses the Halfin-Whitt
  approximation of Erlang C (accurate for the hundreds of slots here) and the wait tail
  P(W > t) = C * exp(-(c mu - lambda) t). TTFT = prefill (context tokens / prefill rate) + wait.
  p95 TPOT grows linearly from `tpot_floor_ms` at no load to the SLO at u = 1.
- A request meets the SLO when its TTFT and TPOT are within the SLO. Attainment is the share of
  requests that do, per minute and region, weighted by requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReplicaModel:
    """Capacity, power, cold start and SLO of one replica (defaults: Llama-3.1-8B on 1 x H100)."""

    capacity_tokens_per_s: float = 7000.0
    safe_utilisation: float = 0.9
    idle_watts: float = 300.0
    max_watts: float = 690.0
    pue: float = 1.2
    cold_start_s: int = 300
    ttft_slo_ms: float = 1000.0
    tpot_slo_ms: float = 25.0
    tpot_floor_ms: float = 8.0
    prefill_tokens_per_s: float = 20000.0

    @property
    def cold_start_minutes(self) -> int:
        """Whole minutes a new replica spends loading before it is Ready (at least 1)."""
        return max(1, -(-self.cold_start_s // 60))

    @property
    def safe_tokens_per_s(self) -> float:
        """Tokens/s one Ready replica is given before the router spills elsewhere."""
        return self.capacity_tokens_per_s * self.safe_utilisation

    @property
    def concurrency(self) -> float:
        """Sequences in flight at capacity (Little's law: tokens/s x seconds per token)."""
        return self.capacity_tokens_per_s * self.tpot_slo_ms / 1000.0

    def board_watts(self, replicas: FloatArray, tokens_per_s: FloatArray) -> FloatArray:
        """Board power of `replicas` replicas serving `tokens_per_s` between them, W."""
        served = np.minimum(tokens_per_s, replicas * self.capacity_tokens_per_s)
        dynamic = (self.max_watts - self.idle_watts) / self.capacity_tokens_per_s
        return np.asarray(replicas * self.idle_watts + served * dynamic, dtype=np.float64)

    def replicas_for(self, tokens_per_s: float) -> int:
        """Ready replicas needed to serve `tokens_per_s` at the safe utilisation (at least 1)."""
        return max(1, int(np.ceil(tokens_per_s / self.safe_tokens_per_s - 1e-9)))

    def slo_attainment(
        self,
        ready: FloatArray,
        tokens_per_s: FloatArray,
        mean_output_tokens: float,
        mean_context_tokens: float,
    ) -> FloatArray:
        """Share of requests meeting the SLO for each (ready, load) pair (same shapes)."""
        ready = np.asarray(ready, dtype=np.float64)
        load = np.asarray(tokens_per_s, dtype=np.float64)
        cap = ready * self.capacity_tokens_per_s
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(cap > 0, load / np.where(cap > 0, cap, 1.0), np.inf)
        slots = np.maximum(ready * self.concurrency, 1.0)
        beta = (1.0 - np.minimum(rho, 1.0)) * np.sqrt(slots)
        phi = np.exp(-0.5 * beta * beta) / np.sqrt(2.0 * np.pi)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            wait_prob = np.where(phi > 0, 1.0 / (1.0 + beta * ndtr(beta) / phi), 0.0)
        budget_s = self.ttft_slo_ms / 1000.0 - mean_context_tokens / self.prefill_tokens_per_s
        if budget_s <= 0:
            return np.where(load > 0, 0.0, 1.0)
        drain_per_s = cap / max(mean_output_tokens, 1e-9) * (1.0 - np.minimum(rho, 1.0))
        late = wait_prob * np.exp(-drain_per_s * budget_s)
        attained = np.where(rho < 1.0, 1.0 - late, 0.0)
        return np.where(load <= 0, 1.0, attained)

    def tpot_p95_ms(self, utilisation: FloatArray) -> FloatArray:
        """p95 time per output token at a given utilisation (beyond 1 it exceeds the SLO)."""
        return self.tpot_floor_ms + (self.tpot_slo_ms - self.tpot_floor_ms) * utilisation
