"""The signals protocol and its value types: Series, Point, GridEvent, typed errors, helpers.

Every source module builds on this file and nothing else in `wattscale.signals` (apart from
`http.py`), so sources stay independent of each other.

Units are normalised on the way in: prices are `<CURRENCY>/kWh` in the Region's currency, carbon
intensity is `gCO2eq/kWh`. All timestamps are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Generic, Literal, Protocol, Self, TypeVar, runtime_checkable

from wattscale.api.sources import SecretKeyRef

CARBON_UNIT = "gCO2eq/kWh"
LBS_PER_MWH_TO_G_PER_KWH = 0.453592
"""1 lb/MWh = 453.592 g / 1000 kWh."""

SignalKind = Literal["price", "carbon"]


# ------------------------------------------------------------------------------------ errors


class SignalError(Exception):
    """A source could not deliver a usable value. `hint` says what to fix."""

    def __init__(self, source: str, message: str, hint: str = "") -> None:
        self.source = source
        self.message = message
        self.hint = hint
        text = f"{source}: {message}"
        if hint:
            text += f" (fix: {hint})"
        super().__init__(text)


class AuthError(SignalError):
    """The provider rejected the credentials (HTTP 401/403)."""


class RateLimited(SignalError):  # noqa: N818 (names from the issue)
    """The provider asked us to slow down (HTTP 429); `retry_after_seconds` says for how long."""

    def __init__(self, source: str, message: str, hint: str = "", retry_after: float = 60.0):
        super().__init__(source, message, hint)
        self.retry_after_seconds = retry_after


class BadPayload(SignalError):  # noqa: N818 (names from the issue)
    """The provider answered, but not with data we can use (malformed, wrong shape, bad units)."""


class EmptySeries(BadPayload):
    """The provider answered well-formed but without any usable data point."""


class RequestRejected(SignalError):  # noqa: N818 (names from the issue)
    """The provider rejected the request itself (HTTP 400/404...): usually a config mistake."""


class StaleData(SignalError):  # noqa: N818 (names from the issue)
    """Data exists but is older than the configured `maxAgeSeconds`."""


class Unreachable(SignalError):  # noqa: N818 (names from the issue)
    """Network error, timeout, or server errors (5xx) after all retries."""


class CurrencyMismatch(SignalError):  # noqa: N818 (names from the issue)
    """Prices are in another currency than the Region's and no FX rate is configured."""


class ConfigError(SignalError):
    """The source configuration cannot work (missing secret, unreadable file, ...)."""


# ------------------------------------------------------------------------------ value types


@dataclass(frozen=True, slots=True)
class Point:
    """A value holding over [start, end), UTC."""

    start: datetime
    end: datetime
    value: float
    label: str | None = None
    """Optional provider label, e.g. the GB Carbon Intensity index ("low", "high")."""

    def covers(self, t: datetime) -> bool:
        """Whether this interval contains the instant `t`."""
        return self.start <= t < self.end


