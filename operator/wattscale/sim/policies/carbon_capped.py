"""`carbon-capped`: like the KEDA carbon-aware operator, home region only.

An HPA-like scaler (the `reactive` policy's) whose maximum replica count is capped by bands of the
home region's current carbon intensity, as the Carbon Aware KEDA Operator does with
`maxReplicasByCarbonIntensity`. Bands are set from the trailing 7 days of the region's own
intensity (known history only): below the median the cap is the peak count, between the median
and the 80th percentile 80 % of it, above that 60 %. A cap below the load costs SLO: that is the
trade-off this approach makes. Without carbon data for the home region it behaves as `reactive`.
"""

from __future__ import annotations

import math

import numpy as np

from wattscale.sim.policies.base import IntArray, Observation, home_only, peak_replicas_needed
from wattscale.sim.policies.reactive import HpaScaler
from wattscale.sim.scenario import Scenario

TRAILING_HOURS = 7 * 24
BANDS = ((50.0, 1.0), (80.0, 0.8), (100.0, 0.6))  # (percentile up to, share of the peak count)


class CarbonCappedPolicy:
    """HPA-like scaling with a carbon-banded replica cap."""

    name = "carbon-capped"

    def __init__(self) -> None:
        self._hpa = HpaScaler()
        self._peak = 1
        self._cap_hour = -1
        self._cap = 0

    def initial(self, scenario: Scenario) -> IntArray:
        self._peak = peak_replicas_needed(scenario)
        n = self._hpa.start_replicas(scenario)
        return home_only(len(scenario.regions), scenario.home, n)

    def cap(self, obs: Observation) -> int:
        """Maximum replicas allowed at the current carbon intensity (recomputed hourly)."""
        if self._cap_hour != obs.hour:
            self._cap_hour = obs.hour
            self._cap = self._band_cap(obs)
        return self._cap

    def _band_cap(self, obs: Observation) -> int:
        history = obs.past_carbon_g_per_kwh[-TRAILING_HOURS:, obs.home]
        now = history[-1] if history.shape[0] else np.nan
        if np.isnan(now):
            return obs.quota[obs.home]
        edges = np.percentile(history[~np.isnan(history)], [b[0] for b in BANDS])
        for edge, (_, share) in zip(edges, BANDS, strict=True):
            if now <= edge:
                return max(obs.min_replicas, math.floor(self._peak * share))
        return max(obs.min_replicas, math.floor(self._peak * BANDS[-1][1]))

    def decide(self, obs: Observation) -> IntArray:
        home = obs.home
        ready = int(obs.ready[home])
        current = int(obs.allocated[home])
        capacity = max(ready, 1) * obs.model.capacity_tokens_per_s
        utilisation = obs.last_utilisation(capacity)
        n = self._hpa.recommend(obs.minute, current, ready, utilisation, obs.min_replicas)
        return home_only(len(obs.regions), home, min(n, self.cap(obs), obs.quota[home]))
