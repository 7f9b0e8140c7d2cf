"""Local HTTP servers that answer like the real providers, and builders for their payloads.

`FeedServer` is a threaded `http.server` on 127.0.0.1 (port 0) with a route table. A route answers
with a `Reply`, a list of replies (served in order, the last one repeating), or a callable taking
the `Seen` request. Every request is recorded in `server.seen`.

The payload builders produce each provider's published shape (see the docstrings of the matching
modules in `wattscale.signals`) from the real data in `tests.fakes.data`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo


@dataclass
class Reply:
    """One canned HTTP answer."""

    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        """Body bytes and a default content type."""
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            ctype = "application/xml" if self.body.lstrip().startswith("<") else "text/plain"
            return self.body.encode(), ctype
        return json.dumps(self.body).encode(), "application/json"


def json_reply(obj: Any, status: int = 200, **headers: str) -> Reply:
    """A JSON answer."""
    return Reply(status=status, body=obj, headers=dict(headers))


@dataclass
class Seen:
    """A request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


Route = Reply | list[Reply] | Callable[[Seen], Reply]


class FeedServer:
    """A provider stand-in on 127.0.0.1; use as a context manager."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command, parts.path, parse_qs(parts.query), dict(self.headers), body
                )
                reply = server._reply(seen)
                if reply.delay_seconds:
                    time.sleep(reply.delay_seconds)
                data, ctype = reply.encoded()
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": ctype, **reply.headers}
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _handle
            do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def _reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            route = self.routes.get(f"{seen.method} {seen.path}", self.routes.get(seen.path))
            if route is None:
                return json_reply({"error": f"no route for {seen.method} {seen.path}"}, 404)
            if isinstance(route, list):
                return route.pop(0) if len(route) > 1 else route[0]
        if isinstance(route, Reply):
            return route
        return route(seen)

    def hits(self, path: str) -> list[Seen]:
        """Requests received on a path."""
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# ------------------------------------------------------------------------------ ENTSO-E A44

_A44_NS = "urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3"
_ACK_NS = "urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0"


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def entsoe_a44(
    rows: Sequence[tuple[datetime, float]],
    zone: str = "10Y1001A1001A82H",
    *,
    currency: str = "EUR",
    resolution_minutes: int = 60,
    curve_type: str = "A01",
) -> str:
    """A Publication_MarketDocument (A44) with one Period per CET delivery day.

    With curve_type A03, a point whose price equals the previous one is omitted, as ENTSO-E does.
    Rows absent from `rows` are simply missing positions (a gap).
    """
    step = timedelta(minutes=resolution_minutes)
    cet = ZoneInfo("Europe/Brussels")
    days: dict[object, list[tuple[datetime, float]]] = {}
    for t, v in sorted(rows):
        days.setdefault(t.astimezone(cet).date(), []).append((t, v))
    series = []
    for i, (day, day_rows) in enumerate(sorted(days.items(), key=lambda kv: str(kv[0])), start=1):
        del day
        start = day_rows[0][0]
        end = day_rows[-1][0] + step
        points = []
        previous: float | None = None
        for t, v in day_rows:
            pos = int((t - start) / step) + 1
            if curve_type == "A03" and previous is not None and v == previous:
                continue
            previous = v
            points.append(
                f"<Point><position>{pos}</position><price.amount>{v}</price.amount></Point>"
            )
        series.append(
            f"""<TimeSeries>
    <mRID>{i}</mRID>
    <auction.type>A01</auction.type>
    <businessType>A62</businessType>
    <in_Domain.mRID codingScheme="A01">{zone}</in_Domain.mRID>
    <out_Domain.mRID codingScheme="A01">{zone}</out_Domain.mRID>
    <contract_MarketAgreement.type>A01</contract_MarketAgreement.type>
    <currency_Unit.name>{currency}</currency_Unit.name>
    <price_Measure_Unit.name>MWH</price_Measure_Unit.name>
    <curveType>{curve_type}</curveType>
    <Period>
      <timeInterval><start>{_z(start)}</start><end>{_z(end)}</end></timeInterval>
      <resolution>PT{resolution_minutes}M</resolution>
      {"".join(points)}
    </Period>
  </TimeSeries>"""
        )
    first = min((t for t, _ in rows), default=datetime(2024, 1, 1, tzinfo=UTC))
    last = max((t for t, _ in rows), default=first) + step
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Publication_MarketDocument xmlns="{_A44_NS}">
  <mRID>b2d3f7c0e1a94f1c9a0b3c4d5e6f7a8b</mRID>
  <revisionNumber>1</revisionNumber>
  <type>A44</type>
  <sender_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450</sender_MarketParticipant.mRID>
  <sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>
  <receiver_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450\
</receiver_MarketParticipant.mRID>
  <receiver_MarketParticipant.marketRole.type>A33</receiver_MarketParticipant.marketRole.type>
  <createdDateTime>{first.strftime("%Y-%m-%dT%H:%M:%SZ")}</createdDateTime>
  <period.timeInterval><start>{_z(first)}</start><end>{_z(last)}</end></period.timeInterval>
  {"".join(series)}
</Publication_MarketDocument>"""


