"""The in-memory record of accepted messages."""

from alimi_sandbox.inbox import Inbox, Message, Submission

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
