"""Integration: capacity learned from windows read through a real Prometheus.

One emulated replica is driven by a load ramp from half to ~1.4x its true capacity; the
capacity history (per-replica output tokens/s, TTFT and TPOT p95 per 1-s step over 5-s windows)
is read back through the reader and fed to the learner, with a hint that is wrong by 2x. The
true capacity comes from the emulator's own model (exact p95 in virtual time).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest

from tests.fakes.vllm_emulator import ConstantLoad, Emulator, RampLoad, measure_capacity
from tests.integration.metrics.live import Stack
from wattscale.metrics import CapacityLearner, LatencySlo, fit_power_model

pytestmark = pytest.mark.integration

# TTFT binds (queueing); the TPOT target is loose. A TPOT target of 50 ms would sit on vLLM's
# bucket bound: histogram_quantile then reads ~48 ms over a wide range of loads (it interpolates
# inside 25-50 ms), which says little about where the boundary is.
SLO = LatencySlo(ttft_p95_seconds=0.3, tpot_p95_seconds=0.100)
RAMP_SECONDS = 12.0
# Short requests (250 prompt, 50 output tokens) so the engine settles within a second or two.
PROMPT, OUTPUT = 250, 50


@cache
def true_capacity() -> float:
    return measure_capacity(
        SLO.ttft_p95_seconds,
        SLO.tpot_p95_seconds,
        prompt_tokens=PROMPT,
        output_tokens=OUTPUT,
        seconds=150.0,
        iterations=9,
    )


def test_learned_capacity_is_close_to_the_true_one(own_stack) -> None:  # type: ignore[no-untyped-def]
    truth = true_capacity()
    emu = Emulator(
        ConstantLoad(0.5 * truth, PROMPT, OUTPUT),
        replicas=1,
        namespace="ns",
        deployment="cap",
        seed=8,
    )
    stack: Stack = own_stack({"d": emu})
    stack.wait_for_pods("d", 1)
    start = datetime.now(tz=UTC)
    with emu.lock:
        emu.set_load(RampLoad(0.5 * truth, 1.3 * truth, RAMP_SECONDS, PROMPT, OUTPUT, emu.now))
    reader = stack.reader(rate_window_seconds=3)
    target = stack.deployments["d"].target
    # Meanwhile, collect per-GPU (utilisation, watts) points for the power model.
    power_samples = []
    deadline = time.monotonic() + RAMP_SECONDS + 1.0
    while time.monotonic() < deadline:
        power_samples.extend(reader.read_gpu_power_samples(target))
        time.sleep(0.5)
    end = datetime.now(tz=UTC)
    windows = reader.read_capacity_history(target, start + timedelta(seconds=3), end, 1.0)
    assert len(windows) >= 10

    learner = CapacityLearner(SLO, hint_tokens_per_second=0.5 * truth)
    learner.observe_many(windows)
    est = learner.estimate()
    error = est.tokens_per_second_per_replica / truth - 1.0
    print(
        f"\ntrue capacity {truth:.0f} tok/s/replica;"
        f" learned {est.tokens_per_second_per_replica:.0f}"
        f" ({error:+.1%}), 80% interval [{est.lower_tokens_per_second_per_replica:.0f},"
        f" {est.upper_tokens_per_second_per_replica:.0f}], confidence {est.confidence:.2f},"
        f" {est.observations_used} windows used, {est.violations_seen} violating,"
        f" rejected {est.observations_rejected}"
    )
    assert est.source == "learned"
    assert est.violations_seen > 0
    # Observed -8 % to -11 % over repeated runs: 11 short windows leave the transition width
    # uncertain, and the learner then errs low. Overestimating is the harmful direction.
    assert -0.20 < error < 0.10
    assert est.confidence > 0.5

    # The power model recovered from the same run (emulated: 110 W idle, 690 W at full load).
    model = fit_power_model(power_samples, emu.params.gpu_product)
    print(
        f"power model: idle {model.idle_watts:.0f} W, max {model.max_watts:.0f} W from"
        f" {model.samples} samples over utilisation span {model.utilization_span:.2f}"
    )
    assert model.source == "fitted"
    assert model.idle_watts == pytest.approx(emu.params.idle_watts, abs=40)
    assert model.max_watts == pytest.approx(emu.params.max_watts, abs=40)
