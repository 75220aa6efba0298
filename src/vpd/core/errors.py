"""Errors that carry their exit code and the fix, so every front end reports them alike."""
from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C), as shells report it
EXIT_TERMINATED = 143  # SIGTERM, as shells report it


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so undo steps and `finally` blocks run as they do
    for Ctrl-C (whose KeyboardInterrupt it extends) instead of the process ending on the spot."""


class VpdError(Exception):
    """An operation failed. `hint` tells the user what to do about it."""

    exit_code = EXIT_FAILED
    # What the operation did before it failed (a migration's preflight and job, each host's
    # prepare): front ends show it before the error. `reported`: already printed as JSON.
    report: Any = None
    reported: bool = False

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        return {"error": self.message, "hint": self.hint, "kind": type(self).__name__}

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(VpdError):
    """The request itself is wrong (bad name, unknown host, wrong order); nothing was changed."""

    exit_code = EXIT_USAGE


class NotFound(UsageError):
    """A named object (host, VM, pool) does not exist."""


class HostUnreachable(VpdError):
    """A host's libvirt could not be reached."""
