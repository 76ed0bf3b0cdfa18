"""JSON-lines log records with phone numbers masked at the logging boundary."""

import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from alimi.logging import MaskingJsonFormatter, configure

PHONE = "010-1234-5678"
MASKED = "01*****5678"


def record(
    msg: str = "hello",
    *args: object,
    level: int = logging.INFO,
    name: str = "alimi.test",
    exc_info: Any = None,
    **extra: Any,
) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(
        name, level, "test.py", 1, msg, args, exc_info, extra=extra or None
    )


def entry(rec: logging.LogRecord, service: str = "intake") -> dict[str, Any]:
    line = MaskingJsonFormatter(service).format(rec)
    assert "\n" not in line
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_when_a_record_is_formatted__then_service_level_logger_and_message_are_present() -> None:
    e = entry(record("started", level=logging.WARNING, name="alimi.bus"), service="delivery")
    assert e["service"] == "delivery"
    assert e["level"] == "warning"
    assert e["logger"] == "alimi.bus"
    assert e["msg"] == "started"


def test_when_a_record_is_formatted__then_the_timestamp_is_utc_iso8601_in_milliseconds() -> None:
    e = entry(record())
    ts = datetime.fromisoformat(e["ts"])
    assert ts.utcoffset() == timedelta(0)
    assert len(e["ts"].split(".")[1]) == len("123+00:00")


def test_when_a_record_is_formatted__then_standard_logrecord_attributes_are_left_out() -> None:
    e = entry(record())
    assert set(e) == {"ts", "level", "service", "logger", "msg"}


def test_when_the_message_has_arguments__then_they_are_interpolated() -> None:
    assert entry(record("sent %d of %s", 3, "batch-1"))["msg"] == "sent 3 of batch-1"


def test_when_the_message_contains_a_phone_number__then_it_is_masked() -> None:
    e = entry(record(f"sending to {PHONE}"))
    assert e["msg"] == f"sending to {MASKED}"


def test_when_a_phone_number_is_a_message_argument__then_it_is_masked() -> None:
    e = entry(record("sending to %s", "+821012345678"))
    assert e["msg"] == "sending to +82******5678"


def test_when_an_extra_field_holds_a_phone_number__then_it_is_masked() -> None:
    e = entry(record(phone=PHONE, batch_id="b-1", count=3))
    assert e["phone"] == MASKED
    assert e["batch_id"] == "b-1"
    assert e["count"] == 3


def test_when_a_nested_extra_field_holds_phone_numbers__then_each_is_masked() -> None:
    e = entry(
        record(
            detail={"to": PHONE, "tries": [{"phone": "+821098765432"}, "010-1111-2222"]},
            numbers=(PHONE, "010-3333-4444"),
        )
    )
    assert e["detail"] == {"to": MASKED, "tries": [{"phone": "+82******5432"}, "01*****2222"]}
    assert e["numbers"] == [MASKED, "01*****4444"]


def test_when_an_extra_field_is_an_arbitrary_object__then_its_text_is_masked() -> None:
    class Person:
        def __str__(self) -> str:
            return f"Person(phone={PHONE})"

    assert entry(record(who=Person()))["who"] == f"Person(phone={MASKED})"


def test_when_extra_fields_are_scalars__then_their_json_types_are_kept() -> None:
    e = entry(record(flag=True, ratio=0.5, none=None, count=7))
    assert (e["flag"], e["ratio"], e["none"], e["count"]) == (True, 0.5, None, 7)


def test_when_an_exception_is_logged__then_the_traceback_is_in_error_with_numbers_masked() -> None:
    try:
        raise ValueError(f"cannot reach {PHONE}")
    except ValueError:
        rec = record("failed", exc_info=sys.exc_info())
    e = entry(rec)
    assert "Traceback" in e["error"]
    assert f"ValueError: cannot reach {MASKED}" in e["error"]
    assert PHONE not in json.dumps(e)


def test_when_a_message_is_not_ascii__then_it_is_written_as_is() -> None:
    line = MaskingJsonFormatter("intake").format(record("안내 발송"))
    assert "안내 발송" in line


def test_when_a_message_has_newlines__then_the_record_is_still_one_line() -> None:
    line = MaskingJsonFormatter("intake").format(record("first\nsecond"))
    assert "\n" not in line
    assert json.loads(line)["msg"] == "first\nsecond"


def test_when_a_phone_number_is_a_key_of_a_nested_extra_field__then_it_is_masked() -> None:
    line = MaskingJsonFormatter("intake").format(record(counts={PHONE: 2}))
    assert PHONE not in line


def test_when_an_extra_field_is_named_service__then_the_service_name_is_not_replaced() -> None:
    assert entry(record(service="spoofed"), service="intake")["service"] == "intake"


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("aio_pika", "aiormq", "pymongo")}
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in noisy.items():
        logging.getLogger(name).setLevel(lvl)


def test_when_configured__then_the_root_logger_writes_masked_json_lines(
    root_logger: logging.Logger,
) -> None:
    configure("segmenter", level="DEBUG")
    assert len(root_logger.handlers) == 1
    handler = root_logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    logging.getLogger("alimi.x").debug("to %s", PHONE)
    logging.getLogger("alimi.x").info("done")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["msg"] for line in lines] == [f"to {MASKED}", "done"]
    assert all(json.loads(line)["service"] == "segmenter" for line in lines)
    assert logging.getLogger("pymongo").level == logging.WARNING