@dataclass(frozen=True)
class Series:
    """Values of one signal: firm points (measured, published or tariff) plus forecast points.

    `points` are values the provider states as fact: measurements, cleared day-ahead prices,
    tariffs. `forecast` holds predicted values. Both are sorted and non-overlapping.
    """

    source: str
    kind: SignalKind
    unit: str
    points: tuple[Point, ...]
    fetched_at: datetime
    forecast: tuple[Point, ...] = ()
    max_age_seconds: float = 7200.0
    warnings: tuple[str, ...] = ()
    last_error: SignalError | None = None
    """Set when this is a cached copy returned because the latest refresh failed."""

    @cached_property
    def _merged(self) -> tuple[Point, ...]:
        """Firm points, then forecast points for the times firm points do not cover, by start.

        Computed once per Series (a feed's cached Series is read by every deployment, every
        pass): lookups below are binary searches, not scans of a file's years of points."""
        starts = [q.start for q in self.points]
        merged = list(self.points)
        for p in self.forecast:
            # Firm points are sorted and non-overlapping: only the one starting last before
            # p.end can overlap p (or none).
            i = bisect.bisect_left(starts, p.end) - 1
            if not (i >= 0 and self.points[i].end > p.start):
                merged.append(p)
        merged.sort(key=lambda p: p.start)
        return tuple(merged)

    @cached_property
    def _starts(self) -> list[datetime]:
        return [p.start for p in self._merged]

    @cached_property
    def _group_starts(self) -> tuple[list[datetime], list[datetime]]:
        return [p.start for p in self.points], [p.start for p in self.forecast]

    def all_points(self) -> list[Point]:
        """Firm points, then forecast points for the times firm points do not cover."""
        return list(self._merged)

    def point_at(self, t: datetime) -> Point | None:
        """The first point of :meth:`all_points` that covers ``t``, else None."""
        i = bisect.bisect_right(self._starts, t) - 1
        while i > 0 and self._starts[i - 1] == self._starts[i]:
            i -= 1
        return self._merged[i] if i >= 0 and self._merged[i].covers(t) else None

    def current(self, now: datetime) -> Point | None:
        """The point covering `now` (firm preferred over forecast), else None."""
        for group, starts in zip((self.points, self.forecast), self._group_starts, strict=True):
            i = bisect.bisect_right(starts, now) - 1
            while i > 0 and starts[i - 1] == starts[i]:
                i -= 1  # equal starts: the first, as a scan in order would find
            if i >= 0 and group[i].covers(now):
                return group[i]
        return None

    def latest_before(self, now: datetime) -> Point | None:
        """The newest point that started at or before `now`."""
        i = bisect.bisect_right(self._starts, now) - 1
        return self._merged[i] if i >= 0 else None

    def age_seconds(self, now: datetime) -> float:
        """How far `now` is past the end of the data: 0 when a point covers `now`.

        Infinite when there is no point at or before `now`.
        """
        if self.current(now) is not None:
            return 0.0
        last = self.latest_before(now)
        if last is None:
            return math.inf
        return max(0.0, (now - last.end).total_seconds())

    def is_stale(self, now: datetime) -> bool:
        """Whether the data is older than `max_age_seconds` (the planner then falls back)."""
        return self.age_seconds(now) > self.max_age_seconds

    def value(self, now: datetime) -> float:
        """The value at `now`; falls back to the newest earlier value while not stale.

        Raises StaleData when there is no value or it is older than `max_age_seconds`.
        """
        point = self.current(now)
        if point is not None:
            return point.value
        last = self.latest_before(now)
        age = self.age_seconds(now)
        if last is None or age > self.max_age_seconds:
            raise StaleData(
                self.source,
                f"no value for {now:%Y-%m-%dT%H:%MZ}; newest data ended "
                + (f"{age:.0f} s ago" if last is not None else "never"),
                "check the feed is still publishing, or raise maxAgeSeconds",
            )
        return last.value

    def upcoming(self, now: datetime, horizon: timedelta) -> list[Point]:
        """Points that overlap [now, now + horizon), firm preferred over forecast."""
        end = now + horizon
        first = max(0, bisect.bisect_right(self._starts, now) - 1)
        last = bisect.bisect_left(self._starts, end)
        return [p for p in self._merged[first:last] if p.end > now and p.start < end]

    def with_error(self, error: SignalError) -> Self:
        """A copy that carries the error of a failed refresh."""
        return replace(self, last_error=error)


GridEventKind = Literal["capped", "excluded"]


@dataclass(frozen=True, slots=True)
class GridEvent:
    """A window in which the region may use only `cap_fraction` of its capacity (0: excluded)."""

    start: datetime
    end: datetime | None
    """None: open-ended (until the event is withdrawn)."""
    cap_fraction: float
    kind: GridEventKind
    level: int | None = None
    event_id: str = ""
    program: str = ""
    reason: str = ""

    def active(self, t: datetime) -> bool:
        """Whether the event applies at instant `t`."""
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True)
class GridEvents:
    """All known current and future grid events of one region."""

    source: str
    events: tuple[GridEvent, ...]
    fetched_at: datetime
    max_age_seconds: float = 900.0
    warnings: tuple[str, ...] = ()
    last_error: SignalError | None = None

    def active(self, now: datetime) -> list[GridEvent]:
        """Events in force at `now`."""
        return [e for e in self.events if e.active(now)]

    def cap_fraction(self, now: datetime) -> float:
        """The tightest cap in force at `now` (1.0 when none)."""
        return min((e.cap_fraction for e in self.active(now)), default=1.0)

    def age_seconds(self, now: datetime) -> float:
        """Seconds since the events were last fetched successfully."""
        return max(0.0, (now - self.fetched_at).total_seconds())

    def is_stale(self, now: datetime) -> bool:
        """Whether the last good poll is older than `max_age_seconds`."""
        return self.age_seconds(now) > self.max_age_seconds

    def with_error(self, error: SignalError) -> Self:
        """A copy that carries the error of a failed refresh."""
        return replace(self, last_error=error)


# -------------------------------------------------------------------------------- protocols


