"""An imitation of the NHN Cloud KakaoTalk Bizmessage AlimTalk v2.3 send and list APIs.

AlimTalk sends pre-approved templates: the request names a template code and
gives each recipient the values of its ``#{var}`` placeholders. The rules are pure
functions (``parse_alimtalk_request``, ``fill_template``, ``recipient_outcome``);
``KakaoGateway`` wires them to aiohttp routes.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from aiohttp import web

from .behaviour import Behaviour, Fault, Simulation
from .inbox import Inbox, KakaoMessage, KakaoSubmission
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
from .reports import OUTCOMES, Accepted, Channel, Reporter

log = logging.getLogger("alimi.sandbox")

VOLUME_EXCEEDED = -1030
INVALID_SENDER_KEY = -3001
TEMPLATE_NOT_FOUND = -3003
TEMPLATE_MISMATCH = -3011
UNCERTAIN = 3005  # delivery result unknown
NOT_KAKAO_USER = 3018  # not a KakaoTalk user, or the user blocked the channel

PLACEHOLDER = re.compile(r"#\{([^{}]+)\}")


@dataclass(frozen=True, slots=True)
class Template:
    """A registered AlimTalk template: text with ``#{var}`` placeholders and a button count."""

    content: str
    buttons: int = 0

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(PLACEHOLDER.findall(self.content))

    @classmethod
    def from_json(cls, value: object) -> Template:
        """``{"content": str, "buttons": int}``; raise ValueError naming what is wrong."""
        if not isinstance(value, dict):
            raise ValueError("must be an object with content and buttons")
        content = value.get("content")
        buttons = value.get("buttons", 0)
        if not isinstance(content, str) or not content:
            raise ValueError("content must be a non-empty string")
        if not isinstance(buttons, int) or isinstance(buttons, bool) or not 0 <= buttons <= 5:
            raise ValueError("buttons must be an integer between 0 and 5")
        unknown = set(value) - {"content", "buttons"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        return cls(content, buttons)

    def as_dict(self) -> dict[str, Any]:
        return {"content": self.content, "buttons": self.buttons}


BUILT_IN_TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {
        "ALIMI_NOTICE": Template(
            "[#{organization}] 개인정보 유출 안내\n"
            "#{name}님, #{summary}\n"
            "자세한 내용과 대응 방법: #{status_url}",
            buttons=1,
        ),
        "ALIMI_UPDATE": Template(
            "[#{organization}] 조사 진행 안내\n#{name}님, #{summary}\n#{status_url}",
            buttons=1,
        ),
        "ALIMI_PLAIN": Template("#{text}"),
    }
)


class TemplateMismatch(ValueError):
    """A recipient's templateParameter or buttons do not fit the template."""


def fill_template(template: Template, parameters: Mapping[str, str]) -> str:
    """Replace every ``#{var}``; raise TemplateMismatch naming the variables left unfilled."""
    missing = template.variables - parameters.keys()
    if missing:
        raise TemplateMismatch(f"missing template parameters: {', '.join(sorted(missing))}")
    return PLACEHOLDER.sub(lambda match: parameters[match.group(1)], template.content)


@dataclass(frozen=True, slots=True)
class KakaoRecipient:
    number: str
    parameters: Mapping[str, str]
    grouping_key: str | None = None
    buttons: tuple[dict[str, Any], ...] | None = None  # None: the template's own


@dataclass(frozen=True, slots=True)
class AlimTalkRequest:
    sender_key: str
    template_code: str
    template: Template
    recipients: list[KakaoRecipient]
    sender_grouping_key: str | None = None


def parse_alimtalk_request(
    payload: object, sender_key: str, templates: Mapping[str, Template]
) -> AlimTalkRequest:
    """Check a decoded JSON request the way the API does; raise Rejection if refused."""
    if not isinstance(payload, dict):
        raise malformed("expected a JSON object")
    given_key = payload.get("senderKey")
    if given_key != sender_key:
        raise Rejection(INVALID_SENDER_KEY, "Invalid sender key")
    code = payload.get("templateCode")
    if not isinstance(code, str):
        raise malformed("templateCode must be a string")
    template = templates.get(code)
    if template is None:
        raise Rejection(TEMPLATE_NOT_FOUND, "template not found")
    entries = payload.get("recipientList")
    if not isinstance(entries, list):
        raise malformed("recipientList must be a list")
    if not 1 <= len(entries) <= MAX_RECIPIENTS:
        raise Rejection(
            INVALID_RECIPIENT_COUNT,
            f"recipientList must hold 1-{MAX_RECIPIENTS} recipients (got {len(entries)})",
        )
    sender_grouping_key = payload.get("senderGroupingKey")
    if sender_grouping_key is not None and not isinstance(sender_grouping_key, str):
        raise malformed("senderGroupingKey must be a string")
    return AlimTalkRequest(
        sender_key=sender_key,
        template_code=code,
        template=template,
        recipients=[_recipient(entry) for entry in entries],
        sender_grouping_key=sender_grouping_key,
    )


