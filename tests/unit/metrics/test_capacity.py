"""Unit tests: capacity learning on synthetic windows with a known true capacity."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattscale.metrics import (
    CapacityLearner,
    CapacityLearnerConfig,
    CapacityObservation,
    LatencySlo,
    estimate_capacity,
)

pytestmark = pytest.mark.unit

SLO = LatencySlo(ttft_p95_seconds=0.5, tpot_p95_seconds=0.040)
BASE_STEP = 0.008
CEILING = 4000.0  # tokens/s where TPOT diverges


def tpot_p95(x: float, noise: float = 0.0) -> float:
    """A queueing-shaped TPOT p95 curve: BASE_STEP/(1 - x/CEILING), times 1.3 for the tail."""
    if x >= 0.98 * CEILING:
        return 1.0
    return 1.3 * BASE_STEP / (1.0 - x / CEILING) * math.exp(noise)


# Where 1.3 * 0.008 / (1 - x/4000) = 0.040: x = 4000 * (1 - 0.26) = 2960.
TRUE_CAPACITY = CEILING * (1 - 1.3 * BASE_STEP / 0.040)
# TRUE_CAPACITY is the median boundary (half the windows violate there): learn that one.
MEDIAN = CapacityLearnerConfig(window_violation_target=0.5)


def windows(
    n: int,
    lo: float,
    hi: float,
    seed: int = 1,
    noise: float = 0.08,
    dt: float = 30.0,
) -> list[CapacityObservation]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = rng.uniform(lo, hi) * TRUE_CAPACITY
        out.append(
            CapacityObservation(
                tokens_per_second_per_replica=x,
                ttft_p95_seconds=0.1,
                tpot_p95_seconds=tpot_p95(x, rng.gauss(0.0, noise)),
                replicas=2,
                t_seconds=i * dt,
            )
        )
    return out


def test_true_capacity_constant() -> None:
    assert tpot_p95(TRUE_CAPACITY) == pytest.approx(0.040)


def test_no_data_returns_the_prior_with_zero_confidence() -> None:
    est = estimate_capacity([], SLO, 2000.0)
    assert est.source == "prior"
    assert est.tokens_per_second_per_replica == pytest.approx(2000.0)
    assert est.confidence == 0.0
    assert (
        est.lower_tokens_per_second_per_replica < 2000.0 < est.upper_tokens_per_second_per_replica
    )


@pytest.mark.parametrize("hint", [1000.0, 3000.0, 9000.0, None])
def test_learns_capacity_from_both_sides_whatever_the_hint(hint: float | None) -> None:
    est = estimate_capacity(windows(400, 0.3, 1.3), SLO, hint, MEDIAN)
    assert est.source == "learned"
    assert est.tokens_per_second_per_replica == pytest.approx(TRUE_CAPACITY, rel=0.05)
    assert est.lower_tokens_per_second_per_replica <= TRUE_CAPACITY * 1.02
    assert est.confidence > 0.8
    assert est.violations_seen > 0


def test_learns_from_loads_below_the_boundary_only() -> None:
    # Load never reaches capacity: the curve term extrapolates; less confident.
    est = estimate_capacity(windows(300, 0.3, 0.85), SLO, 1500.0, MEDIAN)
    assert est.violations_seen == 0
    assert est.tokens_per_second_per_replica == pytest.approx(TRUE_CAPACITY, rel=0.15)
    full = estimate_capacity(windows(300, 0.3, 1.3), SLO, 1500.0, MEDIAN)
    assert est.confidence < full.confidence


def test_robust_to_outlying_windows() -> None:
    obs = windows(400, 0.3, 1.3)
    rng = random.Random(5)
    for i in range(40):  # 10 % garbage: huge latency at moderate load, tiny at overload
        x = rng.uniform(0.4, 0.8) * TRUE_CAPACITY if i % 2 else 1.25 * TRUE_CAPACITY
        lat = 0.5 if i % 2 else 0.005
        obs.append(CapacityObservation(x, 0.1, lat, t_seconds=400 * 30 + i))
    est = estimate_capacity(obs, SLO, 2000.0, MEDIAN)
    assert est.tokens_per_second_per_replica == pytest.approx(TRUE_CAPACITY, rel=0.08)


def test_no_load_windows_are_refused_and_do_not_move_the_estimate() -> None:
    base = windows(300, 0.3, 1.3)
    idle = [CapacityObservation(0.0, None, None, t_seconds=1e5 + i) for i in range(200)] + [
        CapacityObservation(5.0, 0.05, 0.009, t_seconds=2e5 + i) for i in range(200)
    ]
    with_idle = estimate_capacity(base + idle, SLO, 2000.0, MEDIAN)
    without = estimate_capacity(base, SLO, 2000.0, MEDIAN)
    assert (
        with_idle.observations_rejected.get("no_load", 0)
        + with_idle.observations_rejected.get("no_latency", 0)
        == 400
    )
    assert with_idle.tokens_per_second_per_replica == pytest.approx(
        without.tokens_per_second_per_replica, rel=0.03
    )


def test_saturated_but_idle_windows_are_refused() -> None:
    # Cold start / stuck engine: a queue and terrible latency with almost no output.
    stuck = [
        CapacityObservation(300.0, 30.0, 0.5, waiting_requests_per_replica=50, t_seconds=float(i))
        for i in range(300)
    ]
    est = estimate_capacity(windows(200, 0.3, 1.3) + stuck, SLO, 2000.0, MEDIAN)
    assert est.observations_rejected["low_load_violation"] == 300
    assert est.tokens_per_second_per_replica == pytest.approx(TRUE_CAPACITY, rel=0.06)
    # Only stuck windows: nothing learned, the hint stands.
    only = estimate_capacity(stuck, SLO, 2000.0)
    assert only.source == "prior"
    assert only.tokens_per_second_per_replica == pytest.approx(2000.0)


def test_missing_latency_is_refused() -> None:
    obs = [CapacityObservation(1000.0, None, None)]
    est = estimate_capacity(obs, SLO, 2000.0)
    assert est.observations_rejected == {"no_latency": 1}
    assert est.source == "prior"


def test_ttft_only_slo() -> None:
    slo = LatencySlo(ttft_p95_seconds=0.2, tpot_p95_seconds=None)
    rng = random.Random(3)
    obs = []
    for i in range(300):
        x = rng.uniform(200, 1500)
        ttft = 0.05 / max(0.02, 1 - x / 1200) * math.exp(rng.gauss(0, 0.1))
        obs.append(CapacityObservation(x, ttft, None, t_seconds=float(i)))
    est = estimate_capacity(obs, slo, 500.0, MEDIAN)
    assert est.tokens_per_second_per_replica == pytest.approx(900.0, rel=0.06)


def test_learner_keeps_a_bounded_recent_buffer() -> None:
    learner = CapacityLearner(
        SLO, 2000.0, CapacityLearnerConfig(max_observations=100, window_violation_target=0.5)
    )
    assert learner.estimate().source == "prior"
    learner.observe_many(windows(250, 0.3, 1.3))
    assert len(learner.observations) == 100
    est = learner.estimate()
    assert est.tokens_per_second_per_replica == pytest.approx(TRUE_CAPACITY, rel=0.08)


def test_recency_lets_a_new_capacity_take_over() -> None:
    # The model was replaced by a slower one: old windows are at a higher capacity.
    cfg = CapacityLearnerConfig(half_life_seconds=3600.0, window_violation_target=0.5)
    old = windows(300, 0.3, 1.3, dt=30.0)
    slow = []
    rng = random.Random(9)
    for i in range(300):
        x = rng.uniform(0.3, 1.3) * TRUE_CAPACITY * 0.6
        slow.append(
            CapacityObservation(
                x, 0.1, tpot_p95(x / 0.6, rng.gauss(0, 0.08)), t_seconds=1e6 + i * 30
            )
        )
    est = estimate_capacity(old + slow, SLO, 2000.0, cfg)
    assert est.tokens_per_second_per_replica == pytest.approx(0.6 * TRUE_CAPACITY, rel=0.08)


def test_violation_target_below_half_is_more_conservative() -> None:
    # Windows far enough apart (800 s, beyond a window plus its backlog span) that none is
    # another's neighbour: i.i.d. loads 30 s apart would have nearly every violating window
    # refused as a transient (a neighbour carried 20 % more), and the share below would
    # measure that filter, not the violation target.
    obs = windows(400, 0.3, 1.3, noise=0.15, dt=800.0)
    median = estimate_capacity(obs, SLO, 2000.0, MEDIAN)
    default = estimate_capacity(obs, SLO, 2000.0)  # 20 % of windows may violate
    assert default.tokens_per_second_per_replica < median.tokens_per_second_per_replica
    assert default.tokens_per_second_per_replica > 0.85 * TRUE_CAPACITY
    # Check against the data: about a fifth of the windows at that load violate.
    near = [
        o
        for o in obs
        if abs(o.tokens_per_second_per_replica / default.tokens_per_second_per_replica - 1) < 0.04
    ]
    share = sum(1 for o in near if (SLO.ratio(o) or 0) > 1) / len(near)
    assert 0.0 < share < 0.45


@pytest.mark.parametrize("hint_factor", [0.7, 1.0, 1.3])
def test_a_long_prompt_flat_ttft_does_not_hide_the_tpot_boundary(hint_factor: float) -> None:
    # Long prompts: prefill holds TTFT at 60 % of its SLO whatever the load, while TPOT
    # climbs its queueing curve to the boundary. The fleet never goes past 80 % of it. One
    # curve through max(TTFT, TPOT) ratio reads the flat start as a boundary far away (it
    # learned about twice the capacity); TTFT and TPOT fitted each on its own find TPOT's.
    rng = random.Random(4)
    obs = []
    for i in range(400):
        x = rng.uniform(0.3, 0.8) * TRUE_CAPACITY
        obs.append(
            CapacityObservation(
                tokens_per_second_per_replica=x,
                ttft_p95_seconds=0.6 * SLO.ttft_p95_seconds * math.exp(rng.gauss(0.0, 0.05)),
                tpot_p95_seconds=tpot_p95(x, rng.gauss(0.0, 0.05)),
                replicas=2,
                t_seconds=i * 30.0,
            )
        )
    assert all((SLO.ratio(o) or 0.0) <= 1.0 for o in obs)  # the boundary is never reached
    est = estimate_capacity(obs, SLO, hint_factor * TRUE_CAPACITY, MEDIAN)
    assert est.tokens_per_second_per_replica == pytest.approx(TRUE_CAPACITY, rel=0.08)


def test_hint_too_high_is_corrected_by_violations() -> None:
    # The hint says 3x; the replica violates whenever loaded above the true capacity.
    est = estimate_capacity(windows(200, 0.6, 1.4), SLO, 3 * TRUE_CAPACITY, MEDIAN)
    assert est.tokens_per_second_per_replica == pytest.approx(TRUE_CAPACITY, rel=0.06)


finite_or_none = st.one_of(
    st.none(),
    st.floats(min_value=0.0, max_value=1e4),
    st.just(math.nan),
    st.just(math.inf),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            CapacityObservation,
            tokens_per_second_per_replica=st.floats(allow_nan=True, allow_infinity=True),
            ttft_p95_seconds=finite_or_none,
            tpot_p95_seconds=finite_or_none,
        ),
        max_size=40,
    ),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_never_raises_and_stays_finite(obs: list[CapacityObservation], hint: float | None) -> None:
    est = estimate_capacity(obs, SLO, hint)
    for value in (
        est.tokens_per_second_per_replica,
        est.lower_tokens_per_second_per_replica,
        est.upper_tokens_per_second_per_replica,
    ):
        assert math.isfinite(value)
        assert value > 0
    assert est.lower_tokens_per_second_per_replica <= est.tokens_per_second_per_replica
    assert est.tokens_per_second_per_replica <= est.upper_tokens_per_second_per_replica
    assert 0.0 <= est.confidence <= 1.0


def test_minutes_of_met_windows_just_below_the_hint_do_not_lift_it_far_above() -> None:
    """The replay's latency model at 0.90-0.96 of a 7,000 tok/s capacity (TPOT 18 -> 22 ms
    for a 25-ms SLO, TTFT flat): the SLO holds, and says only that the capacity is above
    ~6,750, not that it is 30 % above the hint. At the operator's cadence (120-s windows
    every 30 s), six minutes of them. Found 2026-12-06: the one-sided evidence cut the prior
    below ~6,600 and its median moved to ~9,100 (1.3x) within minutes; the replay's hourly
    re-estimate had hidden it."""
    slo = LatencySlo(ttft_p95_seconds=1.0, tpot_p95_seconds=0.025)
    learner = CapacityLearner(slo, 7000.0)
    loads = (6300.0, 6313.0, 6352.0, 6416.0, 6504.0, 6617.0)
    tpots = (0.018, 0.018, 0.019, 0.019, 0.020, 0.021)
    t = 0.0
    for x, tpot in zip(loads, tpots, strict=True):
        for _ in range(2):  # two passes a minute
            t += 30.0
            learner.observe(
                CapacityObservation(
                    tokens_per_second_per_replica=x,
                    ttft_p95_seconds=0.05,
                    tpot_p95_seconds=tpot,
                    waiting_requests_per_replica=0.0,
                    replicas=2,
                    t_seconds=t,
                    window_seconds=120.0,
                    source="r",
                )
            )
    assert learner.estimate(t).tokens_per_second_per_replica <= 1.1 * 7000.0


@pytest.mark.parametrize("hint_factor", [0.5, 0.7])
def test_a_low_hint_is_still_explored_upwards(hint_factor: float) -> None:
    """The exploration ceiling must not stall learning from a hint that is too low: a planner
    that loads replicas to 85 % of what the learner believes, one window at a time, proves
    the loads that lift the ceiling, and the estimate climbs to the boundary (within about
    12 windows from 0.7x, 20 from 0.5x) without reaching far past it on the way."""
    learner = CapacityLearner(SLO, hint_factor * TRUE_CAPACITY, MEDIAN)
    rng = random.Random(7)
    seen = []
    for i in range(120):
        believed = learner.estimate(i * 30.0).tokens_per_second_per_replica
        seen.append(believed)
        x = 0.85 * believed * math.exp(rng.gauss(0.0, 0.03))
        learner.observe(
            CapacityObservation(
                tokens_per_second_per_replica=x,
                ttft_p95_seconds=0.1,
                tpot_p95_seconds=tpot_p95(x, rng.gauss(0.0, 0.05)),
                replicas=2,
                t_seconds=(i + 1) * 30.0,
            )
        )
    assert max(seen) <= 1.15 * TRUE_CAPACITY
    assert seen[-1] >= 0.9 * TRUE_CAPACITY
