"""One HTTP GET of a grid-intensity API, every failure turned into a :class:`SourceError` with a reason.

The reason is what the record says (``fallback: "<source>: <reason>"``) and what the task log warns: it
names the status, the source and, for refused credentials, the Connection, never a token. httpx (shipped
with Airflow) serves both paths: :func:`get_json` for tasks and the CLI, :func:`aget_json` for the
triggerer's event loop, with one error mapping.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

CONNECT_TIMEOUT_S = 3.0
"""Seconds to wait for a TCP/TLS connection to the source."""
READ_TIMEOUT_S = 5.0
"""Seconds to wait for the source's response."""


class SourceError(Exception):
    """A live source gave no usable figure; ``reason`` says why in a few words (no secret in it), and
    ``retry_after_s`` is the source's ``Retry-After`` (s) where it sent one."""

    def __init__(self, source: str, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: errors may cross process boundaries
        return (_rebuild, (self.source, self.reason, self.retry_after_s))


def _rebuild(source: str, reason: str, retry_after_s: float | None) -> SourceError:
    return SourceError(source, reason, retry_after_s=retry_after_s)


def timeout(connect_s: float = CONNECT_TIMEOUT_S, read_s: float = READ_TIMEOUT_S) -> httpx.Timeout:
    """httpx's timeout from a connect and a read timeout (s)."""
    return httpx.Timeout(read_s, connect=connect_s)


def async_client(connect_s: float = CONNECT_TIMEOUT_S, read_s: float = READ_TIMEOUT_S) -> httpx.AsyncClient:
    """An httpx.AsyncClient with the sources' short timeouts (s), for the clients' ``aforecast``."""
    return httpx.AsyncClient(timeout=timeout(connect_s, read_s))


class SourceClient:
    """What every source's client has: its API's base URL (``public_url`` when ``base_url`` is None, as a
    Connection with an empty host), one httpx client with short timeouts (s), and :meth:`close`. Its
    ``aforecast`` takes an ``httpx.AsyncClient`` (:func:`async_client`) that the caller's loop owns."""

    source: str = ""
    """The source's name: the prefix of every SourceError's message and of the intervals' ``source``."""

    def __init__(self, base_url: str | None, public_url: str, *, client: httpx.Client | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S,
                 headers: Mapping[str, str] | None = None) -> None:
        self.base_url = (base_url or public_url).rstrip("/")
        self._client = client or httpx.Client(timeout=timeout(connect_timeout_s, read_timeout_s), headers=headers)

    def close(self) -> None:
        self._client.close()

    def shape_error(self, exc: Exception) -> SourceError:
        """The SourceError for a response whose JSON is not the documented shape (``exc``: what was wrong)."""
        return SourceError(self.source, f"unexpected response shape ({type(exc).__name__}: {exc})")


SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)
"""What reading an unexpected JSON shape raises: each becomes :meth:`SourceClient.shape_error`."""


def number(value: Any, what: str) -> float:
    """``value`` as a float, or ValueError naming ``what`` (a JSON number; not a bool, not text)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a number")
    return float(value)


def unix_s(text: str) -> float:
    """Unix seconds of an ISO 8601 time (``2026-04-01T00:00:00Z``, ``...+00:00``, ``...T12:00Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def get_json(
    client: httpx.Client,
    url: str,
    *,
    source: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    credentials: str | None = None,
) -> Any:
    """GET ``url`` and return its JSON body, or raise SourceError naming what went wrong.

    ``credentials`` names where the credentials came from (a Connection id, an environment variable) for
    the message of a 401/403; the credentials themselves are never part of a message.
    """
    try:
        response = client.get(url, params=params, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        raise transport_error(exc, source) from None
    return parse_response(response, source=source, credentials=credentials)


async def aget_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    source: str,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    credentials: str | None = None,
) -> Any:
    """:func:`get_json` on an event loop (the triggerer's): the same request, the same SourceErrors."""
    try:
        response = await client.get(url, params=params, headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        raise transport_error(exc, source) from None
    return parse_response(response, source=source, credentials=credentials)


def transport_error(exc: httpx.HTTPError, source: str) -> SourceError:
    """The SourceError of a request that got no response: a timeout, or no network to the source."""
    if isinstance(exc, httpx.TimeoutException):
        kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
        return SourceError(source, f"timed out ({kind} timeout)")
    return SourceError(source, f"unreachable ({type(exc).__name__})")  # refused, DNS, TLS, reset


def parse_response(response: httpx.Response, *, source: str, credentials: str | None = None) -> Any:
    """The JSON body of a 2xx ``response``, or SourceError for any other status or a malformed body."""
    status = response.status_code
    if status in (401, 403):
        where = f" (credentials from {credentials})" if credentials else ""
        raise SourceError(source, f"HTTP {status}: credentials refused{where}")
    if status == 429:
        after = retry_after_s(response.headers.get("retry-after"))
        wait = f", retry after {after:g} s" if after is not None else ""
        raise SourceError(source, f"HTTP 429: rate limited{wait}", retry_after_s=after)
    if status >= 400:
        detail = _error_detail(response)
        raise SourceError(source, f"HTTP {status}{': ' + detail if detail else ''}")
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SourceError(source, f"malformed JSON in an HTTP {status} response") from None


def retry_after_s(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


def _error_detail(response: httpx.Response) -> str:
    """A short message from an error body: ``{"message": ...}``, ``{"error": {"message": ...}}`` or ``{"error": ...}``."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    message = body.get("message") or (error.get("message") if isinstance(error, dict) else error)
    return str(message)[:200] if message else ""
