"""Which channel reaches a person first, and the fallback chain after it."""

from typing import Any

import pytest

from alimi.channel_choice import Route, Unreachable, route


@pytest.mark.parametrize(
    ("subject", "allowed", "expected"),
    [
        ({}, ["kakao", "sms"], Route("kakao", ("sms",))),
        ({"kakao_reachable": True}, ["kakao", "sms"], Route("kakao", ("sms",))),
        ({"kakao_reachable": False}, ["kakao", "sms"], Route("sms", ())),
        ({"channels": ["sms", "kakao"]}, ["kakao", "sms"], Route("sms", ("kakao",))),
        ({"channels": ["sms"]}, ["kakao", "sms"], Route("sms", ())),
        ({}, ["sms"], Route("sms", ())),
        ({}, ["kakao"], Route("kakao", ())),
        ({"channels": None}, ["kakao", "sms"], Route("kakao", ("sms",))),
    ],
)
def test_when_a_person_can_be_reached__then_the_chain_follows_their_order(
    subject: dict[str, Any], allowed: list[str], expected: Route
) -> None:
    assert route(subject, allowed) == expected


def test_when_a_kakao_only_reader_is_not_on_kakao__then_they_are_unreachable() -> None:
    result = route({"channels": ["kakao"], "kakao_reachable": False}, ["kakao", "sms"])
    assert isinstance(result, Unreachable) and result.reason == "not_on_kakao"


def test_when_the_notice_uses_none_of_a_persons_channels__then_the_reason_says_so() -> None:
    result = route({"channels": ["kakao"]}, ["sms"])
    assert isinstance(result, Unreachable) and result.reason == "channel_not_allowed"
    assert "reads only kakao; this notice goes by sms" == result.detail
