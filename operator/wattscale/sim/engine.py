"""The replay loop: one step per simulated minute, the same for every (online) policy.

At the start of minute t the policy sees the past and says how many replicas it wants per region.
New replicas start loading at once and become Ready `cold_start_minutes` later (paid for and
drawing idle power while they load); removals take loading replicas first, then Ready ones
(drained instantly). Ready replicas then serve minute t (`accounting.route`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np

from wattscale.sim import pools as pool_models
from wattscale.sim.accounting import PolicyResult, Trajectory, account, route
from wattscale.sim.errors import SimInputError
from wattscale.sim.policies.base import IntArray, MinuteReadings, Observation, Policy
from wattscale.sim.scenario import Scenario

Progress = Callable[[int], None]


def _check(decision: IntArray, scenario: Scenario, name: str) -> IntArray:
    out = np.asarray(decision, dtype=np.int64)
    if out.shape != (len(scenario.regions),):
        raise SimInputError(
            f"policy {name} returned {out.shape} replicas for {len(scenario.regions)} regions"
        )
    return np.clip(out, 0, np.asarray(scenario.quota, dtype=np.int64))


def replay(policy: Policy, scenario: Scenario, progress: Progress | None = None) -> PolicyResult:
    """Run `policy` over the scenario minute by minute and account for what it did."""
    minutes, regions = scenario.minutes, len(scenario.regions)
    lag = scenario.model.cold_start_minutes
    allocated = np.zeros((minutes, regions))
    ready_log = np.zeros((minutes, regions))
    starts = np.zeros((minutes, regions))
    stops = np.zeros((minutes, regions))
    ready = _check(policy.initial(scenario), scenario, policy.name).copy()
    # loading[k, i]: replicas of region i that become Ready at minute k (ring of the next `lag`).
    becomes_ready = np.zeros((minutes + lag + 1, regions), dtype=np.int64)
    # What a running deployment had measured before the start, then the period as it passes.
    before = scenario.load.history_tokens_per_s.shape[0]
    past = np.concatenate([scenario.load.history_tokens_per_s, scenario.load.output_tokens_per_s])
    carbon = scenario.carbon_g_per_kwh
    meter = _Meter(scenario)
    readings: MinuteReadings | None = None
    for t in range(minutes):
        ready += becomes_ready[t]
        loading = becomes_ready[t + 1 : t + lag + 1].sum(axis=0)
        obs = Observation(
            minute=t,
            now=scenario.start + timedelta(minutes=t),
            regions=scenario.regions,
            home=scenario.home,
            model=scenario.model,
            gpu_hour_cost=scenario.gpu_hour_cost,
            quota=scenario.quota,
            min_replicas=scenario.min_replicas,
            ready=ready.copy(),
            loading=loading,
            past_demand_tokens_per_s=past[: before + t],
            known_prices_usd_mwh=scenario.known_prices(t),
            past_carbon_g_per_kwh=carbon[: t // 60 + 1],
            mean_output_tokens=scenario.load.mean_output_tokens,
            readings=readings,
            reading_window_minutes=scenario.reading_window_minutes,
        )
        want = _check(policy.decide(obs), scenario, policy.name)
        have = ready + loading
        for i in range(regions):
            delta = int(want[i] - have[i])
            if delta > 0:
                becomes_ready[t + lag, i] += delta
                starts[t, i] = delta
            elif delta < 0:
                stops[t, i] = -delta
                drop = -delta
                # Cancel the most recently started loading replicas first.
                for k in range(t + lag, t, -1):
                    if drop == 0:
                        break
                    take = min(drop, int(becomes_ready[k, i]))
                    becomes_ready[k, i] -= take
                    drop -= take
                ready[i] -= drop
        allocated[t] = ready + becomes_ready[t + 1 : t + lag + 1].sum(axis=0)
        ready_log[t] = ready
        readings = meter.minute(t, ready)
        if progress is not None:
            progress(t)
    trajectory = Trajectory(allocated=allocated, ready=ready_log, starts=starts, stops=stops)
    return account(policy.name, scenario, trajectory)


class _Meter:
    """The metrics a live operator would read after each minute: the same router and queue as
    the accounting (`accounting.serve`), one minute at a time."""

    def __init__(self, scenario: Scenario) -> None:
        self._sc = scenario
        self._prices = scenario.minute_prices()
        self._backlog = np.zeros(len(scenario.regions))

    def minute(self, t: int, ready: IntArray) -> MinuteReadings:
        sc, model = self._sc, self._sc.model
        pool = np.asarray(ready, dtype=np.float64)
        demand = sc.load.output_tokens_per_s[t : t + 1]
        safe = pool_models.safe_tokens_per_s(sc.pools, model)
        routed = route(pool[None, :], demand, self._prices[t : t + 1], safe)[0]
        step = pool_models.serve(
            sc.pools,
            model,
            pool,
            routed,
            self._backlog,
            sc.load.mean_output_tokens,
            sc.load.mean_context_tokens,
        )
        self._backlog = step.backlog_tokens
        per = np.divide(step.served_tokens_per_s, pool, out=np.zeros_like(pool), where=pool > 0)
        return MinuteReadings(
            ready=pool,
            tokens_per_s_per_replica=per,
            ttft_p95_s=step.ttft_p95_s,
            tpot_p95_s=step.tpot_p95_s,
            waiting_requests_per_replica=step.waiting_requests_per_replica,
            board_watts_per_replica=pool_models.replica_watts(sc.pools, model, per),
        )
