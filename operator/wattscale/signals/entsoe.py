"""ENTSO-E Transparency Platform day-ahead prices (document type A44, XML).

Request: `GET {baseUrl}?documentType=A44&in_Domain=EIC&out_Domain=EIC&periodStart=yyyyMMddHHmm
&periodEnd=yyyyMMddHHmm&securityToken=...` (UTC). Answer: a `Publication_MarketDocument` with one
or more `TimeSeries` (`currency_Unit.name`, `price_Measure_Unit.name` = MWH, `curveType`), each
with `Period`s (`timeInterval` start/end, `resolution` PT15M/PT30M/PT60M) of `Point`s
(`position` from 1, `price.amount`). With curveType A03 ("variable sized block") a position may be
omitted: the previous point's price then holds until the next position. No data comes back as an
`Acknowledgement_MarketDocument` with a `Reason` (code 999).

Prices are converted from currency/MWh to currency/kWh (/1000) and into the Region's currency.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta

from wattscale.api.sources import EntsoePriceSource
from wattscale.signals.base import (
    BadPayload,
    EmptySeries,
    Point,
    RequestRejected,
    Series,
    SourceContext,
    clean_points,
    parse_time,
    price_factor,
    price_unit,
    resolve_secret,
    utc,
)
from wattscale.signals.http import HttpClient

NAME = "entsoe"
_RESOLUTION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?$")
_ENERGY_UNITS_PER_KWH = {"MWH": 1 / 1000, "KWH": 1.0}


@dataclass(frozen=True)
class A44Prices:
    """Parsed day-ahead prices: per-MWh (or per-kWh) values as in the document."""

    currency: str
    energy_unit: str
    points: tuple[tuple[datetime, datetime, object], ...]
    resolution: timedelta


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _text(elem: ET.Element | None, name: str) -> str | None:
    if elem is None:
        return None
    c = _child(elem, name)
    return c.text.strip() if c is not None and c.text else None


def parse_resolution(text: str) -> timedelta:
    """ISO 8601 duration of an ENTSO-E Period resolution (PT15M, PT30M, PT60M, PT1H)."""
    m = _RESOLUTION.match(text.strip())
    if not m or not (m.group(1) or m.group(2)):
        raise BadPayload(NAME, f"unsupported Period resolution ({len(text)} characters; not shown)")
    return timedelta(hours=int(m.group(1) or 0), minutes=int(m.group(2) or 0))


def parse_a44(body: bytes | str) -> A44Prices:
    """Parse an A44 Publication_MarketDocument (or its Acknowledgement) into raw price points.

    With several resolutions in one document (e.g. hourly and 15-minute series for one day),
    the finest resolution wins. Raises BadPayload, EmptySeries or RequestRejected.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadPayload(NAME, f"malformed XML: {exc}", "check baseUrl points at the API") from None
    root_name = _local(root.tag)
    if root_name == "Acknowledgement_MarketDocument":
        reason = _child(root, "Reason")
        code, text = _text(reason, "code"), _text(reason, "text") or "no reason given"
        if code == "999":
            raise EmptySeries(
                NAME,
                f"no day-ahead prices for the requested period: {text}",
                "check biddingZone (EIC code); prices for tomorrow appear after ~13:00 CET",
            )
        raise RequestRejected(NAME, f"request rejected (code {code}): {text}", "check biddingZone")
    if root_name != "Publication_MarketDocument":
        raise BadPayload(NAME, f"unexpected XML document {root_name!r}, expected A44 prices")
    doc_type = _text(root, "type")
    if doc_type and doc_type != "A44":
        raise BadPayload(NAME, f"document type {doc_type}, expected A44 (day-ahead prices)")
    currencies: set[str] = set()
    units: set[str] = set()
    by_resolution: dict[timedelta, list[tuple[datetime, datetime, object]]] = {}
    for ts in _children(root, "TimeSeries"):
        currency = _text(ts, "currency_Unit.name")
        unit = (_text(ts, "price_Measure_Unit.name") or "MWH").upper()
        if currency:
            currencies.add(currency.upper())
        units.add(unit)
        curve = _text(ts, "curveType") or "A01"
        for period in _children(ts, "Period"):
            interval = _child(period, "timeInterval")
            start_text, end_text = _text(interval, "start"), _text(interval, "end")
            res_text = _text(period, "resolution")
            if not start_text or not end_text or not res_text:
                raise BadPayload(NAME, "a Period lacks timeInterval start/end or resolution")
            start, end = parse_time(start_text, NAME), parse_time(end_text, NAME)
            step = parse_resolution(res_text)
            slots = int((end - start) / step)
            if slots <= 0:
                raise BadPayload(NAME, f"empty Period {start_text}..{end_text}")
            values: dict[int, object] = {}
            for pt in _children(period, "Point"):
                pos_text = _text(pt, "position")
                amount = _text(pt, "price.amount")
                try:
                    pos = int(pos_text or "")
                except ValueError:
                    msg = f"Point position {pos_text!r} is not an integer"
                    raise BadPayload(NAME, msg) from None
                if 1 <= pos <= slots:
                    values[pos] = amount
            out = by_resolution.setdefault(step, [])
            if curve == "A03":
                # Variable-sized blocks: a position holds until the next position given.
                positions = sorted(values)
                for i, pos in enumerate(positions):
                    nxt = positions[i + 1] if i + 1 < len(positions) else slots + 1
                    for k in range(pos, nxt):
                        out.append((start + step * (k - 1), start + step * k, values[pos]))
            else:
                for pos, value in values.items():
                    out.append((start + step * (pos - 1), start + step * pos, value))
    if len(currencies) > 1:
        raise BadPayload(NAME, f"mixed currencies in one document: {sorted(currencies)}")
    if not by_resolution:
        raise EmptySeries(NAME, "the document holds no TimeSeries", "check biddingZone")
    step = min(by_resolution)
    unit = units.pop() if len(units) == 1 else "MWH"
    return A44Prices(
        currency=currencies.pop() if currencies else "EUR",
        energy_unit=unit,
        points=tuple(by_resolution[step]),
        resolution=step,
    )


