"""A CSV time series from a local file or an HTTP(S) URL, as a price or carbon signal.

The default columns are those of the shared data set: prices `timestamp_utc, region,
price_per_mwh, currency, ...`; carbon `timestamp_utc, region, gco2_per_kwh, ...`. Timestamps are
ISO 8601 interval starts (UTC when they carry no offset); each row holds `resolutionSeconds`.
Missing hours are reported as warnings and never invented; NaN and Inf rows are dropped.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from wattscale.api.sources import CsvCarbonSource, CsvPriceSource
from wattscale.signals.base import (
    CARBON_UNIT,
    LBS_PER_MWH_TO_G_PER_KWH,
    BadPayload,
    ConfigError,
    EmptySeries,
    Series,
    SourceContext,
    clean_points,
    parse_time,
    price_factor,
    price_unit,
    utc,
    window,
)
from wattscale.signals.http import HttpClient

NAME = "csv"
LOOKBACK = timedelta(days=2)
LOOKAHEAD = timedelta(days=7)
_CARBON_SCALE = {"gPerKwh": 1.0, "kgPerMwh": 1.0, "lbsPerMwh": LBS_PER_MWH_TO_G_PER_KWH}
_PRICE_SCALE = {"perMwh": 1 / 1000, "perKwh": 1.0}


MAX_FILE_BYTES = 32 * 2**20
"""A local CSV larger than this is refused: years of hourly rows take a few MiB."""


@dataclass(frozen=True)
class _Parsed:
    raw: tuple[tuple[datetime, datetime, object, str | None], ...]
    currencies: frozenset[str]
    seen_rows: int


def parse_csv(text: str, cfg: CsvPriceSource | CsvCarbonSource) -> _Parsed:
    """Rows of the configured region as raw (start, end, value, None) tuples, and currencies."""
    if "\x00" in text:
        raise BadPayload(NAME, "binary data (a NUL byte), not a CSV file")
    try:
        return _parse_rows(text, cfg)
    except csv.Error as exc:
        # A field over the csv module's limit (128 KiB), a broken quote: not a usable CSV.
        raise BadPayload(NAME, f"not a usable CSV file ({exc})") from None


def _parse_rows(text: str, cfg: CsvPriceSource | CsvCarbonSource) -> _Parsed:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    for col in (cfg.timestampColumn, cfg.valueColumn):
        if col not in header:
            raise BadPayload(
                NAME,
                f"column {col!r} not in the CSV header ({len(header)} columns; not shown)",
                "set timestampColumn/valueColumn to the file's column names",
            )
    i_time, i_value = header.index(cfg.timestampColumn), header.index(cfg.valueColumn)
    i_region = header.index("region") if "region" in header else None
    i_cur = None
    if isinstance(cfg, CsvPriceSource) and cfg.currencyColumn in header:
        i_cur = header.index(cfg.currencyColumn)
    width = len(header)
    step = timedelta(seconds=cfg.resolutionSeconds)
    raw: list[tuple[datetime, datetime, object, str | None]] = []
    currencies: set[str] = set()
    seen_rows = 0
    for row in reader:
        if not row:
            continue
        seen_rows += 1
        if len(row) < width:
            row = row + [""] * (width - len(row))
        if cfg.regionKey is not None and (i_region is None or row[i_region] != cfg.regionKey):
            continue
        stamp = row[i_time]
        if not stamp:
            continue
        start = parse_time(stamp, NAME)
        if i_cur is not None:
            cur = row[i_cur].strip().upper()
            if cur:
                currencies.add(cur)
        raw.append((start, start + step, row[i_value], None))
    return _Parsed(tuple(raw), frozenset(currencies), seen_rows)


class CsvSource:
    """A price or carbon series read from CSV, windowed around `now`."""

    def __init__(self, config: CsvPriceSource | CsvCarbonSource, ctx: SourceContext) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx
        self.kind = "price" if isinstance(config, CsvPriceSource) else "carbon"
        self.http: HttpClient | None = None
        self._file_key: tuple[int, int] | None = None
        self._file_rows: _Parsed | None = None
        if config.url:
            self.http = HttpClient(
                NAME, timeout_seconds=config.timeoutSeconds, max_retries=config.maxRetries
            )

    def _text(self) -> str:
        if self.http is not None and self.config.url:
            resp = self.http.request("GET", self.config.url)
            resp.encoding = resp.encoding or "utf-8"
            return resp.text
        path = Path(self.config.path or "")
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(
                NAME, f"cannot read {path}: {exc.strerror}", "check `path` (mounted volume?)"
            ) from None
        if len(data) > MAX_FILE_BYTES:
            raise BadPayload(NAME, f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadPayload(
                NAME, f"{path} is not UTF-8 text (offset {exc.start})", "is it a CSV file?"
            ) from None

    def _parsed(self) -> _Parsed:
        """Parsed rows; a local file is parsed again only when its mtime or size changes."""
        if self.config.path and not self.config.url:
            try:
                st = Path(self.config.path).stat()
            except OSError as exc:
                raise ConfigError(
                    NAME,
                    f"cannot read {self.config.path}: {exc.strerror}",
                    "check `path` (mounted volume?)",
                ) from None
            key = (st.st_mtime_ns, st.st_size)
            if self._file_key == key and self._file_rows is not None:
                return self._file_rows
            parsed = parse_csv(self._text(), self.config)
            self._file_key, self._file_rows = key, parsed
            return parsed
        return parse_csv(self._text(), self.config)

    def read(self, now: datetime) -> Series:
        """The rows around `now` (2 days back, 7 days ahead) in normalised units."""
        now = utc(now)
        cfg = self.config
        parsed = self._parsed()
        raw, currencies, seen_rows = parsed.raw, set(parsed.currencies), parsed.seen_rows
        if not seen_rows:
            raise EmptySeries(NAME, "the CSV has no data rows")
        if not raw:
            raise EmptySeries(
                NAME, f"no rows for region {cfg.regionKey!r}", "check regionKey against the file"
            )
        if isinstance(cfg, CsvPriceSource):
            if len(currencies) > 1:
                raise BadPayload(NAME, f"rows mix currencies {sorted(currencies)}")
            src_currency = cfg.currency or (currencies.pop() if currencies else None)
            if cfg.currency and currencies and cfg.currency not in currencies:
                raise BadPayload(
                    NAME,
                    f"rows are in {sorted(currencies)}, the source says {cfg.currency}",
                    "fix `currency` or `currencyColumn`",
                )
            fx, currency = price_factor(
                NAME, src_currency, self.ctx.region_currency, cfg.fxRateToRegionCurrency
            )
            scale = _PRICE_SCALE[cfg.priceUnit] * fx
            unit = price_unit(currency)
        else:
            scale = _CARBON_SCALE[cfg.carbonUnit]
            unit = CARBON_UNIT
        windowed = [r for r in raw if r[1] > now - LOOKBACK and r[0] < now + LOOKAHEAD]
        if not windowed:  # keep the newest row before now so staleness can be computed
            earlier = [r for r in raw if r[0] <= now]
            windowed = [max(earlier, key=lambda r: r[0])] if earlier else []
        points, warnings = clean_points(windowed, NAME, scale=scale)
        points = window(points, now, LOOKBACK, LOOKAHEAD)
        if not points:
            raise EmptySeries(
                NAME,
                f"no usable values around {now:%Y-%m-%dT%H:%MZ}",
                "the file holds only later rows, or only NaN/empty values",
            )
        return Series(
            source=NAME,
            kind="price" if isinstance(cfg, CsvPriceSource) else "carbon",
            unit=unit,
            points=points,
            fetched_at=now,
            max_age_seconds=cfg.maxAgeSeconds,
            warnings=warnings,
        )
