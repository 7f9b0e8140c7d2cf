"""`greedy`: myopic price chasing. Every hour, everything moves to the currently cheapest region.

Replica count is the `reactive` policy's HPA recommendation; placement is all in the region with
the lowest electricity price this hour. Moves are make-before-break (the old region keeps serving
until the new one has its replicas Ready), so flapping shows as cold-start cost and migrations
rather than as SLO misses.
"""

from __future__ import annotations

import numpy as np

from wattscale.sim.policies.base import IntArray, Observation, home_only
from wattscale.sim.policies.reactive import HpaScaler
from wattscale.sim.scenario import Scenario


class GreedyPolicy:
    """Hourly move of all replicas to the cheapest region, HPA-like count."""

    name = "greedy"

    def __init__(self) -> None:
        self._hpa = HpaScaler()
        self._target = 0

    def initial(self, scenario: Scenario) -> IntArray:
        self._target = int(np.argmin(scenario.known_prices(0)[0]))
        n = self._hpa.start_replicas(scenario)
        return home_only(len(scenario.regions), self._target, n)

    def decide(self, obs: Observation) -> IntArray:
        if obs.minute % 60 == 0:
            self._target = int(np.argmin(obs.price_now()))
        target = self._target
        ready_total = int(obs.ready.sum())
        current = int(obs.allocated[target])
        capacity = max(ready_total, 1) * obs.model.capacity_tokens_per_s
        utilisation = obs.last_utilisation(capacity)
        # The HPA sees the whole deployment (all Ready replicas) as its current size.
        n = self._hpa.recommend(
            obs.minute, max(current, ready_total), ready_total, utilisation, obs.min_replicas
        )
        n = min(n, obs.quota[target])
        desired = home_only(len(obs.regions), target, n)
        if int(obs.ready[target]) < n:
            # Make-before-break: keep the other regions' Ready replicas until the target is Ready.
            for region in range(len(obs.regions)):
                if region != target:
                    desired[region] = int(obs.ready[region])
        return desired
