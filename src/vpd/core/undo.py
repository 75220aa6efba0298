"""Taking back what an operation made when a later step fails (or Ctrl-C arrives)."""
from __future__ import annotations

from collections.abc import Callable

import libvirt


class Undo:
    """Record an undo step right after each thing is made; if the `with` body fails, the steps
    run newest first and the original error goes on. A step that fails in turn (the thing is
    already gone) does not hide that error."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], object]] = []

    def push(self, step: Callable[[], object]) -> None:
        self._steps.append(step)

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            return
        for step in reversed(self._steps):
            try:
                step()
            except libvirt.libvirtError:
                pass
