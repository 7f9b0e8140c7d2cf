"""All signals of one Region behind one call that never raises: what the controller uses.

signals = RegionSignals(region.spec.energy, secrets=resolver)   # once per generation
snap = signals.read(datetime.now(UTC))                          # every loop, off-loop thread
snap.price_per_kwh(now)      # float in the Region's currency, or None when missing/stale
snap.carbon_g_per_kwh(now)   # float, or None when missing/stale
snap.cap_fraction(now)       # 0..1 from grid events (last known events when stale)
snap.problems(now)           # human-readable reasons for a SignalsFresh=False condition
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from wattscale.signals.base import (
    GridEventReader,
    GridEvents,
    SecretResolver,
    Series,
    SignalError,
    SignalSource,
    StaleData,
    utc,
)
from wattscale.signals.refresher import Refresher
from wattscale.signals.registry import (
    build_carbon_source,
    build_grid_event_source,
    build_price_source,
)

SignalName = Literal["price", "carbon", "gridEvents"]


@dataclass(frozen=True)
class SignalReading:
    """The outcome of reading one signal: a value (possibly from cache) and/or an error."""

    name: SignalName
    source_type: str
    series: Series | None = None
    events: GridEvents | None = None
    error: SignalError | None = None
    """The current failure: the read failed outright, or a cached value is being served."""

    def age_seconds(self, now: datetime) -> float | None:
        """Age of the data (see Series/GridEvents.age_seconds); None without data."""
        if self.series is not None:
            return self.series.age_seconds(now)
        if self.events is not None:
            return self.events.age_seconds(now)
        return None

    def status(self, now: datetime) -> dict[str, Any]:
        """The fields of the Region's `status.signals[]` entry (SignalStatus) for this reading."""
        now = utc(now)
        value: str | None = None
        fetched: datetime | None = None
        if self.series is not None:
            fetched = self.series.fetched_at
            point = self.series.current(now) or self.series.latest_before(now)
            if point is not None:
                value = f"{point.value:.6g} {self.series.unit}"
        elif self.events is not None:
            fetched = self.events.fetched_at
            value = f"cap {self.events.cap_fraction(now):.0%}, {len(self.events.events)} event(s)"
        return {
            "kind": self.name,
            "value": value,
            "fetchedAt": fetched,
            "fresh": self.is_fresh(now) and self.error is None,
            "error": str(self.error) if self.error is not None else None,
        }

    def is_fresh(self, now: datetime) -> bool:
        """Data present and not stale."""
        if self.series is not None:
            return not self.series.is_stale(now)
        if self.events is not None:
            return not self.events.is_stale(now)
        return False


@dataclass(frozen=True)
class RegionSnapshot:
    """The Region's signals at one instant. Unconfigured signals are None."""

    at: datetime
    currency: str | None
    price: SignalReading | None
    carbon: SignalReading | None
    grid_events: SignalReading | None

    def _value(self, reading: SignalReading | None, now: datetime) -> float | None:
        if reading is None or reading.series is None:
            return None
        try:
            return reading.series.value(now)
        except StaleData:
            return None

    def price_per_kwh(self, now: datetime) -> float | None:
        """Price in the Region's currency per kWh; None when unconfigured, missing or stale."""
        return self._value(self.price, utc(now))

    def carbon_g_per_kwh(self, now: datetime) -> float | None:
        """Carbon intensity in gCO2eq/kWh; None when unconfigured, missing or stale."""
        return self._value(self.carbon, utc(now))

    def cap_fraction(self, now: datetime) -> float:
        """Capacity fraction allowed by grid events (1.0 without events).

        Stale events still apply: a cap the VTN announced stays in force until it ends.
        """
        if self.grid_events is None or self.grid_events.events is None:
            return 1.0
        return self.grid_events.events.cap_fraction(utc(now))

    def problems(self, now: datetime) -> list[str]:
        """Why signals are not fresh: missing, stale or failing ones, with what to fix."""
        now = utc(now)
        out: list[str] = []
        for reading in (self.price, self.carbon, self.grid_events):
            if reading is None:
                continue
            if reading.error is not None:
                out.append(f"{reading.name}: {reading.error}")
            elif not reading.is_fresh(now):
                age = reading.age_seconds(now)
                out.append(
                    f"{reading.name} ({reading.source_type}): stale, "
                    + ("no data" if age is None else f"newest data {age:.0f} s old")
                )
        return out

    def statuses(self, now: datetime) -> list[dict[str, Any]]:
        """`status.signals` entries (SignalStatus fields) for the configured signals."""
        return [r.status(now) for r in (self.price, self.carbon, self.grid_events) if r]

    def all_fresh(self, now: datetime) -> bool:
        """No configured signal is missing, stale or failing."""
        return not self.problems(now)


