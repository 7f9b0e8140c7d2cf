"""OpenADR 3 (VEN side): poll a VTN's programs and events and turn them into grid events.

- Token: `POST {tokenUrl}` (default `{baseUrl}/auth/token`), form body `grant_type=
  client_credentials&client_id=..&client_secret=..` -> `{"access_token", "token_type": "Bearer",
  "expires_in"}`. Renewed before expiry and once on a 401.
- `GET /programs` -> `[{"id", "programName", ...}]` (only to map `programNames` to ids);
- `GET /events?programID=..&skip=..&limit=50` -> `[{"id", "programID", "eventName", "priority",
  "payloadDescriptors": [{"payloadType", "units"}], "intervalPeriod": {"start", "duration"},
  "intervals": [{"id", "intervalPeriod"?, "payloads": [{"type": "SIMPLE", "values": [2]}]}]}]`.

An interval without its own `intervalPeriod` follows the previous one (the event's period gives
the first start and every interval's duration). Duration `PT0S` means open-ended here.
Payloads become caps: SIMPLE level n -> `simpleLevelCapFractions[n]`; IMPORT_CAPACITY_LIMIT (kW,
W or MW by the descriptor's units) / `siteImportCapacityKw`; ALERT_GRID_EMERGENCY and
ALERT_BLACK_START -> the last (tightest) SIMPLE level; ALERT_FLEX_ALERT -> SIMPLE level 1.
A cap of 1.0 is no event; 0.0 excludes the region.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from wattscale.api.sources import OpenAdr3GridEventSource
from wattscale.signals.base import (
    AuthError,
    BadPayload,
    GridEvent,
    GridEvents,
    SourceContext,
    parse_time,
    resolve_secret,
    to_float,
    utc,
)
from wattscale.signals.http import BearerToken, HttpClient

NAME = "openadr3"
PAGE = 50
MAX_PAGES = 40
_DURATION = re.compile(
    r"^(-?)P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
_POWER_TO_KW = {"KW": 1.0, "W": 1 / 1000, "MW": 1000.0}


def parse_duration(text: str) -> timedelta:
    """ISO 8601 duration (years as 365 d, months as 30 d)."""
    m = _DURATION.match(text.strip())
    if not m:
        raise BadPayload(NAME, f"unparseable duration ({len(text)} characters; not shown)")
    sign, y, mo, w, d, h, mi, s = m.groups()
    delta = timedelta(
        days=int(y or 0) * 365 + int(mo or 0) * 30 + int(w or 0) * 7 + int(d or 0),
        hours=int(h or 0),
        minutes=int(mi or 0),
        seconds=float(s or 0),
    )
    return -delta if sign else delta


def _period(obj: object) -> tuple[datetime, timedelta] | None:
    if not isinstance(obj, Mapping) or "start" not in obj:
        return None
    return parse_time(str(obj["start"]), NAME), parse_duration(str(obj.get("duration") or "PT0S"))


def _level_cap(fractions: Sequence[float], level: int) -> float:
    return fractions[min(max(level, 0), len(fractions) - 1)]


def payload_cap(
    payload: Mapping[str, Any],
    units: Mapping[str, str],
    config: OpenAdr3GridEventSource,
    warnings: list[str],
) -> tuple[float, int | None] | None:
    """(cap fraction, SIMPLE level) for one payload, or None when it does not limit capacity."""
    ptype = str(payload.get("type", ""))
    values = payload.get("values")
    first = values[0] if isinstance(values, list) and values else None
    fractions = config.simpleLevelCapFractions
    if ptype == "SIMPLE":
        number = to_float(first)
        if number is None:
            warnings.append("SIMPLE payload without a numeric level ignored")
            return None
        level = int(number)
        return _level_cap(fractions, level), level
    if ptype == "IMPORT_CAPACITY_LIMIT":
        number = to_float(first)
        if number is None:
            warnings.append("IMPORT_CAPACITY_LIMIT payload without a number ignored")
            return None
        if config.siteImportCapacityKw is None:
            warnings.append("IMPORT_CAPACITY_LIMIT ignored: set siteImportCapacityKw to use it")
            return None
        unit = units.get(ptype, "KW").upper()
        factor = _POWER_TO_KW.get(unit)
        if factor is None:
            warnings.append(f"IMPORT_CAPACITY_LIMIT in unknown units {unit!r} ignored")
            return None
        return max(0.0, min(1.0, number * factor / config.siteImportCapacityKw)), None
    if ptype in ("ALERT_GRID_EMERGENCY", "ALERT_BLACK_START"):
        return fractions[-1], len(fractions) - 1
    if ptype == "ALERT_FLEX_ALERT":
        return _level_cap(fractions, 1), 1
    return None


def parse_events(
    events: object, config: OpenAdr3GridEventSource, now: datetime
) -> tuple[list[GridEvent], list[str]]:
    """Grid events (current and future, cap < 1) from a VTN's `/events` answer."""
    if not isinstance(events, list):
        raise BadPayload(NAME, "/events did not answer a JSON list")
    out: list[GridEvent] = []
    warnings: list[str] = []
    for ev in events:
        if not isinstance(ev, Mapping) or not isinstance(ev.get("intervals"), list):
            raise BadPayload(NAME, "event without an `intervals` list")
        units = {
            str(d.get("payloadType")): str(d.get("units") or "")
            for d in ev.get("payloadDescriptors") or []
            if isinstance(d, Mapping)
        }
        default = _period(ev.get("intervalPeriod"))
        cursor: datetime | None = default[0] if default else None
        default_duration = default[1] if default else timedelta(0)
        for interval in sorted(
            (i for i in ev["intervals"] if isinstance(i, Mapping)),
            key=lambda i: int(i.get("id", 0)) if str(i.get("id", 0)).lstrip("-").isdigit() else 0,
        ):
            own = _period(interval.get("intervalPeriod"))
            if own is not None:
                start, duration = own
                if "duration" not in (interval.get("intervalPeriod") or {}):
                    duration = default_duration
            elif cursor is not None:
                start, duration = cursor, default_duration
            else:
                warnings.append(f"event {ev.get('id', '?')}: interval without a start ignored")
                continue
            end = start + duration if duration > timedelta(0) else None
            cursor = end
            caps = [
                c
                for p in interval.get("payloads") or []
                if isinstance(p, Mapping)
                for c in [payload_cap(p, units, config, warnings)]
                if c is not None
            ]
            if not caps:
                continue
            cap, level = min(caps, key=lambda c: c[0])
            if cap >= 1.0 or (end is not None and end <= now):
                continue
            out.append(
                GridEvent(
                    start=start,
                    end=end,
                    cap_fraction=cap,
                    kind="excluded" if cap <= 0.0 else "capped",
                    level=level,
                    event_id=str(ev.get("id", "")),
                    program=str(ev.get("programID", "")),
                    reason=str(ev.get("eventName") or ""),
                )
            )
    out.sort(key=lambda e: e.start)
    return out, warnings