def _fmt(t: datetime) -> str:
    return utc(t).strftime("%Y%m%d%H%M")


class EntsoeSource:
    """Day-ahead prices for one bidding zone from the ENTSO-E Transparency Platform."""

    kind = "price"

    def __init__(self, config: EntsoePriceSource, ctx: SourceContext) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx
        self.http = HttpClient(
            NAME,
            timeout_seconds=config.timeoutSeconds,
            max_retries=config.maxRetries,
            auth_hint=(
                "the securityToken was rejected: check Secret "
                f"{config.securityTokenSecretRef.name}/{config.securityTokenSecretRef.key} holds "
                "a valid ENTSO-E Web API token (request 'Restful API access' from the helpdesk)"
            ),
        )

    def read(self, now: datetime) -> Series:
        """Prices from yesterday 00:00 UTC to the end of the day after tomorrow."""
        now = utc(now)
        token = resolve_secret(self.ctx, self.config.securityTokenSecretRef, NAME, "API token")
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        params = {
            "documentType": "A44",
            "in_Domain": self.config.biddingZone,
            "out_Domain": self.config.biddingZone,
            "periodStart": _fmt(day - timedelta(days=1)),
            "periodEnd": _fmt(day + timedelta(days=2)),
            "securityToken": token,
        }
        # ENTSO-E answers bad parameters with 400 + an Acknowledgement document: parse it.
        resp = self.http.request("GET", self.config.baseUrl, params=params, accept_status=(400,))
        if resp.status_code == 400:
            try:
                parse_a44(resp.content)
            except (EmptySeries, RequestRejected):
                raise
            except BadPayload:
                pass
            raise RequestRejected(
                NAME, "400 Bad Request without an explanation", "check biddingZone"
            )
        return self.to_series(parse_a44(resp.content), now)

    def to_series(self, doc: A44Prices, now: datetime) -> Series:
        """Normalise parsed prices into a Series in the Region's currency per kWh."""
        per_kwh = _ENERGY_UNITS_PER_KWH.get(doc.energy_unit)
        if per_kwh is None:
            raise BadPayload(NAME, f"unknown price unit {doc.energy_unit!r}, expected MWH")
        source_currency = self.config.currency or doc.currency
        if self.config.currency and self.config.currency != doc.currency:
            raise BadPayload(
                NAME,
                f"document is in {doc.currency}, the source says {self.config.currency}",
                "remove `currency` from the source or set it to the document's currency",
            )
        fx, currency = price_factor(
            NAME, source_currency, self.ctx.region_currency, self.config.fxRateToRegionCurrency
        )
        points, warnings = clean_points(
            ((s, e, v, None) for s, e, v in doc.points), NAME, scale=per_kwh * fx
        )
        if not points:
            raise EmptySeries(NAME, "no usable price in the document", "check biddingZone")
        return Series(
            source=NAME,
            kind="price",
            unit=price_unit(currency),
            points=points,
            fetched_at=now,
            max_age_seconds=self.config.maxAgeSeconds,
            warnings=warnings,
        )


__all__ = ["A44Prices", "EntsoeSource", "Point", "parse_a44", "parse_resolution"]
