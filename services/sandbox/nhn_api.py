"""What every simulated NHN Cloud-style API shares (SMS v3.0 and AlimTalk v2.3): the
response header, refusals and how they are answered, authentication, reading a body,
injected faults, request ids, recipient numbers, the lookup by grouping key and the
gateway that receives a send call (:class:`NhnGateway`)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from aiohttp import web

from .behaviour import Fault, Simulation
from .inbox import Inbox, M

log = logging.getLogger("alimi.sandbox")

R = TypeVar("R")

MAX_RECIPIENTS = 1000

MALFORMED = -1
INVALID_SECRET_KEY = -1000
UNKNOWN_APP_KEY = -1001
INVALID_RECIPIENT_COUNT = -2003
INVALID_RECIPIENT_NUMBER = -2005
SIMULATED_FAILURE = -9999


class Rejection(Exception):
    """A request the gateway refuses; NHN reports most of these with HTTP 200."""

    def __init__(
        self,
        result_code: int,
        message: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.result_code = result_code
        self.message = message
        self.status = status
        self.headers = headers or {}


def header(result_code: int, message: str) -> dict[str, Any]:
    return {
        "isSuccessful": result_code == 0,
        "resultCode": result_code,
        "resultMessage": message,
    }


def is_plausible_number(number: str) -> bool:
    """Digits only (after an optional leading '+'), 8 to 15 of them."""
    digits = number.removeprefix("+")
    return 8 <= len(digits) <= 15 and digits.isascii() and digits.isdigit()


def malformed(detail: str) -> Rejection:
    return Rejection(MALFORMED, f"Malformed request body: {detail}", status=400)


def authenticate(request: web.Request, *, path_key: str, app_key: str, secret_key: str) -> None:
    """Check the app key in the path and the ``X-Secret-Key`` header; raise Rejection."""
    if request.match_info[path_key] != app_key:
        log.info("rejected a request with an unknown %s", path_key)
        raise Rejection(UNKNOWN_APP_KEY, f"Invalid {path_key}", status=401)
    if request.headers.get("X-Secret-Key") != secret_key:
        log.info("rejected a request with a missing or wrong X-Secret-Key")
        raise Rejection(INVALID_SECRET_KEY, "Invalid secret key", status=401)


async def read_payload(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except ValueError:
        raise malformed("not valid JSON") from None
    except ConnectionResetError:
        # A client killed or timed out mid-upload: nobody is left to answer.
        log.info("a client went away before its request body arrived")
        raise malformed("the connection closed before the body arrived") from None


def rejection_response(rejection: Rejection) -> web.Response:
    return web.json_response(
        {"header": header(rejection.result_code, rejection.message)},
        status=rejection.status,
        headers=rejection.headers,
    )


def inject(simulation: Simulation, *, rate_limit_code: int, rate_limit_message: str) -> Fault:
    """Decide this send call's injected fault; raise the Rejection of a 500 or a 429.

    Returns ``Fault.HANG`` or ``Fault.NONE``: the caller accepts the request, and for
    HANG waits ``simulation.hang()`` before answering.
    """
    fault = simulation.decide()
    if fault is Fault.FAIL:
        log.debug("answering a send call with a simulated failure")
        raise Rejection(SIMULATED_FAILURE, "Internal error (simulated)", status=500)
    if fault is Fault.RATE_LIMIT:
        retry_after = str(simulation.behaviour.retry_after_s)
        log.debug("answering a send call with a simulated rate limit")
        raise Rejection(
            rate_limit_code, rate_limit_message, status=429, headers={"Retry-After": retry_after}
        )
    return fault


def new_request_id(now: datetime) -> str:
    return f"{now:%Y%m%d%H%M%S}{uuid.uuid4().hex[:12]}"


def grouping_key(request: web.Request) -> str:
    """The ``recipientGroupingKey`` of a lookup by grouping key; raise Rejection if absent."""
    key = request.query.get("recipientGroupingKey")
    if not key:
        raise malformed("the recipientGroupingKey query parameter is required")
    return key


class NhnGateway(Generic[M]):
    """The app key and secret a gateway checks, its inbox and its simulated behaviour.

    A subclass names the path parameter of its app key (``path_key``) and the code and
    message of its rate limit, and may refuse a call over its volume (``throttle``).
    """

    path_key = "appKey"
    rate_limit_code = 0
    rate_limit_message = ""

    def __init__(
        self, *, app_key: str, secret_key: str, inbox: Inbox[M], simulation: Simulation
    ) -> None:
        self._app_key = app_key
        self._secret_key = secret_key
        self._inbox = inbox
        self._simulation = simulation

    def _authenticate(self, request: web.Request) -> None:
        authenticate(
            request, path_key=self.path_key, app_key=self._app_key, secret_key=self._secret_key
        )

    def throttle(self) -> None:
        """Raise the Rejection of a call over the provider's volume; by default none is."""

    async def _receive(self, request: web.Request, parse: Callable[[object], R]) -> tuple[Fault, R]:
        """Wait out a pause, then check, fault and parse a send call; raise Rejection."""
        await self._simulation.pause()
        self._authenticate(request)
        fault = inject(
            self._simulation,
            rate_limit_code=self.rate_limit_code,
            rate_limit_message=self.rate_limit_message,
        )
        self.throttle()
        return fault, parse(await read_payload(request))

    def _found(self, request: web.Request) -> Sequence[M]:
        """The accepted messages a lookup by grouping key asks for; raise Rejection."""
        self._authenticate(request)
        return self._inbox.with_grouping_key(grouping_key(request))
