"""Following a job: long work the API answers with ``202`` and a URL, read until finished.

The API answers an import (and other long work) with the job and its URL;
:func:`follow` reads that URL every :data:`POLL_S` seconds until the job has
``succeeded`` or ``failed``, with a progress bar on standard error (only on a
terminal: pipes and logs get the result alone). A failed job's problem
document becomes an :class:`~alimi_cli.errors.ApiError`, exiting as the API's
own errors do: 1 when the job was refused (4xx), 3 when it failed (5xx,
including a job whose intake process stopped). Ctrl-C, or an API that stops
answering, ends the following, not the job: the message names its URL.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alimi_cli.client import Api
from alimi_cli.errors import ApiError, CliError, Exit

POLL_S = 0.5
FINISHED = ("succeeded", "failed")


def follow(api: Api, job: dict[str, Any], console: Console, *, label: str) -> dict[str, Any]:
    """The job once finished (its ``result`` is the work's answer); raises if it failed."""
    if not isinstance(job, dict) or "url" not in job or "state" not in job:
        raise CliError("the API answered 202 without a job to follow", code=Exit.UNAVAILABLE)
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task(label, total=_progress(job)[1])
    url = job["url"]
    try:
        with bar:
            while job["state"] not in FINISHED:
                api.wait(POLL_S)
                job = api.get(url)
                done, total = _progress(job)
                bar.update(task, completed=done, total=total)
    except KeyboardInterrupt:
        console.print(f"stopped following; the job goes on: GET {url}")
        raise
    except ApiError as exc:
        if exc.status >= 500:  # the API failed, not the job
            exc.hint = "; ".join(filter(None, (exc.hint, _goes_on(url))))
        raise
    except CliError as exc:  # the API went away: the job did not
        raise CliError(f"{exc.message}; {_goes_on(url)}", code=exc.code) from None
    if job["state"] == "failed":
        problem = _object(job.get("problem"))
        status = problem.get("status") if isinstance(problem.get("status"), int) else 500
        raise ApiError(status, {"title": "Job failed", **problem})
    return job


def _goes_on(url: str) -> str:
    return f"the job goes on: GET {url} says how it ends"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _progress(job: dict[str, Any]) -> tuple[int, int | None]:
    progress = _object(job.get("progress"))
    done = progress.get("done")
    total = progress.get("total")
    return (done if isinstance(done, int) else 0), (total if isinstance(total, int) else None)
