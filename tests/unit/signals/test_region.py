"""RegionSignals: one call per loop that never raises, with freshness and problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import data
from wattscale.api.region import Energy
from wattscale.signals.region import RegionSignals

pytestmark = pytest.mark.unit

NOW = datetime(2023, 7, 2, 12, 30, tzinfo=UTC)


def energy(**kw: object) -> Energy:
    return Energy.model_validate({"currency": "EUR", **kw})


def test_snapshot_values_caps_and_freshness() -> None:
    signals = RegionSignals(
        energy(
            price={"type": "csv", "path": str(data.prices_csv("DE-LU"))},
            carbon={"type": "csv", "path": str(data.carbon_csv("DE-LU"))},
            gridEvents={
                "type": "static",
                "events": [
                    {
                        "start": "2023-07-02T12:00:00Z",
                        "end": "2023-07-02T13:00:00Z",
                        "capFraction": 0.25,
                    }
                ],
            },
        )
    )
    snap = signals.read(NOW)
    assert snap.price_per_kwh(NOW) == pytest.approx(-0.5)
    assert snap.carbon_g_per_kwh(NOW) == pytest.approx(
        data.carbon("DE-LU", NOW.replace(minute=0), 1)[0][1]
    )
    assert snap.cap_fraction(NOW) == 0.25
    assert snap.cap_fraction(NOW + timedelta(hours=1)) == 1.0
    assert snap.all_fresh(NOW)


def test_failures_are_captured_not_raised() -> None:
    signals = RegionSignals(
        energy(
            price={"type": "csv", "path": "/nonexistent.csv"},
            carbon={"type": "csv", "path": str(data.carbon_csv("GB"))},
        )
    )
    snap = signals.read(NOW)
    assert snap.price_per_kwh(NOW) is None
    assert snap.grid_events is None
    assert snap.cap_fraction(NOW) == 1.0
    problems = snap.problems(NOW)
    assert len(problems) == 1
    assert "price" in problems[0]
    assert "cannot read" in problems[0]
    late = datetime(2025, 1, 1, tzinfo=UTC)  # after the end of the file: stale, not an error
    snap2 = signals.read(late)
    assert snap2.carbon_g_per_kwh(late) is None
    assert any("carbon (csv): stale" in p for p in snap2.problems(late))


def test_no_sources_configured() -> None:
    snap = RegionSignals(energy()).read(NOW)
    assert snap.price is None
    assert snap.all_fresh(NOW)


def test_statuses_fit_the_region_status_model() -> None:
    from wattscale.api.region import SignalStatus

    signals = RegionSignals(
        energy(
            price={"type": "csv", "path": str(data.prices_csv("DE-LU"))},
            carbon={"type": "csv", "path": "/nonexistent.csv"},
            gridEvents={"type": "static"},
        )
    )
    entries = [SignalStatus.model_validate(e) for e in signals.read(NOW).statuses(NOW)]
    assert [e.kind for e in entries] == ["price", "carbon", "gridEvents"]
    assert entries[0].value == "-0.5 EUR/kWh"
    assert entries[0].fresh
    assert not entries[1].fresh
    assert entries[1].error is not None
    assert "cannot read" in entries[1].error
    assert entries[2].value == "cap 100%, 0 event(s)"
