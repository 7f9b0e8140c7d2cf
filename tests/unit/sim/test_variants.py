"""`wattscale simulate --variants`: GPU variants of one model replayed as pools per region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.sim.conftest import ScenarioFactory
from tests.unit.sim.test_cli import _args, _fails
from wattscale.cli_simulate import main
from wattscale.sim.accounting import Trajectory, account
from wattscale.sim.engine import replay
from wattscale.sim.errors import SimInputError
from wattscale.sim.model import ReplicaModel
from wattscale.sim.policies.wattscale import WattscalePolicy
from wattscale.sim.variants import catalogue, expand, parse_variants

pytestmark = pytest.mark.unit


def test_the_a100_serves_fewer_tokens_on_less_power_for_less_money() -> None:
    h100, a100 = catalogue(ReplicaModel()).values()
    assert a100.model.capacity_tokens_per_s < h100.model.capacity_tokens_per_s
    assert max(a100.model.power_anchor_watts) <= 400.0  # the A100's board limit
    assert a100.price_ratio < h100.price_ratio
    assert a100.model.tpot_slo_ms == h100.model.tpot_slo_ms  # the same SLO for both


def test_unknown_or_repeated_variants_are_refused() -> None:
    with pytest.raises(SimInputError, match="unknown variant l40s"):
        parse_variants("h100,l40s", ReplicaModel())
    with pytest.raises(SimInputError, match="named twice"):
        parse_variants("a100,a100", ReplicaModel())


def test_expand_makes_one_column_per_region_and_variant(
    scenario_from_arrays: ScenarioFactory,
) -> None:
    sc = scenario_from_arrays(np.full(120, 5000.0), np.array([[50.0, 80.0]] * 2))
    both = expand(sc, parse_variants("h100,a100", sc.model))
    assert both.regions == ("R0/h100", "R0/a100", "R1/h100", "R1/a100")
    assert both.home_region == "R0/h100"
    assert both.price_usd_mwh[0].tolist() == [50.0, 50.0, 80.0, 80.0]
    assert np.allclose(both.gpu_hour_cost_per_column(), [2.5, 1.5, 2.5, 1.5])


def test_one_variant_replays_like_no_variant(scenario_from_arrays: ScenarioFactory) -> None:
    demand = 6000.0 + 4000.0 * np.sin(np.arange(240) / 40.0)
    sc = scenario_from_arrays(demand, np.array([[50.0, 80.0]] * 4))
    plain = replay(WattscalePolicy(), sc)
    alone = replay(WattscalePolicy(), expand(sc, parse_variants("h100", sc.model)))
    assert alone.total_cost == pytest.approx(plain.total_cost)
    assert alone.slo_attainment == pytest.approx(plain.slo_attainment)


def test_each_column_is_accounted_with_its_variant(scenario_from_arrays: ScenarioFactory) -> None:
    sc = expand(
        scenario_from_arrays(np.full(60, 3000.0), np.array([[50.0]])),
        parse_variants("h100,a100", ReplicaModel()),
    )
    on_a100 = np.tile([0.0, 1.0], (60, 1))
    r = account("x", sc, Trajectory(on_a100, on_a100, np.zeros_like(on_a100), on_a100 * 0))
    assert r.gpu_cost == pytest.approx(1.5)  # one A100 replica for an hour
    assert r.energy_kwh < 0.4 * 1.2  # within the A100's 400 W board limit, PUE 1.2


def test_cli_reports_what_the_mix_saved(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(data_dir, "--variants", "h100,a100", "--days", "0.25")) == 0
    out = capsys.readouterr().out
    assert "h100+a100" in out
    assert "mix vs best single variant" in out


def test_cli_refuses_an_unknown_variant(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(capsys, _args(data_dir, "--variants", "tpu"), "--variants: unknown variant tpu")