@runtime_checkable
class SignalSource(Protocol):
    """A price or carbon source. `read` is synchronous and may block on I/O (call it off-loop).

    It returns a Series or raises a SignalError subclass; nothing else escapes.
    """

    name: str

    def read(self, now: datetime) -> Series:
        """Current values and forecast as of `now` (UTC)."""
        ...


@runtime_checkable
class GridEventReader(Protocol):
    """A grid-event source. `read` is synchronous and raises only SignalError subclasses."""

    name: str

    def read(self, now: datetime) -> GridEvents:
        """All current and future events as of `now` (UTC)."""
        ...


SecretResolver = Callable[[SecretKeyRef], str]
"""Returns the value behind a Secret reference, or raises KeyError / LookupError."""


def dict_secret_resolver(values: Mapping[str, str]) -> SecretResolver:
    """A resolver over a dict keyed `name/key` or `namespace/name/key` (tests, the CLI)."""

    def resolve(ref: SecretKeyRef) -> str:
        keys = [f"{ref.name}/{ref.key}"]
        if ref.namespace:
            keys.insert(0, f"{ref.namespace}/{ref.name}/{ref.key}")
        for k in keys:
            if k in values:
                return values[k]
        raise KeyError(f"{ref.name}/{ref.key}")

    return resolve


@dataclass(frozen=True)
class SourceContext:
    """What a source needs from its environment besides its config."""

    secrets: SecretResolver = field(default=dict_secret_resolver({}))
    region_currency: str | None = None
    """ISO currency of the Region; prices are converted into it."""


def resolve_secret(ctx: SourceContext, ref: SecretKeyRef, source: str, what: str) -> str:
    """Read a secret through the context, turning failures into a ConfigError (value unlogged)."""
    where = f"{ref.namespace + '/' if ref.namespace else ''}{ref.name}, key {ref.key!r}"
    try:
        value = ctx.secrets(ref)
    except Exception as exc:
        raise ConfigError(
            source,
            f"cannot read the {what} from Secret {where}: {type(exc).__name__}",
            f"create the Secret {where} or fix the reference in the Region",
        ) from None
    if not value:
        raise ConfigError(source, f"the {what} in Secret {where} is empty", "put the value in")
    return value.strip()


# ---------------------------------------------------------------------------------- helpers


def utc(dt: datetime) -> datetime:
    """The same instant as an aware UTC datetime (naive input is taken as UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_time(text: str, source: str) -> datetime:
    """Parse an ISO 8601 timestamp (with `Z`, offset, or naive-as-UTC) to aware UTC."""
    try:
        dt = datetime.fromisoformat(text)  # Python 3.11 reads "Z" and most ISO 8601 forms
    except (ValueError, TypeError):
        try:
            dt = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadPayload(
                source, f"unparseable timestamp ({len(text)} characters; not shown)"
            ) from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt if dt.tzinfo is UTC else dt.astimezone(UTC)


def to_float(raw: object) -> float | None:
    """A finite float from a number or numeric string; None for null, NaN, Inf or junk."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def clean_points(
    raw: Iterable[tuple[datetime, datetime, object, str | None]],
    source: str,
    *,
    scale: float = 1.0,
) -> tuple[tuple[Point, ...], tuple[str, ...]]:
    """Validate raw (start, end, value, label) tuples into sorted, de-duplicated Points.

    - non-numeric, NaN and infinite values are dropped (with a warning);
    - duplicated starts keep the last occurrence (with a warning if the values differ);
    - gaps between consecutive points are reported as warnings (no value is invented);
    - negative values are valid and kept (negative prices are real).
    """
    warnings: list[str] = []
    by_start: dict[datetime, Point] = {}
    dropped = 0
    conflicts = 0
    for item in raw:
        start, end, value, label = item
        number = to_float(value)
        if number is None:
            dropped += 1
            continue
        if end <= start:
            dropped += 1
            continue
        point = Point(utc(start), utc(end), number * scale, label)
        previous = by_start.get(point.start)
        if previous is not None and previous.value != point.value:
            conflicts += 1
        by_start[point.start] = point
    if dropped:
        warnings.append(f"dropped {dropped} point(s) with missing, NaN or infinite values")
    if conflicts:
        warnings.append(f"{conflicts} duplicated timestamp(s) with differing values; kept the last")
    points = sorted(by_start.values(), key=lambda p: p.start)
    # Resolve overlaps (e.g. a duplicated hour at a different resolution): keep the earlier one.
    cleaned: list[Point] = []
    for p in points:
        if cleaned and p.start < cleaned[-1].end:
            continue
        cleaned.append(p)
    gaps = 0
    missing = timedelta(0)
    for a, b in itertools.pairwise(cleaned):
        if b.start > a.end:
            gaps += 1
            missing += b.start - a.end
    if gaps:
        hours = missing.total_seconds() / 3600
        warnings.append(f"{gaps} gap(s) in the series, {hours:g} h missing in total")
    del source
    return tuple(cleaned), tuple(warnings)


