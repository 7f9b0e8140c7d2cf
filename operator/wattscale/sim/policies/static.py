"""`static`: peak-provisioned in the home region, never changes (the usual SinglePool baseline)."""

from __future__ import annotations

from wattscale.sim.policies.base import IntArray, Observation, home_only, peak_replicas_needed
from wattscale.sim.scenario import Scenario


class StaticPolicy:
    """Hold enough replicas for the peak, all in the home region, all the time."""

    name = "static"

    def __init__(self) -> None:
        self._plan: IntArray | None = None

    def initial(self, scenario: Scenario) -> IntArray:
        self._plan = home_only(len(scenario.regions), scenario.home, peak_replicas_needed(scenario))
        return self._plan

    def decide(self, obs: Observation) -> IntArray:
        assert self._plan is not None, "initial() first"
        return self._plan
