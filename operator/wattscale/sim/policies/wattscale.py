"""`wattscale`: the operator's own planner (`wattscale.planner.plan`), fed what it would know.

Every simulated minute the policy builds the `PlanRequest` the controller builds
(`wattscale.controller.planning.build_request`, mirrored here without the controller's
Kubernetes types), from:

- past demand only, read as the controller reads it (`Observation.read_demand`: the mean over
  the metrics' rate window) and handed over as it does: as the measured demand the sizing
  remembers (its recent peak, ramp and error), and through the operator's forecaster
  (`planner.DEMAND_FORECAST`: damped Holt-Winters on 1-minute buckets), asked for its mean
  + 1 sigma over the controller's horizon: one hour, or the cold start plus four intervals if
  longer, in 1-minute steps; the policy starts as a running operator, having passed through the
  two days before the period (`Load.history_tokens_per_s`, :meth:`WattscalePolicy._rehearse`);
- prices as a live operator knows them at that minute (`sim.markets`: each market's published
  prices, then the last known value carried forward, as the controller and planner do with a
  feed); the current carbon intensity (no carbon forecast);
- the replicas per region (current = Ready + loading, and Ready);
- the InferenceDeployment defaults of the API (headroom derived from the planner's measured
  forecast error, see `wattscale.planner.sizing`; minSavingsPercent 5, maxShiftPerStep 2,
  scale-down stabilisation 300 s; coldStartSeconds from the scenario);
- whether the last minute's latency was over the SLO somewhere (`slo_breached`, as the
  controller's `measure_demand` reads it): the planner then scores no forecast on that minute
  (`PlanRequest.demand_censored`), as in the operator, whose reading is what the fleet could
  serve rather than what users asked;
- capacity and power learned online from the simulated metrics (`policies.learned`: the
  operator's CapacityLearner and power fit), starting from a capacity hint (the replica model's
  capacity x `capacity_hint_factor`) and the configured affine power model.

The simulator applies `Decision.desired` as the replicas to hold; its own router (cheapest
energy first) stands in for the published traffic weights, identically for every policy.

`wattscale-zero` is the same policy with `slo.minReplicas: 0` and the API's default
`scaleToZero.idleSeconds`: it sees what the operator sees then. With a Ready replica, the last
rate window's demand as read; with none, no demand reading at all (vLLM reports nothing) but the
gateway's waiting requests: the requests of the last minute, which found no replica and queue
there. Those requests wait a cold start: the accounting counts them as missing the SLO.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from wattscale.api.inference import DEFAULT_IDLE_SECONDS, Placement, Slo
from wattscale.forecast import horizon, observe, warm_start
from wattscale.metrics.power import PowerModel
from wattscale.planner import (
    DEMAND_FORECAST,
    FORECAST_K_SIGMA,
    Objective,
    PlannerState,
    PlanRequest,
    PoolInput,
    PoolKey,
    RegionInput,
    horizon_steps,
    plan,
)
from wattscale.planner.sizing import size
from wattscale.sim.model import ReplicaModel
from wattscale.sim.policies.base import (
    FloatArray,
    IntArray,
    MinuteReadings,
    Observation,
    readings_before_start,
)
from wattscale.sim.policies.learned import Learned
from wattscale.sim.pools import PoolModels
from wattscale.sim.scenario import Scenario

GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
STEP_SECONDS = 60.0
REHEARSED_MINUTES = 24 * 60
"""Minutes before the start the sizing memory is rehearsed on: a day, the memory of its
measured forecast error (``forecast.recent.ERROR_MEMORY`` errors, one a minute)."""
PLANNED_MINUTES = 15
"""The last passes before the start that run the whole planner on its own fleet: the protection
window (cold start + two intervals) and the scale-down stabilisation (300 s) and more."""


def _defaults() -> dict[str, Any]:
    """The API's defaults for the knobs the planner takes (what a user gets by default)."""
    slo = Slo.model_fields
    placement = Placement.model_fields
    return {
        "headroom": (
            None
            if slo["headroomPercent"].default is None
            else 1.0 + float(slo["headroomPercent"].default) / 100.0
        ),
        "min_savings_percent": float(placement["minSavingsPercent"].default),
        "max_shift_per_step": int(placement["maxShiftPerStep"].default),
        "scale_down_stabilisation_seconds": float(
            placement["scaleDownStabilizationSeconds"].default
        ),
    }


