"""vpd's errors as HTTP answers, mapped like the CLI's exit codes: a wrong request (exit 2)
is a 4xx with the same message and hint, a failed operation (exit 1) a 500 with its report."""
from __future__ import annotations

from ..core.errors import NotFound, UsageError, VpdError
from ..ops.locks import Busy
from ..ops.results import jsonable


class HttpError(Exception):
    """An answer of the web layer itself (401, 403, ...), in the same shape as vpd's errors."""

    def __init__(self, status: int, message: str, hint: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.hint, self.headers = status, message, hint, headers


def status_for(exc: BaseException) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Busy):
        return 409
    if isinstance(exc, UsageError):
        return 400
    return 500


def error_body(exc: BaseException) -> dict:
    """{"error", "hint", "kind", "status"} plus "report" when the operation attached one."""
    if isinstance(exc, (VpdError, HttpError)):
        body = {"error": exc.message, "hint": exc.hint, "kind": type(exc).__name__}
    elif isinstance(exc, KeyboardInterrupt):
        body = {"error": "interrupted", "hint": None, "kind": "Interrupted"}
    else:  # a bug: say what it was rather than hide it
        body = {"error": f"internal error: {type(exc).__name__}: {exc}", "hint": "this is a vpd bug: report it",
                "kind": "InternalError"}
    body["status"] = status_for(exc)
    report = getattr(exc, "report", None)
    if report is not None:
        body["report"] = jsonable(report)
    return body
