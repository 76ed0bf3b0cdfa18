"""Pure logic: which channel reaches a person first, and what follows if it fails.

A person lists the channels they read, most preferred first (unset: Kakao,
then SMS); a notice says which channels it may use. The chain is the person's
list, kept to the notice's channels and to what can reach them: Kakao only if
they are not known to be unreachable there (``kakao_reachable`` false: not a
KakaoTalk user, or blocked the channel). The first channel gets the message;
the rest are the fallback chain. An empty chain means nobody can reach the
person, and they are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alimi.messages import Channel

DEFAULT_PREFERENCE: tuple[Channel, ...] = ("kakao", "sms")

# Reasons a person is skipped (bounded: they label metrics).
NOT_ON_KAKAO = "not_on_kakao"
CHANNEL_NOT_ALLOWED = "channel_not_allowed"


@dataclass(frozen=True)
class Route:
    channel: Channel
    fallback: tuple[Channel, ...]


@dataclass(frozen=True)
class Unreachable:
    reason: str
    detail: str


def route(subject: Mapping[str, Any], allowed: Sequence[str]) -> Route | Unreachable:
    """The channel chain of a ``subject`` (a document with a phone) for a notice."""
    preferred: Sequence[Channel] = subject.get("channels") or DEFAULT_PREFERENCE
    in_notice = [c for c in preferred if c in allowed]
    if not in_notice:
        return Unreachable(
            CHANNEL_NOT_ALLOWED,
            f"reads only {', '.join(preferred)}; this notice goes by {', '.join(allowed)}",
        )
    chain = [c for c in in_notice if c != "kakao" or subject.get("kakao_reachable") is not False]
    if not chain:
        return Unreachable(NOT_ON_KAKAO, "reads only Kakao and is not reachable there")
    return Route(chain[0], tuple(chain[1:]))