class WattscalePolicy:
    """The real planner, called once per simulated minute."""

    name = "wattscale"

    def __init__(
        self,
        headroom: float | None = None,
        horizon_minutes: int | None = None,
        capacity_hint_factor: float = 1.0,
        objective: str = "cost",
        carbon_price_per_tonne: float = 0.0,
        scale_to_zero: bool = False,
        idle_seconds: float | None = None,
    ) -> None:
        """Defaults are the operator's; the overrides exist for sensitivity studies only.

        `capacity_hint_factor`: the capacity hint the learner starts from, as a multiple of the
        replica model's true capacity (1.0: a hint that is right; 0.7 / 1.3: off).
        `scale_to_zero`: minReplicas 0 with the default idle window (policy `wattscale-zero`),
        or `idle_seconds` (a sensitivity study).
        """
        idle = float(DEFAULT_IDLE_SECONDS if idle_seconds is None else idle_seconds)
        self._idle_seconds = idle if scale_to_zero else None
        if scale_to_zero:
            self.name = "wattscale-zero"
        self._hint_factor = capacity_hint_factor
        self.objective = Objective(objective).value
        self.carbon_price_per_tonne = carbon_price_per_tonne if objective == "balanced" else 0.0
        self._learned: Learned | None = None
        self._pools: PoolModels | None = None
        self._learned_variants: list[Learned] = []
        self._state = PlannerState()
        self._knobs = _defaults()
        if headroom is not None:
            self._knobs["headroom"] = headroom
        self._horizon_minutes = horizon_minutes
        self._forecaster = warm_start([], DEMAND_FORECAST)

    def _steps(self, cold_start_s: float) -> int:
        if self._horizon_minutes is not None:
            return self._horizon_minutes
        return horizon_steps(cold_start_s, STEP_SECONDS)

    def initial(self, scenario: Scenario) -> IntArray:
        """Start as the operator runs at the start, having passed through the minutes before it
        (warm, like every policy: :meth:`_rehearse`); without a history, the planner's placement
        of the first minute's demand."""
        hint = scenario.model.capacity_tokens_per_s * self._hint_factor
        self._learned = Learned(scenario.model, hint, GPU_PRODUCT)
        self._pools = scenario.pools
        if self._pools is not None:  # capacity and power learned per variant
            self._learned_variants = [
                Learned(m, m.capacity_tokens_per_s * self._hint_factor, product)
                for m, product in zip(self._pools.models, self._pools.products, strict=True)
            ]
        steps = self._steps(scenario.model.cold_start_s)
        readings = readings_before_start(scenario)
        if readings.shape[0] > 0:
            return self._rehearse(scenario, readings[:-1], steps)
        first = (float(scenario.load.output_tokens_per_s[0]),) * steps
        nothing = np.zeros(len(scenario.regions), dtype=np.int64)
        decision = plan(self._start_request(scenario, 0, first, nothing), None)
        return self._vector(scenario.regions, decision.target)

    def _start_request(
        self,
        scenario: Scenario,
        minute: int,
        forecast: tuple[float, ...],
        fleet: IntArray,
        **extra: Any,
    ) -> PlanRequest:
        """The request of the pass at ``minute`` (<= 0), ``fleet`` Ready."""
        return self._request(
            scenario.regions,
            scenario.model,
            scenario.gpu_hour_cost,
            scenario.quota,
            scenario.min_replicas,
            fleet,
            fleet,
            scenario.known_prices(0),
            minute,
            np.asarray(scenario.carbon_g_per_kwh[0], dtype=np.float64),
            forecast,
            **extra,
        )

    def _rehearse(self, scenario: Scenario, readings: FloatArray, steps: int) -> IntArray:
        """The operator at the start, having measured ``readings`` (the reading after each
        minute before the start but the last, which the pass at minute 0 reads; oldest first).

        Its forecaster is warm-started on all but the last ``REHEARSED_MINUTES`` of them; those
        are passed one a minute as `decide` passes them: the forecaster observes the reading and
        the sizing sizes on its forecast and scores it once its window has passed, so the
        headroom starts from a day of measured error (`planner.sizing`), as a running operator's
        does. Over the last ``PLANNED_MINUTES`` the whole planner runs, on the fleet it decided
        the pass before (Ready at once: nothing before the start is accounted). Returns the
        fleet of the last pass."""
        passes = np.arange(-readings.shape[0], 0)  # the pass at m reads the minute m - 1
        split = max(readings.shape[0] - REHEARSED_MINUTES, 0)
        points = zip((passes[:split] - 1) * STEP_SECONDS, readings[:split], strict=True)
        self._forecaster = warm_start(points, DEMAND_FORECAST)
        fleet = np.zeros(len(scenario.regions), dtype=np.int64)
        for minute, reading in zip(passes[split:].tolist(), readings[split:].tolist(), strict=True):
            self._forecaster = observe(self._forecaster, (minute - 1) * STEP_SECONDS, reading)
            forecast = horizon(self._forecaster, steps, FORECAST_K_SIGMA)
            extra = _reading(reading, scenario.reading_window_minutes)
            request = self._start_request(scenario, minute, forecast, fleet, **extra)
            if minute < -PLANNED_MINUTES:
                recent = size(request, self._state.recent, measured=True).recent
                self._state = replace(self._state, recent=recent)
            else:
                decision = plan(request, self._state)
                self._state = decision.state
                fleet = self._vector(scenario.regions, decision.desired)
        return fleet

    def decide(self, obs: Observation) -> IntArray:
        if self._learned is not None and obs.readings is not None:
            if self._pools is None:
                self._learned.observe(obs.minute, obs.regions, obs.readings)
            for v, learned in enumerate(self._learned_variants):
                assert self._pools is not None  # variants are learned only with pools
                cols = self._pools.columns(v)
                names = tuple(obs.regions[c] for c in cols)
                learned.observe(obs.minute, names, _columns(obs.readings, cols))
        past = obs.past_demand_tokens_per_s
        # Scale to zero, as the controller: with nothing Ready vLLM measures nothing; asleep
        # with no request waiting at the gateway, demand is known to be zero; waking (loading,
        # or the minute whose requests woke it), it is unknown and the forecaster learns nothing.
        measured = (
            self._idle_seconds is None
            or int(obs.ready.sum()) > 0
            or (int(obs.loading.sum()) == 0 and past.shape[0] > 0 and float(past[-1]) == 0.0)
        )
        reading: dict[str, Any] = {}
        if past.shape[0] and measured:
            level, reading = self._measure(obs)
            seconds = (obs.minute - 1) * STEP_SECONDS
            self._forecaster = observe(self._forecaster, seconds, level)
        steps = self._steps(obs.model.cold_start_s)
        forecast = self._forecast(obs, steps) if past.shape[0] else ()
        extra = dict(reading)  # the request's inputs beyond the forecast
        if self._idle_seconds is not None:
            extra.update(self._zero_inputs(obs))
            if int(obs.ready.sum()) == 0:
                forecast = ()  # nothing runs: nothing measures demand
        request = self._request(
            obs.regions,
            obs.model,
            obs.gpu_hour_cost,
            obs.quota,
            0 if self._idle_seconds is not None else obs.min_replicas,
            obs.allocated,
            obs.ready,
            obs.known_prices_usd_mwh,
            obs.minute,
            obs.past_carbon_g_per_kwh[-1],
            forecast,
            demand_censored=slo_breached(obs.readings, obs.model),
            **extra,
        )
        decision = plan(request, self._state)
        self._state = decision.state
        return self._vector(obs.regions, decision.desired)

    def _measure(self, obs: Observation) -> tuple[float, dict[str, Any]]:
        """The demand measured now (what the forecaster learns from) and what the request
        says of it beyond the forecast, as the controller hands it over: the reading over the
        rate window (``Observation.read_demand``) as the measured demand, the window as its
        lag. (What users asked, where the operator reads what was served: a saturated
        minute's reading is lower there, which its SLO-breach floor lifts back.)"""
        level = obs.read_demand()
        return level, _reading(level, obs.reading_window_minutes)

    def _forecast(self, obs: Observation, steps: int) -> tuple[float, ...]:
        """The demand the planner is handed for the next ``steps`` minutes: the operator's
        forecast (mean + ``FORECAST_K_SIGMA`` sigma) from what was measured so far. A study
        may hand it something else (``bench/forecast_gap.py``: the future itself)."""
        return horizon(self._forecaster, steps, FORECAST_K_SIGMA)

    def _zero_inputs(self, obs: Observation) -> dict[str, Any]:
        """What scale to zero reads (with min_replicas 0): the idle window, the measured demand and
        the gateway's waiting requests (the last minute's requests when none was Ready)."""
        past = obs.past_demand_tokens_per_s
        last = float(past[-1]) if past.shape[0] else 0.0
        waiting = 0.0
        if int(obs.ready.sum()) == 0 and last > 0:
            waiting = last * STEP_SECONDS / max(obs.mean_output_tokens, 1.0)
        return {
            "scale_to_zero_idle_seconds": self._idle_seconds,
            "waiting_requests": waiting,
            "measured_tokens_per_second": obs.read_demand(),
        }

    def _vector(self, regions: tuple[str, ...], mapping: Any) -> IntArray:
        out = np.zeros(len(regions), dtype=np.int64)
        pools = self._pools
        for i, region in enumerate(regions):
            if pools is None:
                out[i] = int(mapping.get(PoolKey(region, GPU_PRODUCT), 0))
            else:
                v = pools.variant_of[i]
                key = PoolKey(pools.region_names[pools.region_of[i]], pools.products[v])
                out[i] = int(mapping.get(key._replace(variant=pools.names[v]), 0))
        return out

    def _single_pool(
        self,
        i: int,
        model: Any,
        gpu_hour_cost: float,
        quota: tuple[int, ...],
        current: IntArray,
        ready: IntArray,
    ) -> PoolInput:
        """Region ``i``'s one pool, without variants."""
        learned = self._learned
        capacity = (
            learned.capacity_tokens_per_s if learned is not None else model.capacity_tokens_per_s
        )
        power = learned.power if learned is not None else None
        if power is None or power.max_watts <= 0:
            power = PowerModel(GPU_PRODUCT, model.idle_watts, model.max_watts, "configured")
        return PoolInput(
            gpu_product=GPU_PRODUCT,
            gpu_hour_cost_per_replica=gpu_hour_cost,
            idle_watts=power.idle_watts,
            max_watts=power.max_watts,
            capacity_tokens_per_second=capacity,
            quota_replicas=int(quota[i]),
            current_replicas=int(current[i]),
            ready_replicas=int(ready[i]),
        )

    def _variant_pools(
        self, region: int, quota: tuple[int, ...], current: IntArray, ready: IntArray
    ) -> tuple[PoolInput, ...]:
        """One pool per variant of ``region`` (column region-major), each with its own
        learned capacity and power and its GPU price."""
        pools = self._pools
        assert pools is not None
        out = []
        for v, learned in enumerate(self._learned_variants):
            col = int(pools.columns(v)[region])
            power = learned.power
            if power.max_watts <= 0:
                model = pools.models[v]
                power = PowerModel(
                    pools.products[v], model.idle_watts, model.max_watts, "configured"
                )
            out.append(
                PoolInput(
                    gpu_product=pools.products[v],
                    variant=pools.names[v],
                    gpu_hour_cost_per_replica=pools.gpu_hour_cost[v],
                    idle_watts=power.idle_watts,
                    max_watts=power.max_watts,
                    capacity_tokens_per_second=learned.capacity_tokens_per_s,
                    quota_replicas=int(quota[col]),
                    current_replicas=int(current[col]),
                    ready_replicas=int(ready[col]),
                )
            )
        return tuple(out)

    def _request(
        self,
        regions: tuple[str, ...],
        model: Any,
        gpu_hour_cost: float,
        quota: tuple[int, ...],
        min_replicas: int,
        current: IntArray,
        ready: IntArray,
        known_prices_usd_mwh: FloatArray,
        minute: int,
        carbon_now: FloatArray,
        forecast: tuple[float, ...],
        demand_censored: bool = False,
        **extra: Any,
    ) -> PlanRequest:
        steps = max(len(forecast), 1)
        minutes = minute + np.arange(steps)
        hours = np.clip(minutes // 60, 0, known_prices_usd_mwh.shape[0] - 1)
        region_inputs = []
        names = regions if self._pools is None else self._pools.region_names
        for i, region in enumerate(names):
            first = i if self._pools is None else int(self._pools.columns(0)[i])
            per_kwh = known_prices_usd_mwh[hours, first] / 1000.0
            carbon = float(carbon_now[first])
            pool_inputs = (
                (self._single_pool(i, model, gpu_hour_cost, quota, current, ready),)
                if self._pools is None
                else self._variant_pools(i, quota, current, ready)
            )
            region_inputs.append(
                RegionInput(
                    name=region,
                    pools=pool_inputs,
                    pue=model.pue,
                    price_per_kwh=float(per_kwh[0]),
                    price_forecast_per_kwh=tuple(float(x) for x in per_kwh),
                    # Unknown carbon counts as 0, as for a Region without a carbon feed.
                    carbon_g_per_kwh=0.0 if np.isnan(carbon) else carbon,
                    carbon_fresh=True,
                )
            )
        return PlanRequest(
            now_seconds=minute * STEP_SECONDS,
            regions=tuple(region_inputs),
            demand_tokens_per_second=forecast,
            horizon_step_seconds=STEP_SECONDS,
            min_replicas=min_replicas,
            max_replicas=int(sum(quota)),
            cold_start_seconds=float(model.cold_start_s),
            interval_seconds=STEP_SECONDS,
            explain=False,
            objective=Objective(self.objective),
            carbon_price_per_tonne=self.carbon_price_per_tonne,
            metrics_fresh=bool(forecast),
            demand_censored=demand_censored,
            **{**self._knobs, **extra},
        )


def _reading(level: float, window_minutes: int) -> dict[str, Any]:
    """What a request says of a demand reading beyond the forecast, as the controller hands it
    over: the reading as the measured demand, its rate window as the lag."""
    return {
        "measured_tokens_per_second": level,
        "demand_lag_seconds": window_minutes * STEP_SECONDS,
    }


def slo_breached(readings: MinuteReadings | None, model: ReplicaModel) -> bool:
    """Whether the last minute's p95 TTFT or TPOT was over the SLO in a region with a Ready
    replica, as the controller's ``measure_demand`` reads it: then the demand measured is what
    the fleet could serve, not what users asked, and the planner must not score its forecast
    on it (``PlanRequest.demand_censored``)."""
    if readings is None:
        return False
    over = (np.asarray(readings.ttft_p95_s) * 1000.0 > model.ttft_slo_ms) | (
        np.asarray(readings.tpot_p95_s) * 1000.0 > model.tpot_slo_ms
    )
    return bool(np.any(over & (np.asarray(readings.ready) > 0)))


def _columns(readings: MinuteReadings, cols: Any) -> MinuteReadings:
    """The readings of some columns only (one variant's)."""
    fields = MinuteReadings.__dataclass_fields__
    return MinuteReadings(**{f: np.asarray(getattr(readings, f))[cols] for f in fields})