def window(
    points: tuple[Point, ...], now: datetime, back: timedelta, ahead: timedelta
) -> tuple[Point, ...]:
    """Points overlapping [now - back, now + ahead); keeps the newest earlier one if none do."""
    lo, hi = now - back, now + ahead
    kept = tuple(p for p in points if p.end > lo and p.start < hi)
    if kept:
        return kept
    earlier = [p for p in points if p.start <= now]
    return (earlier[-1],) if earlier else ()


def price_factor(
    source: str,
    source_currency: str | None,
    region_currency: str | None,
    fx_rate: float | Decimal | None,
) -> tuple[float, str]:
    """The multiplier from source currency to region currency, and the resulting currency.

    Raises CurrencyMismatch when the currencies differ and no FX rate is configured.
    """
    src = (source_currency or region_currency or "").upper()
    dst = (region_currency or src).upper()
    if not src:
        raise ConfigError(
            source,
            "the price currency is unknown",
            "set `currency` on the price source or the Region's spec.energy.currency",
        )
    if src == dst:
        return 1.0, dst
    if fx_rate is None:
        raise CurrencyMismatch(
            source,
            f"prices are in {src} but the Region's currency is {dst}",
            f"set fxRateToRegionCurrency (how many {dst} one {src} buys) on the price source, "
            f"or change the Region's currency to {src}",
        )
    return float(fx_rate), dst


def price_unit(currency: str) -> str:
    """The normalised price unit string."""
    return f"{currency}/kWh"


class _Refreshable(Protocol):
    def with_error(self, error: SignalError) -> Self: ...


T = TypeVar("T", bound=_Refreshable)


T_co = TypeVar("T_co", covariant=True)


class _Readable(Protocol[T_co]):
    @property
    def name(self) -> str: ...

    def read(self, now: datetime) -> T_co: ...


class Cached(Generic[T]):
    """Wraps a source with a TTL cache, Retry-After backoff and serve-stale-on-error.

    - a good read is reused for `refresh_seconds` (of the `now` passed in);
    - after a 429 the provider is not called again until its Retry-After has passed;
    - when a refresh fails and a previous good value exists, that value is returned with
      `last_error` set (its age keeps growing, so staleness shows); without one, the typed
      error is raised. Unexpected exceptions from a parser become BadPayload.
    Thread-safe: one refresh at a time per source.
    """

    def __init__(self, inner: _Readable[T], refresh_seconds: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.kind: str | None = getattr(inner, "kind", None)
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._value: T | None = None
        self._fetched_at: datetime | None = None
        self._blocked_until: datetime | None = None
        self._last_error: SignalError | None = None

    def invalidate(self) -> None:
        """Forget the cached value (the next read fetches)."""
        with self._lock:
            self._value = None
            self._fetched_at = None

    def read(self, now: datetime) -> T:
        """The cached value, refreshed when older than the TTL."""
        with self._lock:
            return self._read(utc(now))

    def _fail(self, err: SignalError) -> T:
        self._last_error = err
        if self._value is not None:
            return self._value.with_error(err)
        raise err

    def _read(self, now: datetime) -> T:
        if (
            self._value is not None
            and self._fetched_at is not None
            and self._fetched_at <= now
            and (now - self._fetched_at).total_seconds() < self.refresh_seconds
        ):
            return self._value
        if self._blocked_until is not None and now < self._blocked_until:
            return self._fail(
                self._last_error
                or RateLimited(self.name, "rate limited", "wait for Retry-After to pass")
            )
        try:
            fetched = self.inner.read(now)
        except RateLimited as err:
            self._blocked_until = now + timedelta(seconds=err.retry_after_seconds)
            return self._fail(err)
        except SignalError as err:
            return self._fail(err)
        except Exception as exc:  # a parser bug must not crash the control loop
            # The exception's text may quote the payload: only its type is reported.
            wrapped = BadPayload(self.name, f"unexpected {type(exc).__name__} while parsing")
            wrapped.__cause__ = exc
            return self._fail(wrapped)
        self._value = fetched
        self._fetched_at = now
        self._blocked_until = None
        self._last_error = None
        return fetched
