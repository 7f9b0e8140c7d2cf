"""The one small protocol every policy implements, and what a policy may see at each minute.

A policy is asked once per simulated minute for the replicas it wants allocated per region (Ready
plus loading). It sees an `Observation`: the past only (served load up to the previous minute,
carbon up to the current hour), prices as a live operator would know them (`sim.markets`: each
market's published prices, then the operator's persistence forecast), and the replicas it has.
The oracle alone is given the `Scenario` itself (perfect foresight), through `plan`.

Demand is *read* as a live autoscaler reads it, every policy alike (`Observation.read_demand`):
the mean over the metrics' rate window (`Scenario.reading_window_seconds`: by default the
operator's `rate_window_seconds`, 120 s, the last two minutes), not the last minute exactly.
A burst shorter than the window is diluted in the reading, as it is in Prometheus's `rate()`;
the SLO is still scored minute by minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt

from wattscale.sim.model import ReplicaModel
from wattscale.sim.scenario import READING_WINDOW_SECONDS, Scenario

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class MinuteReadings:
    """What the previous minute's metrics said per region (what the operator reads from
    Prometheus: vLLM token rates and latency percentiles, DCGM power)."""

    ready: FloatArray
    tokens_per_s_per_replica: FloatArray
    ttft_p95_s: FloatArray
    tpot_p95_s: FloatArray
    waiting_requests_per_replica: FloatArray
    board_watts_per_replica: FloatArray


@dataclass(frozen=True)
class Observation:
    """What a (non-oracle) policy knows at the start of `minute`."""

    minute: int
    now: datetime
    regions: tuple[str, ...]
    home: int
    model: ReplicaModel
    gpu_hour_cost: float
    quota: tuple[int, ...]
    min_replicas: int
    ready: IntArray  # per region, Ready now
    loading: IntArray  # per region, started and not Ready yet
    # (history + minute,): the minutes before the start a running deployment had measured
    # (`Load.history_tokens_per_s`), then minutes 0..minute-1
    past_demand_tokens_per_s: FloatArray
    # (hours from the start, regions): published prices, then each region's last known value
    # carried forward (the operator's forecast); read-only, shared between minutes.
    known_prices_usd_mwh: FloatArray
    past_carbon_g_per_kwh: FloatArray  # (current hour + 1, regions); NaN where unknown
    mean_output_tokens: float
    readings: MinuteReadings | None = None  # the previous minute's (None at minute 0)
    reading_window_minutes: int = READING_WINDOW_SECONDS // 60  # what `read_demand` averages

    @property
    def allocated(self) -> IntArray:
        return np.asarray(self.ready + self.loading, dtype=np.int64)

    @property
    def hour(self) -> int:
        return self.minute // 60

    def last_demand(self, minutes: int = 1) -> float:
        """Mean demand over the last `minutes` minutes (0 before the first minute)."""
        past = self.past_demand_tokens_per_s
        if past.shape[0] == 0:
            return 0.0
        return float(np.mean(past[-minutes:]))

    def read_demand(self) -> float:
        """Demand as a live autoscaler reads it: the mean over the rate window
        (``reading_window_minutes``; 0 before the first minute)."""
        return self.last_demand(self.reading_window_minutes)

    def last_utilisation(self, capacity_tokens_per_s: float) -> float | None:
        """The demand read (:meth:`read_demand`) over ``capacity_tokens_per_s`` (None before
        the first minute: nothing has been measured yet, which is not a utilisation of 0)."""
        if self.past_demand_tokens_per_s.shape[0] == 0:
            return None
        return self.read_demand() / capacity_tokens_per_s

    def price_now(self) -> FloatArray:
        return np.asarray(self.known_prices_usd_mwh[self.hour], dtype=np.float64)

    def hour_start(self, hour: int) -> datetime:
        return self.now.replace(minute=0, second=0, microsecond=0) + timedelta(
            hours=hour - self.hour
        )


class Policy(Protocol):
    """Decide the replicas to hold per region, one minute at a time."""

    name: str

    def initial(self, scenario: Scenario) -> IntArray:
        """Replicas Ready at minute 0: the fleet it held, having run through the minutes before
        the start (`Load.history_tokens_per_s`)."""
        ...

    def decide(self, obs: Observation) -> IntArray:
        """Replicas to hold per region from this minute on (Ready + loading)."""
        ...


def home_only(regions: int, home: int, replicas: int) -> IntArray:
    """A per-region vector with `replicas` in the home region and none elsewhere."""
    out = np.zeros(regions, dtype=np.int64)
    out[home] = replicas
    return out


def peak_replicas_needed(scenario: Scenario) -> int:
    """Ready replicas that serve the period's busiest minute at the safe utilisation."""
    return scenario.model.replicas_for(float(np.max(scenario.load.output_tokens_per_s)))


def window_readings(demand: FloatArray, window_minutes: int) -> FloatArray:
    """The demand reading after each minute of ``demand`` (the mean over its last
    ``window_minutes``, fewer at its start, as :meth:`Observation.read_demand` reads it),
    oldest first."""
    total = np.concatenate([[0.0], np.cumsum(demand)])
    end = np.arange(1, demand.shape[0] + 1)
    begin = np.maximum(end - window_minutes, 0)
    return np.asarray((total[end] - total[begin]) / (end - begin), dtype=np.float64)


def readings_before_start(scenario: Scenario) -> FloatArray:
    """The demand reading after each minute before the start, oldest first; empty without a
    history."""
    return window_readings(scenario.load.history_tokens_per_s, scenario.reading_window_minutes)


def start_reading(scenario: Scenario, hold_minutes: int) -> float:
    """What an autoscaler that has been running sizes on at the start: the highest reading of
    the last ``hold_minutes`` before it (its scale-down window); the first minute's demand
    without a history."""
    readings = readings_before_start(scenario)
    if readings.shape[0] == 0:
        return float(scenario.load.output_tokens_per_s[0])
    return float(readings[-max(hold_minutes, 1) :].max())
