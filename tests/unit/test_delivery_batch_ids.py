"""Batch ids as people are retried and parked: they never grow without bound (a batch id
has at most 120 characters; a longer one is refused as unreadable and dead-lettered)."""

from __future__ import annotations

from alimi_delivery.retries import held_id, root_id


def test_when_people_are_parked_again_and_again__then_their_batch_keeps_one_id() -> None:
    batch_id = "ntc_1:sms:00000007"
    for _ in range(50):
        batch_id = held_id(batch_id)
    assert batch_id == "ntc_1:sms:00000007:held"


def test_when_parked_people_are_retried_and_parked__then_the_id_stays_short() -> None:
    retried = f"{root_id(held_id('ntc_1:sms:00000007:a3'))}:a2"
    assert retried == "ntc_1:sms:00000007:held:a2"
    assert held_id(retried) == "ntc_1:sms:00000007:held"
    assert f"{root_id(retried)}:a3" == "ntc_1:sms:00000007:held:a3"


def test_when_a_handed_over_batch_is_parked__then_its_hand_over_stays_in_the_id() -> None:
    assert held_id("ntc_1:kakao:00000002:to-sms:a2") == "ntc_1:kakao:00000002:to-sms:held"