def entsoe_ack(text: str, code: str = "999") -> str:
    """An Acknowledgement_MarketDocument, ENTSO-E's answer when there is no data or an error."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Acknowledgement_MarketDocument xmlns="{_ACK_NS}">
  <mRID>1baecd4d-6a8a-4</mRID>
  <createdDateTime>2024-07-01T10:00:00Z</createdDateTime>
  <sender_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450</sender_MarketParticipant.mRID>
  <sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>
  <receiver_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450\
</receiver_MarketParticipant.mRID>
  <receiver_MarketParticipant.marketRole.type>A39</receiver_MarketParticipant.marketRole.type>
  <received_MarketDocument.createdDateTime>2024-07-01T10:00:00Z\
</received_MarketDocument.createdDateTime>
  <Reason><code>{escape(code)}</code><text>{escape(text)}</text></Reason>
</Acknowledgement_MarketDocument>"""


# --------------------------------------------------------------------------- Electricity Maps


def _ms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def em_carbon_latest(zone: str, t: datetime, value: float | None, **extra: Any) -> dict[str, Any]:
    """An Electricity Maps v3 carbon-intensity/latest answer."""
    return {
        "zone": zone,
        "carbonIntensity": value,
        "datetime": _ms(t),
        "updatedAt": _ms(t + timedelta(minutes=7)),
        "createdAt": _ms(t - timedelta(days=3)),
        "emissionFactorType": "direct",
        "isEstimated": True,
        "estimationMethod": "TIME_SLICER_AVERAGE",
        "temporalGranularity": "hourly",
        **extra,
    }


def em_carbon_forecast(zone: str, rows: Iterable[tuple[datetime, float]]) -> dict[str, Any]:
    """An Electricity Maps v3 carbon-intensity/forecast answer."""
    return {
        "zone": zone,
        "forecast": [{"carbonIntensity": v, "datetime": _ms(t)} for t, v in rows],
        "updatedAt": _ms(datetime.now(UTC)),
    }


def em_price_latest(zone: str, t: datetime, value: float, unit: str = "EUR/MWh") -> dict[str, Any]:
    """An Electricity Maps v3 price-day-ahead/latest answer."""
    return {
        "zone": zone,
        "datetime": _ms(t),
        "createdAt": _ms(t - timedelta(days=1)),
        "updatedAt": _ms(t - timedelta(hours=10)),
        "value": value,
        "unit": unit,
        "source": "nordpool.com",
        "temporalGranularity": "hourly",
    }


def em_price_forecast(
    zone: str, rows: Iterable[tuple[datetime, float]], unit: str = "EUR/MWh"
) -> dict[str, Any]:
    """An Electricity Maps price-day-ahead/forecast answer."""
    return {
        "zone": zone,
        "unit": unit,
        "forecast": [{"datetime": _ms(t), "value": v} for t, v in rows],
        "updatedAt": _ms(datetime.now(UTC)),
    }


# ---------------------------------------------------------------------------------- WattTime

G_PER_KWH_PER_LB_PER_MWH = 0.453592


def watttime_signal(
    region: str,
    hourly_g_per_kwh: Iterable[tuple[datetime, float]],
    *,
    period_seconds: int = 300,
    forecast: bool = False,
) -> dict[str, Any]:
    """A WattTime v3 historical/forecast answer: hourly values spread over 5-minute points."""
    data = []
    per_hour = 3600 // period_seconds
    for t, g in hourly_g_per_kwh:
        lbs = round(g / G_PER_KWH_PER_LB_PER_MWH, 1)
        for k in range(per_hour):
            point_time = (t + timedelta(seconds=k * period_seconds)).isoformat()
            data.append({"point_time": point_time, "value": lbs})
    meta: dict[str, Any] = {
        "data_point_period_seconds": period_seconds,
        "region": region,
        "signal_type": "co2_moer",
        "model": {"date": "2023-03-01"},
        "units": "lbs_co2_per_mwh",
        "warnings": [],
    }
    if forecast:
        meta["generated_at_period_seconds"] = 300
        meta["generated_at"] = data[0]["point_time"] if data else None
    return {"data": data, "meta": meta}


