"""Rows of an uploaded file, read as a stream: CSV or NDJSON, numbered as in the file.

Nothing here holds more than one record: :func:`lines` splits the body's
chunks into lines (a line over :data:`MAX_RECORD_BYTES` is reported, not
kept), :func:`csv_rows` and :func:`ndjson_rows` turn them into :class:`Row`\\ s
of plain values for the models to validate. A row that cannot be read carries
its errors instead of values; only a bad CSV header (row 1) stops the file.

Row numbers are those a person sees: NDJSON's first line is row 1; in CSV the
header is row 1, and a row is one record (a quoted value may hold line
breaks; a spreadsheet shows it as one row). Blank lines are counted, skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from alimi import problems

MAX_RECORD_BYTES = 64 * 1024
CSV_TYPES = frozenset({"text/csv"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
# CSV exported by Korean spreadsheets is often in CP949 (a superset of EUC-KR).
CSV_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "euc-kr": "cp949", "cp949": "cp949"}
SUBJECT_COLUMNS = ("external_id", "name", "phone", "locale", "tags", "kakao_reachable", "channels")
LIST_SEPARATOR = "|"  # between tags, between channels, in one CSV cell
BOOLEANS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None  # None: the row as a whole (not JSON, too long, ...)
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Row:
    number: int
    values: dict[str, Any] = field(default_factory=dict)
    errors: tuple[RowError, ...] = ()


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")
        self.limit = limit


class HeaderError(Exception):
    """The CSV header cannot be used: nothing in the file can be read."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Line:
    number: int
    data: bytes | None  # None: longer than MAX_RECORD_BYTES, dropped


async def lines(chunks: AsyncIterable[bytes], *, max_bytes: int) -> AsyncIterator[Line]:
    """The body's lines (without ``\\n`` or ``\\r\\n``), numbered from 1.

    Raises :class:`BodyTooLarge` once more than ``max_bytes`` have come.
    """
    buffer = bytearray()
    number = 0
    received = 0
    overlong = False  # dropping the rest of a line too long to keep
    async for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise BodyTooLarge(max_bytes)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            number += 1
            if overlong or len(buffer) + end - start > MAX_RECORD_BYTES:
                yield Line(number, None)
            else:
                buffer += chunk[start:end]
                yield Line(number, bytes(buffer.removesuffix(b"\r")))
            buffer.clear()
            overlong = False
            start = end + 1
        if not overlong:
            buffer += chunk[start:]
            if len(buffer) > MAX_RECORD_BYTES:
                overlong = True
                buffer.clear()
    if buffer or overlong:
        yield Line(number + 1, None if overlong else bytes(buffer.removesuffix(b"\r")))


def _too_long(number: int) -> Row:
    return Row(number, errors=(RowError(number, None, f"longer than {MAX_RECORD_BYTES} bytes"),))


def _not_text(number: int, encoding: str) -> Row:
    return Row(number, errors=(RowError(number, None, f"not valid {encoding} text"),))


async def ndjson_rows(body: AsyncIterable[Line], *, bare: str | None = None) -> AsyncIterator[Row]:
    """One JSON object per line; a line that is not one is a row with an error.

    With ``bare``, a line may also be a JSON string: the value of that field
    (a list's ``"c1"`` for ``{"external_id": "c1"}``).
    """
    async for line in body:
        if line.data is None:
            yield _too_long(line.number)
            continue
        if not line.data.strip():
            continue
        try:
            value = problems.loads(line.data)
        except UnicodeDecodeError:
            yield _not_text(line.number, "UTF-8")
            continue
        except problems.TooDeep as exc:
            yield Row(line.number, errors=(RowError(line.number, None, str(exc)),))
            continue
        except json.JSONDecodeError as exc:
            yield Row(line.number, errors=(RowError(line.number, None, f"not JSON: {exc}"),))
            continue
        if bare is not None and isinstance(value, str):
            value = {bare: value}
        if not isinstance(value, dict):
            yield Row(line.number, errors=(RowError(line.number, None, "not a JSON object"),))
            continue
        yield Row(line.number, value)


@dataclass(frozen=True)
class Record:
    """One CSV record: a line, or several when a quoted value holds line breaks."""

    number: int
    text: str | None
    error: str | None = None


async def csv_records(body: AsyncIterable[Line], *, encoding: str) -> AsyncIterator[Record]:
    """Decode lines and join those a quoted value spans; numbered from 1 (the header)."""
    number = 0
    parts: list[str] = []
    size = 0
    async for line in body:
        if not parts:
            number += 1
        if line.data is None:
            parts, size = [], 0
            yield Record(number, None, f"longer than {MAX_RECORD_BYTES} bytes")
            continue
        try:
            # A byte-order mark, as spreadsheets write, opens the first line or nothing.
            bom = encoding == "utf-8" and line.number == 1
            text = line.data.decode("utf-8-sig" if bom else encoding)
        except UnicodeDecodeError:
            parts, size = [], 0
            yield Record(number, None, f"not valid {encoding.upper()} text")
            continue
        parts.append(text)
        size += len(line.data)
        if size > MAX_RECORD_BYTES:
            # An unclosed quote would swallow the rest of the file: report it, go on.
            parts, size = [], 0
            yield Record(number, None, f"longer than {MAX_RECORD_BYTES} bytes (an unclosed quote?)")
            continue
        record = "\n".join(parts)
        if record.count('"') % 2:  # inside a quoted value: the record goes on
            continue
        parts, size = [], 0
        yield Record(number, record)
    if parts:
        yield Record(number, None, "ends inside a quoted value")


def _cells(text: str) -> list[str]:
    return next(csv.reader([text], strict=True), [])