class OpenAdrSource:
    """A VEN polling one VTN for the events of the configured programs."""

    def __init__(self, config: OpenAdr3GridEventSource, ctx: SourceContext) -> None:
        self.name = NAME
        self.config = config
        self.ctx = ctx
        self._base = config.baseUrl.rstrip("/")
        self._token = BearerToken(self._fetch_token)
        self.http = HttpClient(
            NAME,
            timeout_seconds=config.timeoutSeconds,
            max_retries=config.maxRetries,
            auth_hint=(
                "the VTN rejected the client credentials or token: check clientIdSecretRef/"
                "clientSecretSecretRef and the VEN's scopes (read_all)"
            ),
        )

    def _fetch_token(self, now: datetime) -> tuple[str | None, datetime]:
        cfg = self.config
        if cfg.clientIdSecretRef is None or cfg.clientSecretSecretRef is None:
            return None, now  # the VTN needs no token
        client_id = resolve_secret(self.ctx, cfg.clientIdSecretRef, NAME, "client id")
        secret = resolve_secret(self.ctx, cfg.clientSecretSecretRef, NAME, "client secret")
        url = cfg.tokenUrl or f"{self._base}/auth/token"
        resp = self.http.request(
            "POST",
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
            accept_status=(400,),
        )
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code == 400 or not isinstance(body, Mapping):
            err = body.get("error", "invalid_request") if isinstance(body, Mapping) else "?"
            raise AuthError(
                NAME, f"token request refused: {err}", "check the client id and secret Secrets"
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(NAME, "token endpoint answered without access_token", "check tokenUrl")
        expires = to_float(body.get("expires_in")) or 3600.0
        return token, now + timedelta(seconds=max(30.0, expires * 0.9))

    def _get_json(self, path: str, params: Mapping[str, Any], now: datetime) -> object:
        resp = self._token.get(self.http, f"{self._base}{path}", params, now)
        try:
            return resp.json()
        except ValueError:
            raise BadPayload(NAME, f"malformed JSON from {path}") from None

    def _paged(self, path: str, params: Mapping[str, Any], now: datetime) -> list[Any]:
        items: list[Any] = []
        for page in range(MAX_PAGES):
            batch = self._get_json(path, {**params, "skip": page * PAGE, "limit": PAGE}, now)
            if not isinstance(batch, list):
                raise BadPayload(NAME, f"{path} did not answer a JSON list")
            items.extend(batch)
            if len(batch) < PAGE:
                break
        return items

    def _program_ids(self, now: datetime) -> list[str | None]:
        if not self.config.programNames:
            return [None]
        programs = self._paged("/programs", {}, now)
        wanted = set(self.config.programNames)
        ids = [
            str(p["id"])
            for p in programs
            if isinstance(p, Mapping) and p.get("programName") in wanted and "id" in p
        ]
        if not ids:
            raise BadPayload(
                NAME,
                f"none of the programs {sorted(wanted)} exists on the VTN",
                "check programNames against the VTN's /programs",
            )
        return list(ids)

    def read(self, now: datetime) -> GridEvents:
        """Current and future events of the configured programs."""
        now = utc(now)
        events: list[Any] = []
        for program_id in self._program_ids(now):
            params = {"programID": program_id} if program_id else {}
            events.extend(self._paged("/events", params, now))
        parsed, warnings = parse_events(events, self.config, now)
        return GridEvents(
            source=NAME,
            events=tuple(parsed),
            fetched_at=now,
            max_age_seconds=self.config.maxAgeSeconds,
            warnings=tuple(warnings),
        )