def _unexpected(name: str, err: Exception) -> SignalError:
    """An unforeseen failure as a SignalError; only its type is kept (it may quote a body)."""
    return SignalError(name, f"unexpected {type(err).__name__} while reading")


class RegionSignals:
    """The built sources of one Region (price, carbon, grid events), each cached."""

    def __init__(self, energy: Any, *, secrets: SecretResolver | None = None) -> None:
        """`energy` is a Region's `spec.energy` (currency, price, carbon, gridEvents)."""
        self.currency: str | None = getattr(energy, "currency", None)
        price_cfg = getattr(energy, "price", None)
        carbon_cfg = getattr(energy, "carbon", None)
        events_cfg = getattr(energy, "gridEvents", None)
        self._types = {
            "price": getattr(price_cfg, "type", ""),
            "carbon": getattr(carbon_cfg, "type", ""),
            "gridEvents": getattr(events_cfg, "type", ""),
        }
        self.price: SignalSource | None = (
            build_price_source(price_cfg, secrets=secrets, region_currency=self.currency)
            if price_cfg is not None
            else None
        )
        self.carbon: SignalSource | None = (
            build_carbon_source(carbon_cfg, secrets=secrets) if carbon_cfg is not None else None
        )
        self.grid_events: GridEventReader | None = (
            build_grid_event_source(events_cfg, secrets=secrets) if events_cfg is not None else None
        )
        self._refreshers: dict[str, Refresher[SignalReading | None]] | None = None

    def _series(self, name: SignalName, source: SignalSource | None, now: datetime) -> Any:
        if source is None:
            return None
        try:
            series = source.read(now)
        except SignalError as err:
            return SignalReading(name, self._types[name], error=err)
        except Exception as err:  # a feed's surprise is that feed's error, never the loop's
            return SignalReading(name, self._types[name], error=_unexpected(name, err))
        return SignalReading(name, self._types[name], series=series, error=series.last_error)

    def _events(self, now: datetime) -> SignalReading | None:
        if self.grid_events is None:
            return None
        try:
            got = self.grid_events.read(now)
            return SignalReading(
                "gridEvents", self._types["gridEvents"], events=got, error=got.last_error
            )
        except SignalError as err:
            return SignalReading("gridEvents", self._types["gridEvents"], error=err)
        except Exception as err:
            error = _unexpected("gridEvents", err)
            return SignalReading("gridEvents", self._types["gridEvents"], error=error)

    def reader(self, name: SignalName) -> Callable[[datetime], SignalReading | None]:
        """The never-raising read of one signal (what a background refresher calls)."""
        if name == "gridEvents":
            return self._events
        source = self.price if name == "price" else self.carbon
        return lambda now: self._series(name, source, now)

    def read(self, now: datetime) -> RegionSnapshot:
        """Every configured signal; failures are captured in the snapshot, never raised.

        With background refreshers started (:meth:`refresh_in_background`), the latest value
        each has read, without waiting on any I/O; otherwise each source is read now."""
        now = utc(now)
        refreshers = self._refreshers
        if refreshers is not None:
            return RegionSnapshot(
                at=now,
                currency=self.currency,
                price=refreshers["price"].latest() if "price" in refreshers else None,
                carbon=refreshers["carbon"].latest() if "carbon" in refreshers else None,
                grid_events=(
                    refreshers["gridEvents"].latest() if "gridEvents" in refreshers else None
                ),
            )
        return RegionSnapshot(
            at=now,
            currency=self.currency,
            price=self._series("price", self.price, now),
            carbon=self._series("carbon", self.carbon, now),
            grid_events=self._events(now),
        )

    def refresh_in_background(
        self, period_seconds: float, clock: Callable[[], datetime] | None = None
    ) -> None:
        """Read each configured source in its own daemon thread from now on (idempotent): a
        feed that hangs holds up its own thread only, and :meth:`read` never waits."""
        if self._refreshers is not None:
            return
        sources: tuple[tuple[SignalName, object], ...] = (
            ("price", self.price),
            ("carbon", self.carbon),
            ("gridEvents", self.grid_events),
        )
        configured = [n for n, src in sources if src is not None]
        refreshers: dict[str, Refresher[SignalReading | None]] = {
            n: Refresher[SignalReading | None](
                f"{n}/{self._types[n]}",
                self.reader(n),
                SignalReading(n, self._types[n], error=_not_read_yet(n)),
                lambda r: r is not None and r.error is not None,
                period_seconds,
                clock,
            )
            for n in configured
        }
        self._refreshers = refreshers
        for r in refreshers.values():
            r.start()

    def stop(self) -> None:
        """Stop the background refreshers (the Region was rebuilt or removed)."""
        for r in (self._refreshers or {}).values():
            r.stop()


def _not_read_yet(name: str) -> SignalError:
    return SignalError(name, "not read yet (its first refresh has not finished)")