# --------------------------------------------------------------------- GB Carbon Intensity


def gb_index(g: float) -> str:
    """The API's intensity index band (2024 bands)."""
    for limit, name in ((40, "very low"), (120, "low"), (200, "moderate"), (290, "high")):
        if g < limit:
            return name
    return "very high"


def _gbz(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def gb_national(
    rows: Iterable[tuple[datetime, float]], now: datetime, *, forecast_bias: float = 1.03
) -> dict[str, Any]:
    """A national /intensity/{from}/fw24h answer: half-hours, `actual` null from `now` on."""
    data = []
    for t, g in rows:
        for half in (0, 30):
            start = t + timedelta(minutes=half)
            actual = round(g) if start + timedelta(minutes=30) <= now else None
            fc = round(g * forecast_bias)
            data.append(
                {
                    "from": _gbz(start),
                    "to": _gbz(start + timedelta(minutes=30)),
                    "intensity": {"forecast": fc, "actual": actual, "index": gb_index(fc)},
                }
            )
    return {"data": data}


def gb_regional(region_id: int, rows: Iterable[tuple[datetime, float]]) -> dict[str, Any]:
    """A /regional/intensity/{from}/fw24h/regionid/{id} answer (forecasts only)."""
    data = []
    for t, g in rows:
        for half in (0, 30):
            start = t + timedelta(minutes=half)
            data.append(
                {
                    "from": _gbz(start),
                    "to": _gbz(start + timedelta(minutes=30)),
                    "intensity": {"forecast": round(g), "index": gb_index(g)},
                    "generationmix": [
                        {"fuel": "gas", "perc": 40.1},
                        {"fuel": "wind", "perc": 35.2},
                        {"fuel": "nuclear", "perc": 24.7},
                    ],
                }
            )
    return {
        "data": {
            "regionid": region_id,
            "dnoregion": "UKPN London",
            "shortname": "London",
            "data": data,
        }
    }


# ---------------------------------------------------------------------------------- OpenADR 3


def oadr_program(program_id: str, name: str) -> dict[str, Any]:
    """An OpenADR 3 program object."""
    return {
        "id": program_id,
        "createdDateTime": "2024-01-01T00:00:00Z",
        "modificationDateTime": "2024-01-01T00:00:00Z",
        "objectType": "PROGRAM",
        "programName": name,
        "programLongName": f"{name} demand response",
        "retailerName": "ACME",
        "programType": "DEMAND_RESPONSE",
        "country": "US",
        "principalSubdivision": "CA",
        "intervalPeriod": {"start": "2024-01-01T00:00:00Z", "duration": "P1Y"},
        "payloadDescriptors": [
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE", "units": None}
        ],
    }


def oadr_event(
    event_id: str,
    program_id: str,
    start: datetime,
    duration: str,
    payloads: list[list[dict[str, Any]]],
    *,
    name: str = "grid stress",
    descriptors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An OpenADR 3 event whose intervals share the event's intervalPeriod (back to back)."""
    return {
        "id": event_id,
        "createdDateTime": _ms(start - timedelta(hours=2)),
        "modificationDateTime": _ms(start - timedelta(hours=2)),
        "objectType": "EVENT",
        "programID": program_id,
        "eventName": name,
        "priority": 0,
        "targets": None,
        "reportDescriptors": None,
        "payloadDescriptors": descriptors
        or [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"}],
        "intervalPeriod": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": duration},
        "intervals": [{"id": i, "payloads": p} for i, p in enumerate(payloads)],
    }


# -------------------------------------------------------------------------------- Prometheus


def prom_vector(value: str, ts: float, **labels: str) -> dict[str, Any]:
    """An instant-query answer with one sample."""
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": labels, "value": [ts, value]}]},
    }


def prom_matrix(samples: Iterable[tuple[float, str]], **labels: str) -> dict[str, Any]:
    """A range-query answer with one series."""
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": labels, "values": [[t, v] for t, v in samples]}],
        },
    }
