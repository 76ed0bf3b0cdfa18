"""The in-memory record of accepted messages."""

from alimi_sandbox.inbox import Inbox, KakaoMessage, KakaoSubmission, Message, Submission
from alimi_sandbox.kakao_simulator import search_result

SUBMISSION = Submission(
    request_id="20250101000000abc",
    type="LMS",
    sender_no="0215990000",
    title="제목",
    body="본문",
    received_at="2025-01-01T00:00:00.000+00:00",
)


def message(seq: int, recipient_no: str) -> Message:
    return Message(SUBMISSION, seq, recipient_no, "82", f"key-{seq}")


def test_when_a_message_is_shown__then_it_carries_the_submission_fields() -> None:
    assert message(2, "01012345678").as_dict() == {
        "message_id": "20250101000000abc-2",
        "request_id": "20250101000000abc",
        "type": "LMS",
        "recipient_no": "01012345678",
        "country_code": "82",
        "grouping_key": "key-2",
        "sender_no": "0215990000",
        "title": "제목",
        "body": "본문",
        "received_at": "2025-01-01T00:00:00.000+00:00",
    }


def test_when_filtered_by_recipient__then_only_their_messages_come_back_in_order() -> None:
    inbox = Inbox()
    inbox.add([message(1, "01011111111"), message(2, "01022222222"), message(3, "01011111111")])
    assert [m.recipient_seq for m in inbox.find("01011111111")] == [1, 3]
    assert len(inbox) == 3


def test_when_cleared__then_it_is_empty_and_reports_how_many_were_removed() -> None:
    inbox = Inbox()
    inbox.add([message(1, "01011111111"), message(2, "01022222222")])
    assert inbox.clear() == 2
    assert len(inbox) == 0
    assert list(inbox.find()) == []


def test_when_kakao_messages_share_a_grouping_key__then_the_index_lists_them_in_order() -> None:
    submission = KakaoSubmission("req", "sender", "ALIMI_PLAIN", "2025-01-01T00:00:00.000+00:00")
    inbox = Inbox[KakaoMessage]()
    inbox.add(
        [
            KakaoMessage(submission, 1, "01011111111", "k", "가"),
            KakaoMessage(submission, 2, "01022222222", None, "나"),
            KakaoMessage(submission, 3, "01033333333", "k", "다", undelivered=True),
        ]
    )

    found = inbox.with_grouping_key("k")

    assert [m.recipient_seq for m in found] == [1, 3]
    assert [search_result(m)["resultCode"] for m in found] == ["1000", "3016"]
    assert inbox.with_grouping_key("other") == ()
    assert "undelivered" not in found[1].as_dict()  # the inbox listing keeps its shape