def subject_header(text: str | None) -> list[str]:
    """The columns of a subjects CSV; :class:`HeaderError` naming each problem."""
    names = [c.strip().lower() for c in _cells(text or "")]
    errors = []
    if not any(names):
        errors.append("the first row must name the columns: " + ",".join(SUBJECT_COLUMNS))
    else:
        unknown = [n for n in names if n not in SUBJECT_COLUMNS]
        if unknown:
            errors.append(
                f"unknown column(s) {', '.join(repr(n) for n in unknown)}; "
                f"known: {', '.join(SUBJECT_COLUMNS)}"
            )
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            errors.append(f"column(s) named twice: {', '.join(repeated)}")
        if "external_id" not in names:
            errors.append("the column external_id is required")
    if errors:
        raise HeaderError([RowError(1, "header", e) for e in errors])
    return names


def subject_values(names: list[str], cells: list[str]) -> dict[str, Any]:
    """A CSV row's cells as the fields of a subject; empty cells are left out."""
    values: dict[str, Any] = {}
    for name, cell in zip(names, cells, strict=False):
        cell = cell.strip()
        if not cell:
            continue
        if name in ("tags", "channels"):
            values[name] = [p.strip() for p in cell.split(LIST_SEPARATOR) if p.strip()]
        elif name == "kakao_reachable":
            values[name] = BOOLEANS.get(cell.lower(), cell)  # any other word: refused as such
        else:
            values[name] = cell
    return values


def list_header(text: str | None) -> list[str]:
    """The columns of a list's CSV: external_id is read, any other column is ignored."""
    names = [c.strip().lower() for c in _cells(text or "")]
    if "external_id" not in names:
        raise HeaderError([RowError(1, "header", "the column external_id is required")])
    return names


async def csv_rows(
    body: AsyncIterable[Line],
    *,
    encoding: str = "utf-8",
    header: Callable[[str | None], list[str]] = subject_header,
) -> AsyncIterator[Row]:
    """Rows of a CSV file whose first row names the columns (checked by ``header``).

    Raises :class:`HeaderError` if that row is missing or not usable.
    """
    names: list[str] | None = None
    async for record in csv_records(body, encoding=encoding):
        if names is None:
            if record.text is None:
                raise HeaderError([RowError(1, "header", record.error or "unreadable")])
            try:
                names = header(record.text)
            except csv.Error as exc:
                raise HeaderError([RowError(1, "header", f"not CSV: {exc}")]) from None
            continue
        if record.text is None:
            yield Row(record.number, errors=(RowError(record.number, None, str(record.error)),))
            continue
        if not record.text.strip():
            continue
        try:
            cells = _cells(record.text)
        except csv.Error as exc:
            yield Row(record.number, errors=(RowError(record.number, None, f"not CSV: {exc}"),))
            continue
        if len(cells) > len(names):
            message = f"has {len(cells)} values; the header names {len(names)} columns"
            yield Row(record.number, errors=(RowError(record.number, None, message),))
            continue
        yield Row(record.number, subject_values(names, cells))
    if names is None:
        raise HeaderError([RowError(1, "header", "the file is empty")])


# The files as the OpenAPI document describes them, as exactly as a pattern can say what
# the readers above take: a CSV whose first row names its columns (any case, spaces
# around a name or inside its double quotes), then at least one row that is not blank;
# NDJSON with at least one line that is not blank.
_SPACE = "[ \\t]*"
_END = "(?:,|\\r?\\n)"  # the end of a header cell
_CELLS_BEFORE = "(?:[^\\n,]*,)*"  # header cells hold no comma, so this skips whole ones
_NOT_BLANK = "[\\s\\S]*\\S"  # then something that is not white space: a row


def _any_case(name: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name)


def _cell(*names: str) -> str:
    either = "|".join(_any_case(n) for n in names)
    return f'(?:{_SPACE}(?:{either}){_SPACE}|"{_SPACE}(?:{either}){_SPACE}")'


def _csv_schema(header: str, description: str) -> dict[str, Any]:
    """A CSV file whose first row is ``header`` (a pattern) and names external_id, then a row."""
    has_id = f"(?={_CELLS_BEFORE}{_cell('external_id')}{_END})"
    pattern = f"^\\ufeff?{has_id}{header}\\r?\\n{_NOT_BLANK}"
    return {"type": "string", "pattern": pattern, "description": description}


def _subjects_csv_schema(columns: tuple[str, ...]) -> dict[str, Any]:
    """:func:`subject_header`: known columns in any order, none twice, external_id among them."""
    once = "".join(
        f"(?!{_CELLS_BEFORE}{_cell(c)},{_CELLS_BEFORE}{_cell(c)}{_END})" for c in columns
    )
    return _csv_schema(
        f"{once}{_cell(*columns)}(?:,{_cell(*columns)})*",
        f"UTF-8 CSV; the first row names the columns: {', '.join(columns)} (external_id"
        " required; any order and case, none twice), then a row per person",
    )


SUBJECTS_CSV_SCHEMA = _subjects_csv_schema(SUBJECT_COLUMNS)
# list_header: a column external_id; the others are ignored (cells without commas).
_OTHER = '(?:[^\\n,"]*|"[^\\n,"]*")'
LIST_CSV_SCHEMA = _csv_schema(
    f"{_OTHER}(?:,{_OTHER})*",
    "UTF-8 CSV; the first row names the columns, external_id among them (the others are"
    " ignored), then a row per person",
)
NDJSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": "[^ \\t\\n\\r\\x0b\\x0c]",  # a line that is not blank (bytes.strip): a row
    "description": "one JSON object per line (blank lines are skipped); at least one",
}
