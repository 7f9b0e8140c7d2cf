"""One HTTP client per source: timeouts, retries with backoff and jitter, typed errors.

- 5xx responses and connect/read timeouts are retried (urllib3 `Retry`, exponential backoff with
  jitter) up to `max_retries` times, then raise `Unreachable`;
- 429 is not retried in-line: it raises `RateLimited` with the provider's `Retry-After`, and the
  cache (`base.Cached`) then leaves the provider alone until that time has passed;
- 401/403 raise `AuthError`, other 4xx `RequestRejected`, each with a hint of what to fix;
- error messages never include query strings or headers, so secrets are never logged.
"""

from __future__ import annotations

import email.utils
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from wattscale.signals.base import AuthError, RateLimited, RequestRejected, Unreachable

log = logging.getLogger(__name__)

USER_AGENT = "wattscale-signals/0.1 (+https://github.com/wattscale/wattscale)"
RETRY_STATUSES = (500, 502, 503, 504)
DEFAULT_RETRY_AFTER_SECONDS = 60.0


def redact(url: str) -> str:
    """The URL without query string, fragment or user info (safe to log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def make_session(max_retries: int, backoff_seconds: float = 0.5) -> requests.Session:
    """A Session retrying timeouts and 5xx with exponential backoff and jitter."""
    retry = Retry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        allowed_methods=frozenset({"GET", "POST", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_seconds,
        backoff_max=30.0,
        backoff_jitter=backoff_seconds,
        raise_on_status=False,
        respect_retry_after_header=False,  # 429/503 must not sleep in-line
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


class HttpClient:
    """The HTTP side of one source: its own Session, timeout and error mapping."""

    def __init__(
        self,
        source: str,
        *,
        timeout_seconds: float,
        max_retries: int,
        backoff_seconds: float = 0.5,
        auth_hint: str = "check the credentials referenced by the source",
        session: requests.Session | None = None,
    ) -> None:
        self.source = source
        self.timeout_seconds = timeout_seconds
        self.auth_hint = auth_hint
        self.session = session or make_session(max_retries, backoff_seconds)

    def close(self) -> None:
        """Close the underlying Session."""
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        accept_status: tuple[int, ...] = (),
    ) -> requests.Response:
        """Send one request; return a 2xx response (or one in `accept_status`) or raise."""
        safe_url = redact(url)
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                headers=dict(headers or {}),
                data=data,
                auth=auth,
                timeout=(self.timeout_seconds, self.timeout_seconds),
            )
        except requests.exceptions.RetryError:
            raise Unreachable(
                self.source,
                f"{method} {safe_url} kept failing after retries",
                "check the provider's status page; the planner uses the last good value",
            ) from None
        except requests.exceptions.Timeout:
            raise Unreachable(
                self.source,
                f"{method} {safe_url} timed out after {self.timeout_seconds:g} s (with retries)",
                "check network egress to the provider or raise timeoutSeconds",
            ) from None
        except requests.exceptions.ConnectionError as exc:
            if "timed out" in str(exc):
                raise Unreachable(
                    self.source,
                    f"{method} {safe_url} timed out after {self.timeout_seconds:g} s "
                    "(with retries)",
                    "check network egress to the provider or raise timeoutSeconds",
                ) from None
            raise Unreachable(
                self.source,
                f"cannot connect to {safe_url}: {_reason(exc)}",
                "check the URL, DNS and network egress (proxies, NetworkPolicies)",
            ) from None
        except requests.exceptions.RequestException as exc:
            raise Unreachable(self.source, f"{method} {safe_url} failed: {_reason(exc)}") from None
        status = resp.status_code
        if 200 <= status < 300 or status in accept_status:
            return resp
        detail = _snippet(resp)
        if status in (401, 403):
            raise AuthError(
                self.source,
                f"{safe_url} answered {status} {resp.reason}{detail}",
                self.auth_hint,
            )
        if status == 429:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            raise RateLimited(
                self.source,
                f"{safe_url} answered 429 Too Many Requests; retry after {retry_after:.0f} s",
                "raise refreshSeconds so the source polls less often, or upgrade the API plan",
                retry_after=retry_after,
            )
        if status >= 500:
            raise Unreachable(
                self.source,
                f"{safe_url} answered {status} {resp.reason} after retries{detail}",
                "a provider outage; the planner keeps using the last good value until stale",
            )
        raise RequestRejected(
            self.source,
            f"{safe_url} answered {status} {resp.reason}{detail}",
            "check the source's zone/region/query parameters in the Region",
        )


def _snippet(resp: requests.Response) -> str:
    """What the error body was, never what it said: a feed's body may echo a token or hold
    data that must not reach status, Events or logs (issue 14 item 8)."""
    size = len(resp.content or b"")
    if not size:
        return ""
    kind = (resp.headers.get("Content-Type") or "unknown type").split(";")[0].strip()[:60]
    return f" (body: {size} bytes of {kind}, not shown)"


def _reason(exc: BaseException) -> str:
    # requests' messages embed the full URL (with query strings that may hold tokens).
    text = str(exc)
    for marker in ("Failed to establish", "Connection refused", "Name or service", "Read timed"):
        i = text.find(marker)
        if i >= 0:
            return text[i:].split("'")[0].split(")")[0][:160]
    return type(exc).__name__


TokenFetch = Callable[[datetime], tuple[str | None, datetime]]
"""Fetches a bearer token as of ``now``: (token or None, when it stops being valid)."""


class BearerToken:
    """A bearer token fetched on demand, reused until it expires, renewed once on a 401."""

    def __init__(self, fetch: TokenFetch) -> None:
        self._fetch = fetch
        self._token: str | None = None
        self._expiry: datetime | None = None
        self._lock = threading.Lock()

    def headers(self, now: datetime, renew: bool = False) -> dict[str, str]:
        """The Authorization header (empty when the source needs no token)."""
        with self._lock:
            if renew or self._token is None or self._expiry is None or now >= self._expiry:
                self._token, self._expiry = self._fetch(now)
            return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def get(
        self, http: HttpClient, url: str, params: Mapping[str, Any], now: datetime
    ) -> requests.Response:
        """GET with the token; on a 401 (expired or revoked) renew it and try once more."""
        resp = http.request(
            "GET", url, params=params, headers=self.headers(now), accept_status=(401,)
        )
        if resp.status_code == 401:
            resp = http.request("GET", url, params=params, headers=self.headers(now, renew=True))
        return resp
