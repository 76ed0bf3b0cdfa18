"""Rows of uploaded files: lines from chunks, CSV and NDJSON rows, numbered as in the file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from alimi_intake.rows import (
    MAX_RECORD_BYTES,
    BodyTooLarge,
    HeaderError,
    Line,
    Row,
    csv_rows,
    lines,
    list_header,
    ndjson_rows,
)


async def _chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _lines(*parts: bytes, max_bytes: int = 10_000_000) -> list[Line]:
    return [line async for line in lines(_chunks(parts), max_bytes=max_bytes)]


async def _csv(text: str | bytes, **kw: Any) -> list[Row]:
    data = text.encode() if isinstance(text, str) else text
    return [row async for row in csv_rows(lines(_chunks([data]), max_bytes=10**7), **kw)]


async def _ndjson(text: str, **kw: Any) -> list[Row]:
    return [
        row async for row in ndjson_rows(lines(_chunks([text.encode()]), max_bytes=10**7), **kw)
    ]


def _errors(found: list[Row]) -> list[tuple[int, str | None, str]]:
    return [(e.row, e.field, e.message) for row in found for e in row.errors]


async def test_when_lines_are_split_across_chunks__then_each_line_comes_whole_and_numbered() -> (
    None
):
    found = await _lines(b"ab", b"c\r\nd", b"e\n\nf", b"g")
    assert found == [Line(1, b"abc"), Line(2, b"de"), Line(3, b""), Line(4, b"fg")]


async def test_when_a_line_is_too_long__then_it_comes_as_none_and_the_next_is_whole() -> None:
    long = b"x" * (MAX_RECORD_BYTES + 1)
    found = await _lines(b"a\n", long[:1000], long[1000:], b"\nb\n")
    assert found == [Line(1, b"a"), Line(2, None), Line(3, b"b")]


async def test_when_the_body_passes_the_limit__then_body_too_large_is_raised() -> None:
    with pytest.raises(BodyTooLarge):
        await _lines(b"a\n" * 10, b"b\n" * 10, max_bytes=25)


async def test_when_a_csv_has_good_rows__then_they_come_as_subject_fields_numbered_from_two() -> (
    None
):
    found = await _csv(
        "external_id,name,phone,locale,tags,kakao_reachable,channels\n"
        "c1,김민준,010-1234-5678,ko,breach|vip,false,sms|kakao\n"
        "c2,,,,,,\n"
    )
    assert found == [
        Row(
            2,
            {
                "external_id": "c1",
                "name": "김민준",
                "phone": "010-1234-5678",
                "locale": "ko",
                "tags": ["breach", "vip"],
                "kakao_reachable": False,
                "channels": ["sms", "kakao"],
            },
        ),
        Row(3, {"external_id": "c2"}),  # empty cells: the defaults
    ]


async def test_when_columns_come_in_any_order_or_case__then_the_header_names_them() -> None:
    found = await _csv(" Phone ,EXTERNAL_ID\r\n010-1234-5678,c1\r\n")
    assert found == [Row(2, {"phone": "010-1234-5678", "external_id": "c1"})]


async def test_when_blank_lines_stand_between_rows__then_they_are_skipped_but_counted() -> None:
    found = await _csv("external_id\n\nc1\n \n\nc2")
    assert [(r.number, r.values) for r in found] == [
        (3, {"external_id": "c1"}),
        (6, {"external_id": "c2"}),
    ]


async def test_when_a_quoted_value_holds_a_line_break__then_the_record_is_one_row() -> None:
    found = await _csv('external_id,name\nc1,"Kim\nMin, ""MJ"""\nc2,Lee\n')
    assert [(r.number, r.values) for r in found] == [
        (2, {"external_id": "c1", "name": 'Kim\nMin, "MJ"'}),
        (3, {"external_id": "c2", "name": "Lee"}),
    ]


async def test_when_a_row_is_malformed__then_it_carries_an_error_and_the_rest_is_read() -> None:
    found = await _csv('external_id,name\nc1,a,extra\nc2,"x"y\nc3,ok\n')
    assert _errors(found) == [
        (2, None, "has 3 values; the header names 2 columns"),
        (3, None, "not CSV: ',' expected after '\"'"),
    ]
    assert found[-1] == Row(4, {"external_id": "c3", "name": "ok"})


async def test_when_a_quote_is_never_closed__then_that_row_is_reported() -> None:
    found = await _csv('external_id,name\nc1,"open\nc2,x\n')
    assert _errors(found) == [(2, None, "ends inside a quoted value")]


async def test_when_the_file_starts_with_a_byte_order_mark__then_the_header_is_still_read() -> None:
    found = await _csv("\ufeffexternal_id\nc1\n".encode())
    assert found == [Row(2, {"external_id": "c1"})]


async def test_when_the_csv_is_in_euc_kr__then_korean_names_are_read() -> None:
    found = await _csv("external_id,name\nc1,김민준\n".encode("cp949"), encoding="cp949")
    assert found == [Row(2, {"external_id": "c1", "name": "김민준"})]


async def test_when_a_utf8_row_has_bad_bytes__then_that_row_is_reported() -> None:
    found = await _csv(b"external_id,name\nc1,\xff\xfe\nc2,ok\n")
    assert _errors(found) == [(2, None, "not valid UTF-8 text")]
    assert found[-1].values == {"external_id": "c2", "name": "ok"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("name,phone", "the column external_id is required"),
        ("external_id,email", "unknown column(s) 'email'; known: external_id, name, phone"),
        ("external_id,name,name", "column(s) named twice: name"),
        ("", "the first row must name the columns"),
    ],
)
async def test_when_the_header_is_not_usable__then_header_error_names_row_one(
    header: str, message: str
) -> None:
    with pytest.raises(HeaderError) as caught:
        await _csv(f"{header}\nc1,x\n")
    assert all(e.row == 1 and e.field == "header" for e in caught.value.errors)
    assert any(e.message.startswith(message) for e in caught.value.errors), caught.value.errors


async def test_when_the_csv_is_empty__then_header_error_says_so() -> None:
    with pytest.raises(HeaderError, match="the file is empty"):
        await _csv("")


async def test_when_a_list_csv_has_other_columns__then_only_external_id_matters() -> None:
    found = await _csv("email,external_id\nx@y,c1\n", header=list_header)
    assert found[0].values["external_id"] == "c1"
    with pytest.raises(HeaderError, match="external_id is required"):
        await _csv("id\nc1\n", header=list_header)


async def test_when_ndjson_has_good_and_bad_lines__then_each_bad_line_is_named() -> None:
    found = await _ndjson('{"external_id": "c1"}\n\n{not json\n[1]\n"c2"\n{"external_id": "c3"}')
    assert [r.number for r in found if not r.errors] == [1, 6]
    assert [(row, field) for row, field, _ in _errors(found)] == [(3, None), (4, None), (5, None)]
    assert _errors(found)[0][2].startswith("not JSON: ")
    assert _errors(found)[1][2] == "not a JSON object"


async def test_when_a_list_is_ndjson_of_strings__then_each_is_an_external_id() -> None:
    found = await _ndjson('"c1"\n{"external_id": "c2"}\n', bare="external_id")
    assert [r.values for r in found] == [{"external_id": "c1"}, {"external_id": "c2"}]
