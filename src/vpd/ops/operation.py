"""One mutating request, run the same way from the CLI, the web API or a script.

    with Operation(session, "vm.clone", target="hosta/web1", locks=[vm_key("web1")], pool=p) as op:
        op.plan("volume", "web1.qcow2", host="hosta")   # journaled before it is made
        vol = make_volume(...)
        op.undo.push(vol.delete, "delete volume web1.qcow2")
        op.progress("copying", done, total, "bytes")
        op.result = {...}

On an exception (Ctrl-C included) the undo steps run newest first, the journal records the
failure and the steps that ran, the locks are released, and the exception goes on.

The running Operation is also the context's *current* one: capability code deep below the
operation function journals what it is about to make with `ops.plan(kind, name, host, ...)`
without being handed `op` (a no-op outside any Operation).

Before its journal row, an Operation runs the recovery pass (ops.recover.run_pass): when the
journal holds rows of dead vpd processes on hosts this request already talks to, what they left
is settled first, and expired grants are revoked. Without such rows it costs one indexed query."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar, Token
from typing import Any

from ..core import events, journal, steps
from ..core.undo import Undo
from .locks import LockSet
from .session import Session

_current: ContextVar[Operation | None] = ContextVar("vpd_current_operation", default=None)
# Set by a front end around a command it declared read-only (so without --explain): opening an
# Operation there is a bug in that declaration, caught by the fast tests that run the command.
_readonly: ContextVar[bool] = ContextVar("vpd_readonly_command", default=False)


@contextmanager
def readonly() -> Iterator[None]:
    token = _readonly.set(True)
    try:
        yield
    finally:
        _readonly.reset(token)


def current() -> Operation | None:
    """The Operation this code runs under, if any."""
    return _current.get()


def plan(kind: str, name: str, host: str | None = None, **details: Any) -> None:
    """Journal, in the current Operation, an object about to be created (nothing outside one)."""
    op = _current.get()
    if op is not None:
        op.plan(kind, name, host, **details)


class Operation:
    # session and name are positional-only, so a journaled argument may itself be called `name`.
    def __init__(self, session: Session, name: str, /, target: str | None = None, *,
                 locks: list[str] | tuple[str, ...] = (), lock_wait: float = 0.0, recover: bool = True,
                 **args: Any):
        self.session = session
        self.name = name
        self.target = target
        self.args = args
        self.undo = Undo()
        self.result: Any = None
        self._lock_keys = list(locks)
        self._lock_wait = lock_wait
        self._stack = ExitStack()
        self._recover = recover
        self._token: Token | None = None
        self.entry: journal.Entry | None = None

    @property
    def id(self) -> int | None:
        return self.entry.id if self.entry else None

    def __enter__(self) -> Operation:
        if _readonly.get():
            raise RuntimeError(f"operation {self.name} opened by a command declared read-only "
                               "(drop readonly=True from its @command: it then gets --explain)")
        if self._recover:
            from .recover import run_pass

            run_pass(self.session)
        with ExitStack() as stack:
            self.entry = stack.enter_context(journal.record(self.name, target=self.target, **self.args))
            if self._lock_keys:
                locks = LockSet(self._lock_keys, {"journal_id": self.entry.id, "operation": self.name,
                                                  "pid": os.getpid(), "target": self.target},
                                wait=self._lock_wait).acquire()
                stack.callback(locks.release)
            stack.enter_context(steps.into(self.entry.steps))  # what it calls, for --explain
            self._token = _current.set(self)
            stack.callback(self._leave)
            self._stack = stack.pop_all()
        return self

    def _leave(self) -> None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # left from another context (a thread handed the operation on)
                _current.set(None)
            self._token = None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.entry is not None:  # a failure's result is journaled too, as its report
                self.entry.result = self.result
            if exc_type is not None:
                for step in self.undo.run():
                    self.note(f"undo: {step.description}: " + ("done" if step.ok else f"failed: {step.error}"))
                self._settle_after_failure()
        finally:
            # Locks go first, then the journal entry closes with the outcome (the exception, if any).
            self._stack.__exit__(exc_type, exc, tb)

    def _settle_after_failure(self) -> None:
        """Undo takes back what it knows it made; what it could not see or reach (a libvirt job
        that runs on, a step that failed because the host's libvirtd died) is checked object by
        object with recovery's rules. What cannot be settled now leaves the row 'unsettled': the
        next command on its hosts, or `vpd recover`, finishes it."""
        if self.entry is None or not self.entry.objects:
            return
        from .recover import settle_failed

        try:
            report = settle_failed(self.session, self.entry)
        except Exception as exc:  # noqa: BLE001 - never hide the operation's own error
            self.note(f"check after failure: {exc}")
            self.entry.unsettled = True
            return
        for obj in report.objects:
            if obj.done is not None:
                self.note(obj.note().replace("recover:", "after failure:", 1))
        if report.pending:
            self.entry.unsettled = True
            self.note(f"unsettled: {report.pending}; the next vpd command on its hosts, or `vpd recover`, finishes it")
            self.session.notice(f"journal #{self.entry.id}: not everything could be taken back ({report.pending}); "
                                "run `vpd recover` once the host answers")

    # --- what the body reports ---------------------------------------------------------

    def plan(self, kind: str, name: str, host: str | None = None, **details: Any) -> None:
        """Journal an object this operation is about to create, before creating it."""
        assert self.entry is not None, "plan() inside the with block"
        self.entry.plan(kind, name, host, **details)

    def note(self, text: str) -> None:
        if self.entry is not None:
            self.entry.note(text)

    def progress(self, step: str, done: float | None = None, total: float | None = None, unit: str = "steps") -> None:
        events.emit(self.name, step, done, total, unit)