def _recipient(entry: object) -> KakaoRecipient:
    if not isinstance(entry, dict):
        raise malformed("each recipientList entry must be an object")
    number = entry.get("recipientNo")
    if not isinstance(number, str):
        raise malformed("recipientNo must be a string")
    parameters = entry.get("templateParameter") or {}
    if not isinstance(parameters, dict) or not all(isinstance(v, str) for v in parameters.values()):
        raise malformed("templateParameter must be an object of strings")
    grouping_key = entry.get("recipientGroupingKey")
    if grouping_key is not None and not isinstance(grouping_key, str):
        raise malformed("recipientGroupingKey must be a string")
    buttons = entry.get("buttons")
    if buttons is not None:
        if not isinstance(buttons, list):
            raise malformed("buttons must be a list")
        buttons = tuple(_button(button) for button in buttons)
    return KakaoRecipient(number, parameters, grouping_key, buttons)


_BUTTON_TEXT_FIELDS = ("type", "name", "linkMo", "linkPc", "schemeIos", "schemeAndroid")


def _button(button: object) -> dict[str, Any]:
    if not isinstance(button, dict):
        raise malformed("each button must be an object")
    if not isinstance(button.get("ordering"), int) or isinstance(button.get("ordering"), bool):
        raise malformed("button ordering must be an integer")
    for name in ("type", "name"):
        if not isinstance(button.get(name), str):
            raise malformed(f"button {name} must be a string")
    for name in _BUTTON_TEXT_FIELDS:
        if button.get(name) is not None and not isinstance(button[name], str):
            raise malformed(f"button {name} must be a string")
    if button["type"] == "WL" and not button.get("linkMo"):
        raise malformed("a WL (web link) button needs linkMo")
    return {k: v for k, v in button.items() if k == "ordering" or k in _BUTTON_TEXT_FIELDS}


def recipient_outcome(
    recipient: KakaoRecipient, template: Template, behaviour: Behaviour
) -> tuple[int, str, str | None]:
    """(resultCode, resultMessage, rendered text or None) for one recipient."""
    if not is_plausible_number(recipient.number):
        return INVALID_RECIPIENT_NUMBER, "Invalid recipient number", None
    try:
        text = fill_template(template, recipient.parameters)
        if recipient.buttons is not None and len(recipient.buttons) != template.buttons:
            raise TemplateMismatch(
                f"the template has {template.buttons} buttons, the request {len(recipient.buttons)}"
            )
    except TemplateMismatch as mismatch:
        return TEMPLATE_MISMATCH, f"template mismatch: {mismatch}", None
    if recipient.number in behaviour.kakao_not_user_suffixes:
        return NOT_KAKAO_USER, "Message cannot be sent: not a KakaoTalk user or blocked", None
    if recipient.number in behaviour.kakao_uncertain_suffixes:
        return UNCERTAIN, "Delivery result unknown", None
    return 0, "SUCCESS", text


def search_result(message: KakaoMessage) -> dict[str, Any]:
    """One entry of the message list (NHN's ``messageSearchResultResponse.messages``).

    ``messageStatus`` and ``resultCode`` say what the delivery report says: COMPLETED /
    "1000", or FAILED / "3016" for a number in ``kakao_undelivered_suffixes``.
    """
    code, _, name = OUTCOMES[Channel.KAKAO, message.undelivered]
    submission = message.submission
    return {
        "requestId": submission.request_id,
        "recipientSeq": message.recipient_seq,
        "senderKey": submission.sender_key,
        "templateCode": submission.template_code,
        "recipientNo": message.recipient_no,
        "content": message.text,
        "messageStatus": "FAILED" if message.undelivered else "COMPLETED",
        "resultCode": code,
        "resultCodeName": name,
        "buttons": list(message.buttons),
        "senderGroupingKey": submission.sender_grouping_key,
        "recipientGroupingKey": message.grouping_key,
    }


