"""`wattscale simulate` on the command line: bad input gives one clear line and exit 2; --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.sim.conftest import START, write_series, write_trace
from wattscale.cli_simulate import main

pytestmark = pytest.mark.unit

BASELINES = "static,reactive,carbon-capped,greedy,oracle"


def _args(data: Path, *extra: str) -> list[str]:
    return [
        "--trace", str(data / "trace.csv"),
        "--prices-dir", str(data / "prices"),
        "--carbon-dir", str(data / "carbon"),
        "--regions", "A,B",
        "--start", "2024-01-01",
        "--days", "0.5",
        "--peak-replicas", "4",
        "--policies", BASELINES,
        "--no-progress",
        *extra,
    ]  # fmt: skip


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("wattscale simulate: ")
    for needle in needles:
        assert needle in err, err
    return err


def test_json_has_exactly_the_issue_keys_per_policy(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "result.json"
    assert main(_args(data_dir, "--json", str(out), "--report", str(tmp_path / "rep"))) == 0
    doc = json.loads(out.read_text())
    assert doc["currency"] == "USD"
    assert set(doc["policies"]) == set(BASELINES.split(","))
    types = {
        "total_cost": float,
        "energy_cost": float,
        "gpu_cost": float,
        "energy_kwh": float,
        "carbon_kg": float,
        "slo_attainment": float,
        "replica_hours": float,
        "migrations": int,
    }
    for name, entry in doc["policies"].items():
        for key, kind in types.items():
            assert isinstance(entry[key], kind), (name, key)
        assert 0.0 <= entry["slo_attainment"] <= 1.0
        total = entry["energy_cost"] + entry["gpu_cost"]
        assert entry["total_cost"] == pytest.approx(total)
    assert "LP" in doc["policies"]["oracle"]["method"]
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "<svg" in page
    assert "SLO attainment" in page
    assert "static" in capsys.readouterr().out


def test_unknown_region(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _args(data_dir)
    argv[argv.index("A,B")] = "A,XX-NOWHERE"
    _fails(capsys, argv, "unknown region XX-NOWHERE", "A, B")


def test_missing_price_file(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_series(data_dir / "carbon", "C", "carbon", START, [100.0] * 72)
    argv = _args(data_dir)
    argv[argv.index("A,B")] = "A,C"
    _fails(capsys, argv, "missing price file", "C.csv")


def test_home_region_must_be_listed(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(capsys, _args(data_dir, "--home-region", "Z"), "home region Z")


def test_short_gap_is_interpolated_with_a_warning(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values: list[float | None] = [50.0] * 72
    values[5:8] = [None, None, None]
    write_series(data_dir / "prices", "B", "prices", START, values)
    assert main(_args(data_dir)) == 0
    assert "interpolated 3 missing hour(s)" in capsys.readouterr().err


def test_long_gap_is_refused(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values: list[float | None] = [50.0] * 72
    values[2:26] = [None] * 24
    write_series(data_dir / "prices", "B", "prices", START, values)
    _fails(capsys, _args(data_dir), "24 missing hours", "2024-01-01T02Z")


def test_period_outside_the_data(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _args(data_dir)
    argv[argv.index("2024-01-01")] = "2023-06-01"
    _fails(capsys, argv, "outside the data", "2024-01-01T00Z")


def test_unsorted_trace(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_trace(data_dir / "trace.csv", [0.0, 5.0, 3.0])
    _fails(capsys, _args(data_dir), "not sorted", "trace.csv:4")


def test_negative_trace_timestamp(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_trace(data_dir / "trace.csv", [-1.0, 5.0])
    _fails(capsys, _args(data_dir), "negative timestamp")


def test_missing_trace(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (data_dir / "trace.csv").unlink()
    _fails(capsys, _args(data_dir), "trace file not found")


def test_bad_date_and_policy(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _args(data_dir)
    argv[argv.index("2024-01-01")] = "01/01/2024"
    _fails(capsys, argv, "--start '01/01/2024' is not a date")
    _fails(capsys, _args(data_dir, "--policies", "static,magic"), "unknown policy magic")


def test_missing_prices_directory(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(capsys, _args(data_dir, "--prices-dir", str(data_dir / "nope")), "does not exist")


def test_no_data_arguments_use_the_bundled_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    argv = ["--days", "0.25", "--policies", "static,reactive,oracle", "--no-progress"]
    assert main([*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["scenario"]["regions"] == ["US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM"]
    assert doc["scenario"]["start"] == "2024-07-08T00:00:00Z"
    assert "oracle (LP)" in capsys.readouterr().out


def test_objective_and_carbon_price_are_replayable(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fails(capsys, _args(data_dir, "--objective", "balanced"), "--carbon-price-per-tonne")
    _fails(capsys, _args(data_dir, "--capacity-hint-factor", "0"), "--capacity-hint-factor")
    out = tmp_path / "b.json"
    argv = [
        *_args(data_dir, "--objective", "balanced", "--carbon-price-per-tonne", "80"),
        "--days", "0.1", "--policies", "wattscale,static", "--json", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "CO2 price" in table
    assert "80 USD/t" in table
    doc = json.loads(out.read_text())
    assert doc["policies"]["wattscale"]["objective"] == "balanced"
    assert doc["policies"]["wattscale"]["carbon_price_per_tonne"] == 80.0
    assert doc["policies"]["static"]["objective"] == ""
    assert doc["scenario"]["price_markets"]["A"]["kind"] == "real-time"
    assert doc["scenario"]["reading_window_seconds"] == 120


@pytest.mark.parametrize("value", ["100", "-1", "nan"])
def test_idle_below_percent_out_of_range(
    data_dir: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    _fails(capsys, [*_args(data_dir), "--idle-below-percent", value], "--idle-below-percent")


@pytest.mark.parametrize("value", ["90", "0", "7200"])
def test_reading_window_is_whole_minutes_within_an_hour(
    data_dir: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    _fails(
        capsys,
        [*_args(data_dir), "--reading-window-seconds", value],
        "--reading-window-seconds must be whole minutes between 60 and 3600",
    )


def test_idle_seconds_below_the_apis_minimum(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fails(capsys, [*_args(data_dir), "--idle-seconds", "10"], "--idle-seconds must be between")
