"""Taking back what an operation made when a later step fails (or Ctrl-C arrives)."""
from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from .errors import VpdError

log = logging.getLogger("vpd.undo")

# What an undo step may fail with when the thing it removes is already gone or its host
# stopped answering. Anything else (a bug) still propagates after the remaining steps ran.
UNDO_STEP_ERRORS: tuple[type[BaseException], ...] = (libvirt.libvirtError, OSError, VpdError,
                                                     subprocess.SubprocessError)


@dataclass
class UndoStep:
    description: str
    ok: bool | None = None  # None: not run (the operation succeeded)
    error: str | None = None


class Undo:
    """Record an undo step right after each thing is made; if the `with` body fails, the steps
    run newest first and the original error goes on. A step that fails in turn (the thing is
    already gone, its host is down) neither hides that error nor stops the older steps.
    Every step that ran is kept in `steps` with its outcome, for the journal and the report."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, Callable[[], object]]] = []
        self.steps: list[UndoStep] = []

    def push(self, step: Callable[[], object], description: str | None = None) -> None:
        self._pending.append((description or str(getattr(step, "__name__", "undo step")), step))

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._pending.clear()
            return
        self.run()

    def run(self) -> list[UndoStep]:
        """Run the pending steps newest first (idempotent: each step runs once)."""
        while self._pending:
            description, step = self._pending.pop()
            record = UndoStep(description)
            try:
                step()
                record.ok = True
            except UNDO_STEP_ERRORS as err:
                record.ok, record.error = False, str(err)
                log.warning("undo step %r failed: %s", description, err)
            self.steps.append(record)
        return self.steps
