"""Feeds refreshed off the reconcile path (issue 14 item 5): one background refresher per
source; a hung feed holds up its own thread only, readers never wait on I/O, and failures are
remembered with a backoff that doubles up to a bound."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from tests.fakes.world import FakeFeed
from tests.unit.signals.test_region import energy
from wattscale.signals import Series, Unreachable
from wattscale.signals.refresher import Refresher
from wattscale.signals.region import RegionSignals

pytestmark = pytest.mark.unit

NOW = datetime(2024, 7, 1, 12, tzinfo=UTC)
GENEROUS = 60.0  # seconds: only a hang would take this long; no timing is asserted


class HangingFeed(FakeFeed):
    """A feed whose reads block until released (a provider that accepts and never answers)."""

    def __init__(self) -> None:
        super().__init__("price-hung", "price", 0.1, "USD/kWh")
        self.release = threading.Event()
        self.entered = threading.Event()

    def read(self, now: datetime) -> Series:
        self.entered.set()
        self.release.wait()
        return super().read(now)


def _signals() -> tuple[RegionSignals, HangingFeed, FakeFeed]:
    signals = RegionSignals(
        energy(
            price={"type": "csv", "url": "http://127.0.0.1:9/unused.csv"},
            carbon={"type": "csv", "url": "http://127.0.0.1:9/unused.csv"},
        )
    )
    hung, carbon = HangingFeed(), FakeFeed("carbon", "carbon", 200.0, "gCO2eq/kWh")
    signals.price, signals.carbon = hung, carbon
    return signals, hung, carbon


def _wait_for(condition: object, what: str) -> None:
    done = threading.Event()

    def poll() -> None:
        while not condition():  # type: ignore[operator]
            done.wait(0.01)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    t.join(GENEROUS)
    assert not t.is_alive(), f"never: {what}"


def test_a_hung_feed_costs_the_readers_nothing() -> None:
    signals, hung, _ = _signals()
    signals.refresh_in_background(30.0, clock=lambda: NOW)
    try:
        _wait_for(hung.entered.is_set, "the price refresher is inside the hung read")
        _wait_for(lambda: signals.read(NOW).carbon_g_per_kwh(NOW) == 200.0, "carbon read")
        # Eight passes read the Region's signals while the price feed still hangs.
        with ThreadPoolExecutor(max_workers=8) as pool:
            snaps = list(pool.map(lambda _: signals.read(NOW), range(8), timeout=GENEROUS))
        assert not hung.release.is_set()
        for snap in snaps:
            assert snap.carbon_g_per_kwh(NOW) == 200.0
            assert snap.price_per_kwh(NOW) is None  # unknown, so the planner holds
            assert any("not read yet" in p for p in snap.problems(NOW))
        hung.release.set()
        _wait_for(lambda: signals.read(NOW).price_per_kwh(NOW) == 0.1, "price once released")
    finally:
        hung.release.set()
        signals.stop()


def test_failures_are_remembered_with_a_bounded_backoff() -> None:
    failing = FakeFeed("price", "price", 0.1, "USD/kWh")
    failing.fail = Unreachable("price", "connection refused")
    signals = RegionSignals(energy(price={"type": "csv", "url": "http://127.0.0.1:9/x.csv"}))
    signals.price = failing
    refresher = Refresher(
        "price",
        signals.reader("price"),
        None,
        lambda r: r is not None and r.error is not None,
        period_seconds=30.0,
        clock=lambda: NOW,
        max_backoff_seconds=200.0,
    )
    delays = [refresher.refresh_once() for _ in range(5)]
    assert delays == [60.0, 120.0, 200.0, 200.0, 200.0]
    latest = refresher.latest()
    assert latest is not None
    assert latest.error is not None  # the failure is what readers see meanwhile
    failing.fail = None
    assert refresher.refresh_once() == 30.0
    latest = refresher.latest()
    assert latest is not None
    assert latest.error is None