class VolumeWindow:
    """Counts accepted requests over the last second against ``kakao_volume_limit``."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def admit(self, limit: int, now: float | None = None) -> bool:
        if limit <= 0:
            return True
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] <= now - 1.0:
            self._times.popleft()
        if len(self._times) >= limit:
            return False
        self._times.append(now)
        return True


class TemplateRegistry:
    """The templates the sandbox knows; ``PUT /_sandbox/kakao/templates`` replaces them."""

    def __init__(self, templates: Mapping[str, Template]) -> None:
        self.templates: Mapping[str, Template] = dict(templates)


class KakaoGateway(NhnGateway[KakaoMessage]):
    """The ``/alimtalk/v2.3`` send and list routes, accepting messages into an Inbox."""

    path_key = "appkey"
    rate_limit_code = VOLUME_EXCEEDED
    rate_limit_message = "volume exceeded"

    def __init__(
        self,
        *,
        app_key: str,
        secret_key: str,
        sender_key: str,
        templates: TemplateRegistry,
        inbox: Inbox[KakaoMessage],
        simulation: Simulation,
        reporter: Reporter,
    ) -> None:
        super().__init__(app_key=app_key, secret_key=secret_key, inbox=inbox, simulation=simulation)
        self._sender_key = sender_key
        self._templates = templates
        self._reporter = reporter
        self._volume = VolumeWindow()

    def routes(self) -> list[web.RouteDef]:
        path = "/alimtalk/v2.3/appkeys/{appkey}/messages"
        return [web.post(path, self.send), web.get(path, self.find_messages)]

    def throttle(self) -> None:
        if not self._volume.admit(self._simulation.behaviour.kakao_volume_limit):
            raise Rejection(
                VOLUME_EXCEEDED, "volume exceeded", status=429, headers={"Retry-After": "1"}
            )

    async def send(self, request: web.Request) -> web.Response:
        try:
            fault, send = await self._receive(
                request,
                lambda payload: parse_alimtalk_request(
                    payload, self._sender_key, self._templates.templates
                ),
            )
        except Rejection as rejection:
            return rejection_response(rejection)
        message = self._accept(send)
        if fault is Fault.HANG:  # the messages are taken; only the answer is late
            log.debug("holding the answer to AlimTalk request %s", message["requestId"])
            await self._simulation.hang()
        return web.json_response({"header": header(0, "SUCCESS"), "message": message})

    async def find_messages(self, request: web.Request) -> web.Response:
        """Accepted messages by ``recipientGroupingKey``, in NHN's list shape."""
        try:
            found = self._found(request)
        except Rejection as rejection:
            return rejection_response(rejection)
        messages = [search_result(m) for m in found]
        return web.json_response(
            {
                "header": header(0, "SUCCESS"),
                "messageSearchResultResponse": {
                    "messages": messages,
                    "totalCount": len(messages),
                },
            }
        )

    def _accept(self, send: AlimTalkRequest) -> dict[str, Any]:
        now = datetime.now(UTC)
        request_id = new_request_id(now)
        submission = KakaoSubmission(
            request_id=request_id,
            sender_key=send.sender_key,
            template_code=send.template_code,
            received_at=now.isoformat(timespec="milliseconds"),
            sender_grouping_key=send.sender_grouping_key,
        )
        behaviour = self._simulation.behaviour
        undelivered = behaviour.kakao_undelivered_suffixes
        reporting = self._reporter.enabled(Channel.KAKAO)
        accepted: list[KakaoMessage] = []
        reports: list[Accepted] = []
        results: list[dict[str, Any]] = []
        for seq, recipient in enumerate(send.recipients, start=1):
            code, message, text = recipient_outcome(recipient, send.template, behaviour)
            if text is not None:
                lost = recipient.number in undelivered
                accepted.append(
                    KakaoMessage(
                        submission,
                        seq,
                        recipient.number,
                        recipient.grouping_key,
                        text,
                        recipient.buttons or (),
                        lost,
                    )
                )
                if reporting:
                    reports.append(
                        (request_id, seq, recipient.grouping_key, recipient.number, lost)
                    )
            results.append(
                {
                    "recipientSeq": seq,
                    "recipientNo": recipient.number,
                    "resultCode": code,
                    "resultMessage": message,
                    "recipientGroupingKey": recipient.grouping_key,
                }
            )
        self._inbox.add(accepted)
        self._reporter.add(Channel.KAKAO, reports)
        log.debug(
            "accepted AlimTalk request %s (%s): %d of %d recipients",
            request_id,
            send.template_code,
            len(accepted),
            len(results),
        )
        return {
            "requestId": request_id,
            "senderGroupingKey": send.sender_grouping_key,
            "sendResults": results,
        }
