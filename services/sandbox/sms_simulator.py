"""An imitation of the NHN Cloud SMS v3.0 send API: request rules and HTTP handlers.

The rules (``parse_send_request`` and helpers) are pure functions so they can be
tested without a server; ``SmsGateway`` wires them to aiohttp routes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web

from .behaviour import Fault, Simulation
from .inbox import Inbox, Message, Submission
from .nhn_api import (
    INVALID_RECIPIENT_COUNT,
    INVALID_RECIPIENT_NUMBER,
    MAX_RECIPIENTS,
    NhnGateway,
    Rejection,
    header,
    is_plausible_number,
    malformed,
    new_request_id,
    rejection_response,
)
from .reports import Accepted, Channel, Reporter

log = logging.getLogger("alimi.sandbox")

T = TypeVar("T")

SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2000
LMS_TITLE_MAX_BYTES = 40
DEFAULT_COUNTRY_CODE = "82"

# NHN documents no rate-limit code for SMS v3.0; AlimTalk's "volume exceeded" number is
# used so one mapping covers both.
TOO_MANY_REQUESTS = -1030
UNREGISTERED_SENDER = -2000
INVALID_SMS_BODY = -2001
INVALID_LMS_CONTENT = -2002
UNENCODABLE_TEXT = -2004


class MessageType(StrEnum):
    SMS = "SMS"
    LMS = "LMS"


@dataclass(frozen=True, slots=True)
class Recipient:
    number: str
    country_code: str
    grouping_key: str | None
    # templateParameter: fills ``##key##`` placeholders of the body for this recipient
    parameters: tuple[tuple[str, str], ...] = ()

    def render(self, body: str) -> str:
        for key, value in self.parameters:
            body = body.replace(f"##{key}##", value)
        return body


@dataclass(frozen=True, slots=True)
class SendRequest:
    type: MessageType
    send_no: str
    body: str
    title: str | None
    recipients: list[Recipient]


def euc_kr_length(text: str, field: str) -> int:
    """Byte length of ``text`` in EUC-KR, the unit Korean carriers bill by."""
    try:
        return len(text.encode("euc_kr"))
    except UnicodeEncodeError:
        raise Rejection(
            UNENCODABLE_TEXT, f"{field} contains characters EUC-KR cannot encode"
        ) from None


def parse_send_request(
    payload: object, message_type: MessageType, sender_numbers: Collection[str]
) -> SendRequest:
    """Check a decoded JSON request the way the gateway does; raise Rejection if refused."""
    if not isinstance(payload, dict):
        raise malformed("expected a JSON object")
    send_no = _field(payload, "sendNo", str, "")
    if send_no not in sender_numbers:
        raise Rejection(UNREGISTERED_SENDER, "Unregistered sender number")

    body = _field(payload, "body", str, "")
    title = None
    if message_type is MessageType.LMS:
        title = _field(payload, "title", str, "")
        title_bytes = euc_kr_length(title, "title")
        if not 1 <= title_bytes <= LMS_TITLE_MAX_BYTES:
            raise Rejection(
                INVALID_LMS_CONTENT,
                f"LMS title must be 1-{LMS_TITLE_MAX_BYTES} bytes in EUC-KR (got {title_bytes})",
            )

    entries = _field(payload, "recipientList", list, [])
    if not 1 <= len(entries) <= MAX_RECIPIENTS:
        raise Rejection(
            INVALID_RECIPIENT_COUNT,
            f"recipientList must hold 1-{MAX_RECIPIENTS} recipients (got {len(entries)})",
        )
    recipients = [_recipient(e) for e in entries]
    if "##" in body:  # the body is a template: every recipient's text must fit
        for rendered in dict.fromkeys(r.render(body) for r in recipients):
            _check_body(rendered, message_type)
    else:
        _check_body(body, message_type)
    return SendRequest(message_type, send_no, body, title, recipients)


def _check_body(body: str, message_type: MessageType) -> None:
    body_bytes = euc_kr_length(body, "body")
    if message_type is MessageType.SMS and not 1 <= body_bytes <= SMS_MAX_BYTES:
        raise Rejection(
            INVALID_SMS_BODY,
            f"SMS body must be 1-{SMS_MAX_BYTES} bytes in EUC-KR (got {body_bytes}); "
            "send longer text as LMS through the mms endpoint",
        )
    if message_type is MessageType.LMS and not 1 <= body_bytes <= LMS_MAX_BYTES:
        raise Rejection(
            INVALID_LMS_CONTENT,
            f"LMS body must be 1-{LMS_MAX_BYTES} bytes in EUC-KR (got {body_bytes})",
        )


def _recipient(entry: object) -> Recipient:
    if not isinstance(entry, dict):
        raise malformed("each recipientList entry must be an object")
    number = entry.get("recipientNo")
    if not isinstance(number, str):
        raise malformed("recipientNo must be a string")
    parameters = _field(entry, "templateParameter", dict, {})
    if not all(isinstance(v, str) for v in parameters.values()):
        raise malformed("templateParameter values must be strings")
    return Recipient(
        number=number,
        country_code=_field(entry, "countryCode", str, DEFAULT_COUNTRY_CODE),
        grouping_key=_field(entry, "recipientGroupingKey", str, None),
        parameters=tuple(parameters.items()),
    )


def _field(payload: dict[str, Any], name: str, kind: type[T], default: T) -> T:
    value = payload.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise malformed(f"{name} must be of type {kind.__name__}")
    return value


class SmsGateway(NhnGateway[Message]):
    """The ``/sms/v3.0`` routes, accepting messages into an Inbox."""

    path_key = "appKey"
    rate_limit_code = TOO_MANY_REQUESTS
    rate_limit_message = "Too many requests"

    def __init__(
        self,
        *,
        app_key: str,
        secret_key: str,
        sender_numbers: Collection[str],
        inbox: Inbox[Message],
        simulation: Simulation,
        reporter: Reporter | None = None,
    ) -> None:
        super().__init__(app_key=app_key, secret_key=secret_key, inbox=inbox, simulation=simulation)
        self._sender_numbers = sender_numbers
        self._reporter = reporter

    def routes(self) -> list[web.RouteDef]:
        prefix = "/sms/v3.0/appKeys/{appKey}/sender"
        return [
            web.post(f"{prefix}/sms", self.send_sms),
            web.post(f"{prefix}/mms", self.send_mms),
            web.get(f"{prefix}/messages", self.find_messages),
        ]

    async def find_messages(self, request: web.Request) -> web.Response:
        """Accepted messages by ``recipientGroupingKey``, for reconciliation after a crash."""
        try:
            found = self._found(request)
        except Rejection as rejection:
            return rejection_response(rejection)
        data = [
            {
                "requestId": message.submission.request_id,
                "recipientSeq": message.recipient_seq,
                "recipientNo": message.recipient_no,
                "msgStatus": "3",
                "recipientGroupingKey": message.grouping_key,
            }
            for message in found
        ]
        return web.json_response(
            {"header": header(0, "SUCCESS"), "body": {"totalCount": len(data), "data": data}}
        )

    async def send_sms(self, request: web.Request) -> web.Response:
        return await self._send(request, MessageType.SMS)

    async def send_mms(self, request: web.Request) -> web.Response:
        return await self._send(request, MessageType.LMS)

    async def _send(self, request: web.Request, message_type: MessageType) -> web.Response:
        try:
            fault, send = await self._receive(
                request,
                lambda payload: parse_send_request(payload, message_type, self._sender_numbers),
            )
        except Rejection as rejection:
            return rejection_response(rejection)
        data = self._accept(send)
        if fault is Fault.HANG:  # the messages are taken; only the answer is late
            log.debug("holding the answer to %s request %s", message_type, data["requestId"])
            await self._simulation.hang()
        return web.json_response({"header": header(0, "SUCCESS"), "body": {"data": data}})

    def _accept(self, send: SendRequest) -> dict[str, Any]:
        """Record plausible recipients and build the response ``data`` object."""
        now = datetime.now(UTC)
        request_id = new_request_id(now)
        submission = Submission(
            request_id=request_id,
            type=send.type.value,
            sender_no=send.send_no,
            title=send.title,
            body=send.body,
            received_at=now.isoformat(timespec="milliseconds"),
        )
        undelivered = self._simulation.behaviour.sms_undelivered_suffixes
        reporting = self._reporter is not None and self._reporter.enabled(Channel.SMS)
        accepted: list[Message] = []
        reports: list[Accepted] = []
        results: list[dict[str, Any]] = []
        for seq, recipient in enumerate(send.recipients, start=1):
            if is_plausible_number(recipient.number):
                accepted.append(
                    Message(
                        submission,
                        seq,
                        recipient.number,
                        recipient.country_code,
                        recipient.grouping_key,
                        recipient.render(send.body) if recipient.parameters else None,
                    )
                )
                if reporting:
                    reports.append(
                        (
                            request_id,
                            seq,
                            recipient.grouping_key,
                            recipient.number,
                            recipient.number in undelivered,
                        )
                    )
                code, message = 0, "SUCCESS"
            else:
                code, message = INVALID_RECIPIENT_NUMBER, "Invalid recipient number"
            results.append(
                {
                    "recipientNo": recipient.number,
                    "resultCode": code,
                    "resultMessage": message,
                    "recipientSeq": seq,
                    "recipientGroupingKey": recipient.grouping_key,
                }
            )
        self._inbox.add(accepted)
        if self._reporter is not None:
            self._reporter.add(Channel.SMS, reports)
        log.debug(
            "accepted %s request %s: %d recipients, %d invalid numbers",
            send.type,
            request_id,
            len(accepted),
            len(results) - len(accepted),
        )
        return {"requestId": request_id, "statusCode": "2", "sendResultList": results}
