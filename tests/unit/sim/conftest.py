"""Fixtures for the simulator's unit tests: tiny scenarios built in memory or in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from wattscale.sim.load import Load
from wattscale.sim.model import ReplicaModel
from wattscale.sim.scenario import Scenario

START = datetime(2024, 1, 1, tzinfo=UTC)
ScenarioFactory = Callable[..., Scenario]


def make_scenario(
    demand_tokens_per_s: np.ndarray,
    price_usd_mwh: np.ndarray,
    carbon_g_per_kwh: np.ndarray | None = None,
    gpu_hour_cost: float = 2.5,
    model: ReplicaModel | None = None,
    home: int = 0,
    quota: int = 10,
    history_tokens_per_s: np.ndarray | None = None,
) -> Scenario:
    """A scenario from arrays: demand per minute, prices and carbon per hour and region, and
    the demand of the minutes before the start (none by default)."""
    demand = np.asarray(demand_tokens_per_s, dtype=np.float64)
    prices = np.atleast_2d(np.asarray(price_usd_mwh, dtype=np.float64))
    regions = tuple(f"R{i}" for i in range(prices.shape[1]))
    carbon = (
        np.full_like(prices, 100.0)
        if carbon_g_per_kwh is None
        else np.atleast_2d(np.asarray(carbon_g_per_kwh, dtype=np.float64))
    )
    mean_out = 200.0
    return Scenario(
        regions=regions,
        home_region=regions[home],
        start=START,
        minutes=int(demand.shape[0]),
        load=Load(
            output_tokens_per_s=demand,
            requests_per_s=demand / mean_out,
            mean_output_tokens=mean_out,
            mean_context_tokens=1000.0,
            source="test",
            history_tokens_per_s=np.asarray(
                [] if history_tokens_per_s is None else history_tokens_per_s, dtype=np.float64
            ),
        ),
        price_usd_mwh=prices,
        carbon_g_per_kwh=carbon,
        model=model or ReplicaModel(),
        gpu_hour_cost=gpu_hour_cost,
        quota=tuple([quota] * len(regions)),
        peak_replicas=quota // 2,
    )


@pytest.fixture
def scenario_from_arrays() -> ScenarioFactory:
    return make_scenario


def write_series(
    directory: Path,
    region: str,
    kind: str,
    start: datetime,
    values: list[float | None],
) -> Path:
    """Write an hourly price ('prices') or carbon ('carbon') file; None leaves the hour out."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{region}.csv"
    if kind == "prices":
        lines = ["timestamp_utc,region,price_per_mwh,currency,price_usd_mwh"]
        fmt = "{t},{r},{v},USD,{v}"
    else:
        lines = [
            "timestamp_utc,region,gco2_per_kwh,gco2_per_kwh_lca,renewable_pct,low_carbon_pct,is_estimated"
        ]
        fmt = "{t},{r},{v},{v},10,20,0"
    for k, value in enumerate(values):
        if value is None:
            continue
        stamp = (start + timedelta(hours=k)).strftime("%Y-%m-%dT%H:00:00Z")
        lines.append(fmt.format(t=stamp, r=region, v=value))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_trace(path: Path, times_s: list[float], generated: int = 200) -> Path:
    """A per-request trace in the Azure shape."""
    lines = ["timestamp,t_rel_s,context_tokens,generated_tokens"]
    lines += [f"x,{t},1000,{generated}" for t in times_s]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Two regions (A cheap at night, B flat), 3 days of prices and carbon, a 1-hour trace."""
    hours = 72
    a = [30.0 + 40.0 * ((h % 24) in range(8, 20)) for h in range(hours)]
    b = [50.0] * hours
    write_series(tmp_path / "prices", "A", "prices", START, a)
    write_series(tmp_path / "prices", "B", "prices", START, b)
    write_series(tmp_path / "carbon", "A", "carbon", START, [300.0] * hours)
    write_series(tmp_path / "carbon", "B", "carbon", START, [100.0] * hours)
    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0, 3600, 3000)).round(3).tolist()
    write_trace(tmp_path / "trace.csv", times)
    return tmp_path
