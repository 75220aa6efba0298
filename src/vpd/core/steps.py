"""What vpd actually called, recorded as it calls it: the source of `--explain` and of
`vpd journal --as-script`.

Each libvirt call that changes something (instrumented once in connect/libvirt_conn.py) and
each command run on a host (connect/ssh.py's Runner) appends one step, a plain dict:

    {"kind": "libvirt", "uri": ..., "call": "virConnect.storagePoolDefineXML", "object": {...}, "args": [...]}
    {"kind": "exec", "host": "hosta", "ssh": "root@198.18.5.2" | None, "argv": [...], "input": str | None}

A step goes to the running Operation's journal row (its `steps` column) and to every listener
(the CLI's --explain registers one, so a dry run, which opens no Operation, is seen too). The
hand commands are derived from the steps by ops/explain.py, never written a second time: a step
is recorded by the code that makes the call, right after the call returned (a dry run records
what it would call, marked `"dry_run": true`)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_sink: ContextVar[list[dict] | None] = ContextVar("vpd_steps_sink", default=None)
_listeners: list[list[dict]] = []
_lock = threading.Lock()


def active() -> bool:
    """Whether anyone records steps now (cheap: callers skip building a step otherwise)."""
    return _sink.get() is not None or bool(_listeners)


def record(step: dict[str, Any]) -> None:
    sink = _sink.get()
    if sink is not None:
        sink.append(step)
    with _lock:
        for listener in _listeners:
            if listener is not sink:
                listener.append(step)


@contextmanager
def into(sink: list[dict]) -> Iterator[list[dict]]:
    """Steps recorded in this context (an Operation's) go to `sink`."""
    token = _sink.set(sink)
    try:
        yield sink
    finally:
        try:
            _sink.reset(token)
        except ValueError:  # left from another context (a thread handed the operation on)
            _sink.set(None)


@contextmanager
def listening() -> Iterator[list[dict]]:
    """Every step recorded in this process while the context is open, in any thread."""
    seen: list[dict] = []
    with _lock:
        _listeners.append(seen)
    try:
        yield seen
    finally:
        with _lock:
            _listeners.remove(seen)
