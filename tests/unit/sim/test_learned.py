"""wattscale learns capacity and power from the simulated metrics, from a hint that is off."""

from __future__ import annotations

import numpy as np
import pytest

from wattscale.sim.model import ReplicaModel, serve_minute
from wattscale.sim.policies.base import MinuteReadings
from wattscale.sim.policies.learned import Learned

pytestmark = pytest.mark.unit


def _readings(model: ReplicaModel, ready: float, tokens_per_s: float) -> MinuteReadings:
    pool = np.array([ready])
    step = serve_minute(model, pool, np.array([tokens_per_s]), np.zeros(1), 200.0, 1000.0)
    per = step.served_tokens_per_s / pool
    return MinuteReadings(
        ready=pool,
        tokens_per_s_per_replica=per,
        ttft_p95_s=step.ttft_p95_s,
        tpot_p95_s=step.tpot_p95_s,
        waiting_requests_per_replica=step.waiting_requests_per_replica,
        board_watts_per_replica=model.replica_watts(per),
    )


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_capacity_moves_from_a_wrong_hint_towards_the_truth(factor: float) -> None:
    model = ReplicaModel()
    learned = Learned(model, factor * model.capacity_tokens_per_s, "H100")
    rng = np.random.default_rng(3)
    # Six hours of a load swinging between 40 % and 110 % of the true capacity on 4 replicas.
    for minute in range(1, 361):
        u = 0.75 + 0.35 * np.sin(minute / 20.0) + rng.normal(0, 0.02)
        learned.observe(minute, ("R",), _readings(model, 4, 4 * u * model.capacity_tokens_per_s))
    hint_error = abs(factor - 1.0)
    error = abs(learned.capacity_tokens_per_s / model.capacity_tokens_per_s - 1.0)
    assert error < hint_error / 2
    # The power fit blends the configured affine model with the measured curve.
    assert learned.power.source in {"fitted", "blended"}
    measured = float(model.replica_watts(np.asarray(0.5 * model.capacity_tokens_per_s)))
    configured = model.idle_watts + 0.5 * (model.max_watts - model.idle_watts)
    believed = learned.power.watts(
        0.5 * model.capacity_tokens_per_s / learned.capacity_tokens_per_s
    )
    assert abs(believed - measured) < abs(configured - measured)


def test_an_optimistic_hint_is_corrected_within_minutes_as_the_operator_would() -> None:
    """The replay re-estimates when the operator does (``metrics.capacity_schedule``): on a
    window near the SLO, not once an hour. A 1.3x hint and a load at 105 % of the true
    capacity: the violations bring the estimate below the truth within ten minutes (with an
    hourly re-estimate the hint stood for the first hour)."""
    model = ReplicaModel()
    learned = Learned(model, 1.3 * model.capacity_tokens_per_s, "H100")
    load = 4 * 1.05 * model.capacity_tokens_per_s
    for minute in range(1, 11):
        learned.observe(minute, ("R",), _readings(model, 4, load))
    assert learned.capacity_tokens_per_s < model.capacity_tokens_per_s
