"""Policies the simulator compares: one module each, behind the `Policy` protocol in `base`."""

from wattscale.sim.policies.base import Observation, Policy

__all__ = ["Observation", "Policy"]
