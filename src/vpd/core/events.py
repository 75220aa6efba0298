"""Progress events: long operations report here; the CLI draws bars, scripts subscribe.

A front end that runs several requests in one process (the web API's jobs) tells them apart
with `scope`: every event emitted inside `with events.scope("job-id"):` carries that id, in
this thread and in threads started with a copy of its context (`contextvars.copy_context()`).
Outside a scope `Event.scope` is None and nothing changes for the CLI."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    operation: str  # e.g. "lab.up"
    step: str  # human text of the current step
    done: float | None = None  # progress so far, in `unit`
    total: float | None = None
    unit: str = "steps"
    scope: str | None = None  # the request (e.g. a web job id) whose work emitted it
    at: float = field(default_factory=time.time)  # when it was emitted (epoch seconds)
    # Structured fields for consumers that plot or decide (e.g. a migration's bytes remaining,
    # dirty rate, throughput); None for plain progress. Listeners must not change it.
    data: dict[str, Any] | None = None


Listener = Callable[[Event], None]
_listeners: list[Listener] = []
_scope: ContextVar[str | None] = ContextVar("vpd_events_scope", default=None)


def subscribe(listener: Listener) -> Callable[[], None]:
    """Add a listener; returns a function that removes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def emit(operation: str, step: str, done: float | None = None, total: float | None = None, unit: str = "steps",
         data: dict[str, Any] | None = None) -> None:
    event = Event(operation, step, done, total, unit, scope=_scope.get(), data=data)
    for listener in list(_listeners):
        listener(event)


@contextmanager
def scope(name: str) -> Iterator[None]:
    """Tag the events emitted by the body with `name` (nested scopes: the innermost wins)."""
    token = _scope.set(name)
    try:
        yield
    finally:
        _scope.reset(token)


def current_scope() -> str | None:
    return _scope.get()
