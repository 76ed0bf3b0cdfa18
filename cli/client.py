"""The one client of the intake API: timeouts, retries, ``Retry-After``, errors.

httpx rather than aiohttp (which the services use): the CLI does one request
at a time and waits for it, so a synchronous client keeps every command a
plain function; httpx still streams an upload from a generator (the progress
bar of ``subjects import``), has separate connect/read timeouts and a clear
exception hierarchy, which ``urllib`` lacks.

* Every POST carries an ``Idempotency-Key`` (one per command), so a request
  retried after a lost answer has its first effect only (the API keeps it).
* A connection that cannot be made, a timeout, ``429`` or ``502/503/504`` is
  retried up to :data:`ATTEMPTS` times, waiting ``Retry-After`` if the answer
  gives one (at most :data:`MAX_WAIT_S`), else 0.5 s, 1 s, ...
* An error answer becomes :class:`ApiError` (exit 1 for 4xx, 3 for 5xx); a
  server that cannot be reached, :class:`CliError` with exit 3.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import httpx

from alimi_cli.config import Settings
from alimi_cli.errors import ApiError, CliError, Exit

ATTEMPTS = 3
MAX_WAIT_S = 10.0
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# An import answers once the whole file is read and checked: allow for millions of rows.
UPLOAD_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=900.0)

Body = Callable[[], Iterator[bytes]]  # a fresh iterator of the body for each attempt


def version() -> str:
    try:
        return metadata.version("alimi")
    except metadata.PackageNotFoundError:
        return "0"


class Api:
    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=settings.url,
            timeout=TIMEOUT,
            transport=transport,
            headers={"User-Agent": f"alimi-cli/{version()}", "Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def wait(self, seconds: float) -> None:
        """Pause between two reads of something that changes (a job)."""
        self._sleep(seconds)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        stream: Body | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> Any:
        """The answer's JSON (``None`` for 204); raises :class:`ApiError` or :class:`CliError`."""
        sent = {"Authorization": f"Bearer {self.settings.require_key()}", **(headers or {})}
        if method == "POST":
            sent["Idempotency-Key"] = f"cli-{uuid.uuid4().hex}"
        content: bytes | Iterator[bytes] | None = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode()
            sent["Content-Type"] = "application/json"
        for attempt in range(1, ATTEMPTS + 1):
            if stream is not None:
                content = stream()
            try:
                response = self._http.request(
                    method, path, content=content, headers=sent, timeout=timeout
                )
            except httpx.TimeoutException:
                if attempt < ATTEMPTS:
                    self._sleep(_backoff(attempt))
                    continue
                raise CliError(
                    f"{method} {self.settings.url}{path}: no answer in time", code=Exit.UNAVAILABLE
                ) from None
            except httpx.TransportError as exc:
                if attempt < ATTEMPTS:
                    self._sleep(_backoff(attempt))
                    continue
                raise CliError(
                    f"cannot reach the Alimi API at {self.settings.url} "
                    f"(from {self.settings.url_source}): {exc or type(exc).__name__}",
                    code=Exit.UNAVAILABLE,
                ) from None
            if response.status_code in RETRIED_STATUSES and attempt < ATTEMPTS:
                self._sleep(_retry_after(response) or _backoff(attempt))
                continue
            return self._answer(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise CliError(
                    f"the API answered {response.status_code} with something that is not JSON",
                    code=Exit.UNAVAILABLE,
                ) from None
        raise ApiError(response.status_code, _problem(response), hint=self._hint(response))

    def _hint(self, response: httpx.Response) -> str:
        if response.status_code in (401, 403):
            return f"the request used the key {self.settings.key_hint}"
        if not response.headers.get("Content-Type", "").startswith("application/problem+json"):
            # Not an answer of the Alimi API: perhaps the URL names something else.
            return f"is {self.settings.url} (from {self.settings.url_source}) the Alimi API?"
        return ""


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error answer, or a stand-in for a body that is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    text = " ".join(response.text.split())[:200]
    return {"title": response.reason_phrase or "Error", "detail": text}


def _backoff(attempt: int) -> float:
    return float(0.5 * 2 ** (attempt - 1))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_WAIT_S)
