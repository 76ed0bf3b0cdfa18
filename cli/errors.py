"""Exit codes, and the errors that end a command with one of them.

Every way ``alimi`` can end is one of the codes below (cli/README.md lists
them); a command raises :class:`CliError` (or a subclass) and ``main`` prints
it on standard error and exits with its code. Nothing else exits.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Exit(IntEnum):
    OK = 0
    REFUSED = 1  # the API answered 4xx: the request was wrong or not allowed
    USAGE = 2  # bad arguments, configuration, or an unreadable or invalid file
    UNAVAILABLE = 3  # the API could not be reached, timed out or answered 5xx
    PARTIAL = 4  # done, but not everything succeeded (rejected rows, failed deliveries)
    TIMED_OUT = 5  # ``watch --timeout`` passed before the notices finished
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """Ends the command: ``message`` on standard error, then ``code``."""

    code = Exit.USAGE

    def __init__(self, message: str, *, code: Exit | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def lines(self) -> list[str]:
        return [f"error: {self.message}"]


class ApiError(CliError):
    """The API answered with an error status; ``problem`` is its RFC 9457 document."""

    def __init__(self, status: int, problem: dict[str, Any], *, hint: str = "") -> None:
        self.status = status
        self.problem = problem
        self.hint = hint
        code = Exit.REFUSED if status < 500 else Exit.UNAVAILABLE
        super().__init__(format_problem(status, problem)[0], code=code)

    def lines(self) -> list[str]:
        found = format_problem(self.status, self.problem)
        return found + ([f"  hint: {self.hint}"] if self.hint else [])


def format_problem(status: int, problem: dict[str, Any]) -> list[str]:
    """A problem document as lines a person reads: title, detail, then each field's error.

    ``problem`` may be anything the server sent (a proxy's HTML page is kept
    as its first characters under ``detail``); nothing in it is trusted to
    be of the right type.
    """
    title = str(problem.get("title") or _REASONS.get(status, "Error"))
    detail = str(problem.get("detail") or "").strip()
    lines = [f"error: {title} (HTTP {status})"]
    errors = problem.get("errors")
    listed = errors if isinstance(errors, list) else []
    # A detail that only repeats the field errors ("invalid fields: a, b") says nothing more.
    if detail and not (listed and all(_repeated_in(detail, e) for e in listed)):
        lines.append(f"  {detail}")
    for error in listed:
        field = error.get("field") if isinstance(error, dict) else None
        row = error.get("row") if isinstance(error, dict) else None
        where = " ".join(str(p) for p in (f"row {row}" if row else None, field) if p)
        lines.append(f"  - {where}: {_message(error)}" if where else f"  - {_message(error)}")
    return lines


def _repeated_in(detail: str, error: Any) -> bool:
    if not isinstance(error, dict):
        return str(error) in detail
    return str(error.get("field")) in detail or str(error.get("message")) in detail


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
