"""The operation layer: what every front end (CLI, web API, scripts) runs a request through.

A `Session` resolves the inventory once and holds one libvirt connection per host; an
`Operation` wraps one mutating request: journal entry (with what it is about to create),
locks on the objects it touches, the undo stack, and progress events.
"""
from .operation import Operation, current, plan
from .session import Session, require_an_answer

__all__ = ["Operation", "Session", "current", "plan", "require_an_answer"]
