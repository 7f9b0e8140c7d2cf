"""The replica model: capacity, power and latency of one vLLM replica, calibrated to H100 data.

Anchors (ML.ENERGY leaderboard v3, vLLM, Llama-3.1-8B on one H100; see DESIGN.md §6):
~7,000 output tok/s at p95 inter-token latency <= 25 ms; ~486 W at batch 8, ~610 W at batch 64
(~0.12 J per token there), ~690 W at batch 256+; 700 W board limit.

- Latency curve: p95 inter-token latency (ITL) of a replica serving x output tokens/s is
  L95(x) = floor / (1 - x / x_sat), a queueing-shaped curve that is `tpot_floor_ms` at no load,
  the TPOT SLO at x = `capacity_tokens_per_s` (so x_sat = capacity / (1 - floor / SLO), about
  8,950 tok/s) and degrades smoothly towards saturation. The engine batches at most `max_batch`
  sequences, which caps what one replica can serve (`max_tokens_per_s`, about 7,500 tok/s).
  A request's TPOT is log-normal around the mean ITL (spread `tpot_spread_log`), so at capacity
  exactly 5 % of requests miss the TPOT SLO (it is a p95 SLO) and far fewer at 90 %.
- Batch (sequences in flight) b(x) = x x mean ITL (Little's law); with the defaults b is ~64 at
  5,600 tok/s (0.11 J/token at 610 W) and ~137 at capacity.
- Power of a Ready replica is a function of its batch through the anchors, log-linear in b
  (486 W at 8, 610 W at 64, 690 W at 256 and beyond), falling linearly to `empty_watts` (a
  replica holding its model with nothing in flight) below one sequence. A replica that is still
  loading draws `empty_watts`. Facility power is board power x PUE.
- `idle_watts` / `max_watts` are the *configured* affine model (what a Region's GPU offer says,
  P(u) = idle + (max - idle) u): what a policy is told before it has measured anything. The
  accounting never uses them.
- Queue: a region's Ready replicas share one fluid backlog carried across minutes (requests that
  could not be served wait, and their TTFT counts the wait); on top of it the short-term wait
  of an M/M/c pool of c = replicas x max_batch slots (Halfin-Whitt approximation of Erlang C).
  TTFT = prefill (context tokens / prefill rate) + wait.
- A request meets the SLO when its TTFT and TPOT are within the SLO (`serve_minute`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]

P95_Z = 1.6448536269514722


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
    tpot_floor_ms: float = 5.45
    prefill_tokens_per_s: float = 20000.0
    max_batch: int = 256
    empty_watts: float = 120.0
    power_anchor_batch: tuple[float, ...] = (8.0, 64.0, 256.0)
    power_anchor_watts: tuple[float, ...] = (486.0, 610.0, 690.0)
    tpot_spread_log: float = 0.15

    @property
    def cold_start_minutes(self) -> int:
        """Whole minutes a new replica spends loading before it is Ready (at least 1)."""
        return max(1, -(-self.cold_start_s // 60))

    @property
    def safe_tokens_per_s(self) -> float:
        """Tokens/s one Ready replica is given before the router spills elsewhere."""
        return self.capacity_tokens_per_s * self.safe_utilisation

    @property
    def saturation_tokens_per_s(self) -> float:
        """Where the latency curve diverges (x_sat)."""
        return self.capacity_tokens_per_s / (1.0 - self.tpot_floor_ms / self.tpot_slo_ms)

    @cached_property
    def max_tokens_per_s(self) -> float:
        """What one replica serves at its largest batch (`max_batch` sequences in flight)."""
        lo, hi = 0.0, self.saturation_tokens_per_s
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if float(self.batch(np.asarray(mid))) < self.max_batch:
                lo = mid
            else:
                hi = mid
        return lo

    @property
    def concurrency(self) -> float:
        """Sequences in flight at capacity (Little's law)."""
        return float(self.batch(np.asarray(self.capacity_tokens_per_s)))

    def itl_p95_ms(self, tokens_per_s: FloatArray) -> FloatArray:
        """p95 inter-token latency of one replica serving `tokens_per_s` (inf at saturation)."""
        x = np.asarray(tokens_per_s, dtype=np.float64)
        room = 1.0 - x / self.saturation_tokens_per_s
        with np.errstate(divide="ignore"):
            return np.where(room > 0, self.tpot_floor_ms / np.maximum(room, 1e-12), np.inf)

    def tpot_p95_ms(self, utilisation: FloatArray) -> FloatArray:
        """p95 time per output token at a utilisation (of capacity): the SLO at 1."""
        return self.itl_p95_ms(np.asarray(utilisation) * self.capacity_tokens_per_s)

    def batch(self, tokens_per_s: FloatArray) -> FloatArray:
        """Sequences in flight at `tokens_per_s` per replica (Little's law on the mean ITL)."""
        mean_s = self.itl_p95_ms(tokens_per_s) / 1000.0 / math.exp(P95_Z * self.tpot_spread_log)
        return np.asarray(np.asarray(tokens_per_s) * mean_s, dtype=np.float64)

    def replica_watts(self, tokens_per_s: FloatArray) -> FloatArray:
        """Board power of one Ready replica serving `tokens_per_s` (ML.ENERGY anchors)."""
        x = np.minimum(np.asarray(tokens_per_s, dtype=np.float64), self.max_tokens_per_s)
        b = np.maximum(self.batch(np.maximum(x, 0.0)), 0.0)
        logs = np.log2(np.asarray(self.power_anchor_batch))
        watts = np.asarray(self.power_anchor_watts)
        slope = (watts[1] - watts[0]) / (logs[1] - logs[0])
        at_one = watts[0] - slope * logs[0]  # the first segment extended down to b = 1
        high = np.interp(
            np.log2(np.maximum(b, 1.0)),
            np.concatenate([[0.0], logs]),
            np.concatenate([[at_one], watts]),
        )
        low = self.empty_watts + (at_one - self.empty_watts) * np.minimum(b, 1.0)
        return np.asarray(np.where(b >= 1.0, high, low), dtype=np.float64)

    def board_watts(
        self, allocated: FloatArray, ready: FloatArray, tokens_per_s: FloatArray
    ) -> FloatArray:
        """Board power of a region: Ready replicas sharing `tokens_per_s`, loading ones empty."""
        ready = np.asarray(ready, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(ready > 0, np.asarray(tokens_per_s) / np.where(ready > 0, ready, 1), 0)
        loading = np.maximum(np.asarray(allocated, dtype=np.float64) - ready, 0.0)
        return np.asarray(
            ready * self.replica_watts(per) + loading * self.empty_watts, dtype=np.float64
        )

    @cached_property
    def power_lower_bound(self) -> tuple[float, float]:
        """(a, s) with a + s x <= replica_watts(x) for every x in [0, max_tokens_per_s].

        The chord slope from no load to the largest batch, and the largest intercept that stays
        below the curve: the curve is increasing, so checking each grid cell's left value
        against the line at its right edge proves the bound between grid points too.
        """
        top = self.max_tokens_per_s
        xs = np.linspace(0.0, top, 20001)
        watts = self.replica_watts(xs)
        slope = float((watts[-1] - watts[0]) / top)
        intercept = float(np.min(watts[:-1] - slope * xs[1:]))
        return intercept, slope

    @cached_property
    def power_upper_bound(self) -> tuple[float, float]:
        """(a, s) with a + s x >= replica_watts(x) on [0, max_tokens_per_s], same slope as the
        lower bound (what an hour of negative prices needs: there more power costs less)."""
        top = self.max_tokens_per_s
        xs = np.linspace(0.0, top, 20001)
        watts = self.replica_watts(xs)
        slope = self.power_lower_bound[1]
        return float(np.max(watts[1:] - slope * xs[:-1])), slope

    def replicas_for(self, tokens_per_s: float) -> int:
        """Ready replicas needed to serve `tokens_per_s` at the safe utilisation (at least 1)."""
        return max(1, int(np.ceil(tokens_per_s / self.safe_tokens_per_s - 1e-9)))

    def tpot_met(self, tokens_per_s_per_replica: FloatArray) -> FloatArray:
        """Share of requests whose TPOT is within the SLO at a per-replica throughput."""
        l95 = self.itl_p95_ms(tokens_per_s_per_replica)
        with np.errstate(divide="ignore"):
            z = np.log(self.tpot_slo_ms / l95) / self.tpot_spread_log + P95_Z
        return np.asarray(ndtr(z), dtype=np.float64)


@dataclass(frozen=True)
class MinuteService:
    """What a region's pool did in one minute (arrays over regions)."""

    served_tokens_per_s: FloatArray  # including backlog served
    backlog_tokens: FloatArray  # carried into the next minute
    met_share: FloatArray  # share of this minute's arrivals meeting the SLO
    ttft_p95_s: FloatArray
    tpot_p95_s: FloatArray
    waiting_requests_per_replica: FloatArray


def serve_minute(
    model: ReplicaModel,
    ready: FloatArray,
    arrivals_tokens_per_s: FloatArray,
    backlog_tokens: FloatArray,
    mean_output_tokens: float,
    mean_context_tokens: float,
) -> MinuteService:
    """One minute of each region's pool: a fluid backlog plus the short-term M/M/c wait."""
    ready = np.asarray(ready, dtype=np.float64)
    lam = np.asarray(arrivals_tokens_per_s, dtype=np.float64)
    back = np.asarray(backlog_tokens, dtype=np.float64)
    mu = ready * model.max_tokens_per_s
    offered = lam * 60.0 + back
    served = np.minimum(offered, mu * 60.0)
    left = offered - served
    rate = served / 60.0
    with np.errstate(divide="ignore", invalid="ignore"):
        per_replica = np.where(ready > 0, rate / np.where(ready > 0, ready, 1.0), 0.0)
    prefill_s = mean_context_tokens / model.prefill_tokens_per_s
    budget_s = model.ttft_slo_ms / 1000.0 - prefill_s
    # Fluid queue Q(s) = back + (lam - mu) s, clipped at 0: an arrival at s waits Q(s) / mu.
    late_fluid = _fluid_late_share(back, lam, mu, max(budget_s, 0.0))
    wait95_fluid = _fluid_wait_quantile(back, lam, mu, 0.95)
    # Short-term wait of an M/M/c pool of ready x max_batch slots (Halfin-Whitt).
    rho = np.where(mu > 0, np.minimum(lam / np.where(mu > 0, mu, 1.0), 1.0), 1.0)
    slots = np.maximum(ready * model.max_batch, 1.0)
    beta = (1.0 - rho) * np.sqrt(slots)
    phi = np.exp(-0.5 * beta * beta) / np.sqrt(2.0 * np.pi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        wait_prob = np.where(phi > 0, 1.0 / (1.0 + beta * ndtr(beta) / phi), 0.0)
        drain = mu / max(mean_output_tokens, 1e-9) * (1.0 - rho)
        late_mmc = np.where(drain > 0, wait_prob * np.exp(-drain * max(budget_s, 0.0)), 1.0)
        wait95_mmc = np.where(
            (wait_prob > 0.05) & (drain > 0), np.log(wait_prob / 0.05) / drain, 0.0
        )
    late_mmc = np.where(rho < 1.0, late_mmc, 1.0)
    tpot_ok = model.tpot_met(per_replica)
    met = (1.0 - late_fluid) * (1.0 - late_mmc) * tpot_ok
    if budget_s <= 0:
        met = np.zeros_like(met)
    met = np.where(ready > 0, met, 0.0)
    met = np.where(lam > 0, met, 1.0)
    return MinuteService(
        served_tokens_per_s=rate,
        backlog_tokens=left,
        met_share=np.clip(met, 0.0, 1.0),
        ttft_p95_s=prefill_s + wait95_fluid + np.where(np.isfinite(wait95_mmc), wait95_mmc, 60.0),
        tpot_p95_s=model.itl_p95_ms(per_replica) / 1000.0,
        waiting_requests_per_replica=np.where(
            ready > 0, left / max(mean_output_tokens, 1e-9) / np.maximum(ready, 1e-9), 0.0
        ),
    )


def _fluid_late_share(
    back: FloatArray, lam: FloatArray, mu: FloatArray, budget: float
) -> FloatArray:
    """Share of a minute's arrivals whose fluid wait Q(s) / mu exceeds `budget` seconds."""
    limit = budget * mu
    growth = lam - mu
    with np.errstate(divide="ignore", invalid="ignore"):
        # Draining (growth < 0): late while Q(s) > limit, i.e. s < (back - limit) / -growth.
        drain_share = np.clip((back - limit) / np.where(growth < 0, -growth, 1.0) / 60.0, 0, 1)
        # Growing: late once Q(s) > limit, i.e. s > (limit - back) / growth.
        grow_share = np.clip(
            1.0 - (limit - back) / np.where(growth > 0, growth, 1.0) / 60.0, 0.0, 1.0
        )
    share = np.where(growth < 0, drain_share, np.where(growth > 0, grow_share, back > limit))
    return np.asarray(np.where(mu > 0, share, 1.0), dtype=np.float64)


def _fluid_wait_quantile(back: FloatArray, lam: FloatArray, mu: FloatArray, q: float) -> FloatArray:
    """The q-quantile over the minute's arrivals of the fluid wait, seconds."""
    growth = lam - mu
    s = np.where(growth > 0, q * 60.0, (1.0 - q) * 60.0)
    queue = np.maximum(back + growth * s, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(mu > 0, queue / np.where(mu > 0, mu, 1.0), 60.0))
