"""`reactive`: a Kubernetes HPA on utilisation in the home region.

HPA's algorithm: desired = ceil(current x measured / target), skipped when the ratio is within
the 10 % tolerance; scale-up at once, scale-down only to the highest recommendation of the last
300 s (HPA's default downscale stabilisation window). Utilisation is the demand read over the
metrics' rate window (`Observation.read_demand`: two minutes, as a Prometheus-adapter metric
reads) over the Ready replicas' capacity, with a target of 70 % of the SLO capacity (a common
HPA setting for latency-sensitive services; the safe utilisation is 90 %).
"""

from __future__ import annotations

import math
from collections import deque

from wattscale.sim.policies.base import IntArray, Observation, home_only, start_reading
from wattscale.sim.scenario import Scenario

TARGET_UTILISATION = 0.7
TOLERANCE = 0.1
SCALE_DOWN_STABILISATION_S = 300


class HpaScaler:
    """HPA's replica recommendation with tolerance and downscale stabilisation."""

    def __init__(self, target: float = TARGET_UTILISATION) -> None:
        self.target = target
        self._history: deque[tuple[int, int]] = deque()

    def recommend(
        self, minute: int, current: int, ready: int, utilisation: float | None, floor: int
    ) -> int:
        """Desired replicas given the measured utilisation of the Ready replicas (None: nothing
        measured yet, as before the first minute: the HPA skips the metric and holds)."""
        base = max(current, 1)
        ratio = 1.0 if utilisation is None else utilisation / self.target
        if ready == 0 or abs(ratio - 1.0) <= TOLERANCE:
            desired = current
        else:
            desired = math.ceil(ready * ratio)
        desired = max(desired, floor)
        self._history.append((minute, desired))
        window_min = SCALE_DOWN_STABILISATION_S // 60
        while self._history and minute - self._history[0][0] >= window_min:
            self._history.popleft()
        stabilised = max(d for _, d in self._history)
        if desired > base:
            return desired
        return min(base, stabilised)

    def start_replicas(self, scenario: Scenario) -> int:
        """The replicas this HPA holds at the start, having run through the minutes before it:
        its highest recommendation of the stabilisation window (its highest reading there over
        the target)."""
        level = start_reading(scenario, SCALE_DOWN_STABILISATION_S // 60)
        per_replica = scenario.model.capacity_tokens_per_s * self.target
        return max(scenario.min_replicas, math.ceil(level / per_replica))


class ReactivePolicy:
    """HPA-like autoscaling in the home region only."""

    name = "reactive"

    def __init__(self, target: float = TARGET_UTILISATION) -> None:
        """``target``: the HPA's target utilisation (the default is the baseline's; others are
        for studies of its cost against its SLO, ``bench/frontier.py``)."""
        self._hpa = HpaScaler(target)

    def initial(self, scenario: Scenario) -> IntArray:
        n = self._hpa.start_replicas(scenario)
        return home_only(len(scenario.regions), scenario.home, n)

    def decide(self, obs: Observation) -> IntArray:
        home = obs.home
        ready = int(obs.ready[home])
        current = int(obs.allocated[home])
        capacity = max(ready, 1) * obs.model.capacity_tokens_per_s
        utilisation = obs.last_utilisation(capacity)
        n = self._hpa.recommend(obs.minute, current, ready, utilisation, obs.min_replicas)
        return home_only(len(obs.regions), home, min(n, obs.quota[home]))
