"""The SDK's entry point: :class:`Client`, and how it talks HTTP (auth, retries, errors)."""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from webapp.sdk.errors import APIConnectionError
from webapp.sdk.errors import APITimeoutError
from webapp.sdk.errors import OrgInvitesError
from webapp.sdk.errors import UnexpectedResponseError
from webapp.sdk.errors import error_from_response
from webapp.sdk.resources import AcceptanceTickets
from webapp.sdk.resources import Invitations
from webapp.sdk.resources import OrganizationInvitations
from webapp.sdk.resources import Organizations

SDK_VERSION = "0.1.0"
API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2
# The longest Retry-After the client waits for; a longer one is raised at once.
DEFAULT_MAX_RETRY_WAIT = 60.0
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_RETRYABLE_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


class Client:
    """A client of one OrgInvites server's REST API.

    ``base_url`` is the server (``https://invites.example.com``; a trailing ``/api/v1``
    is fine too) and ``api_key`` an ``oik_…`` key; either falls back to the
    ``ORGINVITES_URL`` / ``ORGINVITES_API_KEY`` environment variables when omitted.

    Failed requests are retried up to ``max_retries`` times with exponential backoff
    and jitter: connection failures, 5xx answers, 429 ``rate_limited`` (waiting what
    ``Retry-After`` asks, unless that exceeds ``max_retry_wait``) and 409
    ``idempotency_key_in_use``. Every POST carries an ``Idempotency-Key``, the same on
    each retry, so a retried POST never does the work twice.

    Use it as a context manager, or call :meth:`close` when done. Nothing touches the
    network until the first call.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        base_url = base_url if base_url is not None else os.environ.get("ORGINVITES_URL")
        api_key = api_key if api_key is not None else os.environ.get("ORGINVITES_API_KEY")
        self.base_url = _api_root(base_url)
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key is required: pass it or set ORGINVITES_API_KEY")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0 (got {max_retries!r})")
        if max_retry_wait < 0:
            raise ValueError(f"max_retry_wait must be >= 0 seconds (got {max_retry_wait!r})")
        self.max_retries = max_retries
        self.max_retry_wait = float(max_retry_wait)
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key.strip()}",
                "Accept": "application/json",
                "User-Agent": f"orginvites-python/{SDK_VERSION}",
                **(headers or {}),
            },
        )
        # Overridable in tests that check the waits without sleeping them.
        self._sleep: Callable[[float], None] = time.sleep
        self.organization_invitations = OrganizationInvitations(self)
        self.invitations = Invitations(self)
        self.organizations = Organizations(self)
        self.acceptance_tickets = AcceptanceTickets(self)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection pool (the client cannot be used afterwards)."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------- requests

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send one logical request (retrying as described above); return its JSON.

        ``path`` is relative to ``/api/v1`` (segments percent-encoded). A POST gets
        ``idempotency_key`` or a fresh one, kept for all its retries.
        """
        headers: dict[str, str] = {}
        if method.upper() == "POST":
            headers["Idempotency-Key"] = idempotency_key or f"sdk-{uuid.uuid4()}"
        content = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path.lstrip("/"), params=query, content=content, headers=headers
                )
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                if attempt < self.max_retries:
                    self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise _connection_error(exc, method, self.base_url) from exc
            except httpx.TransportError as exc:
                raise _connection_error(exc, method, self.base_url) from exc
            if response.is_success:
                return _decode(response)
            error = _error(response)
            wait = self._retry_wait(error, attempt)
            if wait is None:
                raise error
            self._sleep(wait)
            attempt += 1

    def _retry_wait(self, error: OrgInvitesError, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``error``, or None to give up."""
        if attempt >= self.max_retries:
            return None
        retryable = (
            (error.status is not None and error.status >= 500)
            or (error.status == 429 and error.code != "throttled")
            or error.code == "idempotency_key_in_use"
        )
        if not retryable:
            return None
        asked = getattr(error, "retry_after", None)
        if asked is None:
            asked = _retry_after(error.headers)
        if asked is None:
            return self._backoff(attempt)
        if asked > self.max_retry_wait:
            return None
        # A little jitter on top, so many clients told the same time do not all return at once.
        return asked + random.uniform(0, min(1.0, asked * 0.1))

    @staticmethod
    def _backoff(attempt: int) -> float:
        """Full-jitter exponential backoff: up to 0.5 s, 1 s, 2 s… (at most 8 s)."""
        ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def _api_root(base_url: str | None) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url is required: pass it or set ORGINVITES_URL")
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "base_url must be an http(s) URL such as https://invites.example.com "
            f"(got {base_url!r})"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not have a query or fragment (got {base_url!r})")
    if not url.endswith(API_PREFIX):
        url += API_PREFIX
    return url


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UnexpectedResponseError(
            f"expected JSON from {response.request.method} {response.request.url.path}, "
            f"got {response.headers.get('Content-Type', 'no content type')}",
            status=response.status_code,
            code="unexpected_response",
            headers=response.headers,
        ) from None


def _error(response: httpx.Response) -> OrgInvitesError:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    return error_from_response(
        response.status_code,
        body if isinstance(body, dict) else None,
        dict(response.headers),
        response.text if body is None else "",
        _retry_after(response.headers),
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` as seconds (it may be a number or an HTTP date), or None."""
    value = None
    for name, item in headers.items():
        if name.lower() == "retry-after":
            value = item.strip()
            break
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _connection_error(exc: httpx.TransportError, method: str, base_url: str) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{method} to {base_url} timed out ({type(exc).__name__})")
    reason = str(exc) or type(exc).__name__
    return APIConnectionError(f"could not reach {base_url}: {reason}")
