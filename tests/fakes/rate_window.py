"""Capacity windows read from the vLLM emulator the way the reader reads them through Prometheus.

Shared by the capacity learner's transient tests and ``bench/capacity.py``: an ``x[w]`` window of
``sum(rate(...))`` read every loop, per-replica tokens/s divided by the pods reporting now (a
new pod counts fully though its counter covers part of the window; a removed pod's counts stay
in the window), p95s by ``histogram_quantile`` over the buckets summed over pods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tests.fakes.vllm_emulator import TPOT_BUCKETS_SECONDS, TTFT_BUCKETS_SECONDS, Emulator, Replica
from wattscale.metrics import CapacityObservation


def histogram_quantile(q: float, bounds: Sequence[float], counts: list[float]) -> float:
    """Prometheus' histogram_quantile over non-cumulative bucket counts (+Inf last)."""
    total = sum(counts)
    if total <= 0:
        return math.nan
    rank, acc = q * total, 0.0
    for i, c in enumerate(counts):
        if acc + c >= rank and c > 0:
            if i == len(bounds):  # the +Inf bucket: Prometheus returns the last finite bound
                return bounds[-1]
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * (rank - acc) / c
        acc += c
    return bounds[-1]


Snapshot = dict[str, tuple[Replica, float, list[int], list[int]]]


class RateWindowMeter:
    """Overlapping ``window_seconds`` windows, one per :meth:`window` call."""

    def __init__(self, emu: Emulator, window_seconds: float) -> None:
        self.emu = emu
        self.window_seconds = window_seconds
        self.history: list[tuple[float, Snapshot]] = []
        self.snapshot()

    def snapshot(self) -> None:
        snap = {
            r.pod: (r, r.generation_tokens_total, list(r.ttft.counts), list(r.tpot.counts))
            for r in self.emu.replicas
        }
        self.history.append((self.emu.now, snap))
        self.history = [h for h in self.history if h[0] >= self.emu.now - 3 * self.window_seconds]

    def window(self) -> CapacityObservation:
        self.snapshot()
        now, cur = self.history[-1]
        _, base = min(self.history, key=lambda h: abs(h[0] - (now - self.window_seconds)))
        gen = 0.0
        ttft = [0.0] * (len(TTFT_BUCKETS_SECONDS) + 1)
        tpot = [0.0] * (len(TPOT_BUCKETS_SECONDS) + 1)
        for pod in set(cur) | set(base):
            if pod in cur:
                _, g1, a1, b1 = cur[pod]
            else:  # removed: its series still has samples in the window, up to its removal
                rep = base[pod][0]
                g1, a1, b1 = rep.generation_tokens_total, rep.ttft.counts, rep.tpot.counts
            g0, a0, b0 = base[pod][1:] if pod in base else (0.0, [0] * len(a1), [0] * len(b1))
            gen += g1 - g0
            ttft = [s + x - y for s, x, y in zip(ttft, a1, a0, strict=True)]
            tpot = [s + x - y for s, x, y in zip(tpot, b1, b0, strict=True)]
        pods = len(self.emu.replicas)
        t95 = histogram_quantile(0.95, TTFT_BUCKETS_SECONDS, ttft)
        p95 = histogram_quantile(0.95, TPOT_BUCKETS_SECONDS, tpot)
        return CapacityObservation(
            tokens_per_second_per_replica=gen / self.window_seconds / pods,
            ttft_p95_seconds=None if math.isnan(t95) else t95,
            tpot_p95_seconds=None if math.isnan(p95) else p95,
            waiting_requests_per_replica=sum(len(r.waiting) for r in self.emu.replicas) / pods,
            replicas=pods,
            t_seconds=self.emu.now,
            window_seconds=self.window_seconds,
        )
