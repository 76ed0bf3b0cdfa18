"""``alimi subjects import FILE``: a file of people into the subject directory."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from alimi_cli import jobs
from alimi_cli.client import UPLOAD_TIMEOUT, Api
from alimi_cli.errors import CliError, Exit
from alimi_cli.options import common, session
from alimi_cli.output import add_row, table

CHUNK_BYTES = 64 * 1024
SHOWN_ERRORS = 20
TYPES = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
MEDIA_TYPES = {"csv": "text/csv", "ndjson": "application/x-ndjson"}


@click.group()
def subjects() -> None:
    """The subject directory: the people an incident may concern."""


@subjects.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--type",
    "kind",
    type=click.Choice(sorted(MEDIA_TYPES)),
    help="The file's format [default: from its extension, .csv, .ndjson or .jsonl].",
)
@click.option(
    "--encoding",
    type=click.Choice(["utf-8", "euc-kr"]),
    default="utf-8",
    show_default=True,
    help="A CSV file's encoding (euc-kr: as Korean spreadsheets export, CP949).",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the rejected rows (row,field,message) "
    "[default: FILE's name with .errors.csv, in the current directory].",
)
@common
def import_file(file: Path, kind: str | None, encoding: str, errors_path: Path | None) -> int:
    """Import people from FILE (CSV or NDJSON), upserting by external_id.

    CSV: a header row naming the columns (external_id, name, phone, locale,
    tags, kakao_reachable, channels; tags and channels separated by |).
    NDJSON: one JSON object per line, as POST /v1/subjects takes them.

    The file is uploaded (a progress bar), then the API imports it as a job,
    followed to its end (another bar). Every row that can be imported is; the
    others are listed with their row numbers (a CSV's header is row 1) and
    reasons, and written to the errors file. Exits 0 if every row was
    imported, 4 if some were rejected.
    """
    s = session()
    kind = kind or TYPES.get(file.suffix.lower())
    if kind is None:
        raise CliError(f"{file}: cannot tell its format from the name; pass --type csv or ndjson")
    if kind == "ndjson" and encoding != "utf-8":
        raise CliError("NDJSON is always UTF-8; --encoding is for CSV files")
    size = _size(file)
    media = MEDIA_TYPES[kind] + f"; charset={encoding}"
    with s.api() as api:
        with _progress(s.out.err, size) as (progress, task):

            def body() -> Iterator[bytes]:
                progress.reset(task, total=size)
                with file.open("rb") as f:
                    while chunk := f.read(CHUNK_BYTES):
                        progress.advance(task, len(chunk))
                        yield chunk

            job = api.request(
                "POST",
                "/v1/subjects/import",
                stream=body,
                headers={"Content-Type": media, "Content-Length": str(size)},
                timeout=UPLOAD_TIMEOUT,
            )
        answer = jobs.follow(api, job, s.out.err, label="importing")["result"]
        errors = _all_errors(api, answer) if answer.get("rejected") else []
    errors_file = None
    if errors:
        errors_file = errors_path or Path(f"{file.stem}.errors.csv")
        _write_errors(errors_file, errors)
        answer["errors_file"] = str(errors_file)
    s.out.result(answer, lambda console: _summary(console, file, answer, errors, errors_file))
    return Exit.PARTIAL if answer.get("rejected") else Exit.OK


def _size(file: Path) -> int:
    try:
        if not file.is_file():
            raise CliError(f"{file}: no such file" if not file.exists() else f"{file}: not a file")
        with file.open("rb"):
            pass
        return file.stat().st_size
    except PermissionError:
        raise CliError(f"{file}: not allowed to read it") from None


@contextlib.contextmanager
def _progress(console: Console, size: int) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar of the upload on standard error, shown only on a terminal."""
    bar = Progress(
        TextColumn("uploading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task("upload", total=size)
    with bar:
        yield bar, task


def _all_errors(api: Api, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rejected row the API kept: the answer's first ones, else its stored pages."""
    errors: list[dict[str, Any]] = list(answer.get("errors") or [])
    if not answer.get("errors_truncated"):
        return errors
    paged: list[dict[str, Any]] = []
    for page in range(1, int(answer.get("error_pages") or 0) + 1):
        paged.extend(api.get(f"/v1/imports/{answer['import_id']}/errors/{page}")["errors"])
    return paged or errors


def _write_errors(path: Path, errors: list[dict[str, Any]]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["row", "field", "message"])
            for e in errors:
                writer.writerow([e.get("row"), e.get("field") or "", e.get("message")])
    except OSError as exc:
        raise CliError(f"cannot write the rejected rows to {path}: {exc.strerror}") from None


def _summary(
    console: Console,
    file: Path,
    answer: dict[str, Any],
    errors: list[dict[str, Any]],
    errors_file: Path | None,
) -> None:
    console.print(
        f"{file.name}: {answer['rows']} rows, {answer['imported']} imported "
        f"({answer['inserted']} new, {answer['updated']} updated), "
        f"{answer['rejected']} rejected (import {answer['import_id']})",
        soft_wrap=True,
    )
    if not errors:
        return
    rejected = table("row", "field", "reason", title="Rejected rows")
    for e in errors[:SHOWN_ERRORS]:
        add_row(rejected, e.get("row"), e.get("field") or "(row)", e.get("message"))
    console.print(rejected)
    if len(errors) > SHOWN_ERRORS:
        console.print(f"… and {len(errors) - SHOWN_ERRORS} more errors")
    console.print(f"Every rejected row is listed in {errors_file}")
