"""Progress events: long operations report here; the CLI draws bars, scripts subscribe."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    operation: str  # e.g. "lab.up"
    step: str  # human text of the current step
    done: float | None = None  # progress so far, in `unit`
    total: float | None = None
    unit: str = "steps"


Listener = Callable[[Event], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Add a listener; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def emit(operation: str, step: str, done: float | None = None, total: float | None = None, unit: str = "steps") -> None:
    event = Event(operation, step, done, total, unit)
    for listener in list(_listeners):
        listener(event)
