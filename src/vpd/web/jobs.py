"""Background jobs: every mutating API call runs its operation in a worker thread and answers
202 with the job's id at once. A job keeps its state, result or error, and the progress events
its work emitted (tagged with its id through `core.events.scope`), which the API streams."""
from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core import events
from .errors import error_body

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"


@dataclass
class Job:
    id: str
    kind: str  # e.g. "vm.start", "migrate"
    target: str
    user: str  # the token id that asked for it
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: dict | None = None  # {"error", "hint", "kind", "status", "report"?}
    events: list[events.Event] = field(default_factory=list)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> bool:
        return self.state in (SUCCEEDED, FAILED)

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "target": self.target, "user": self.user, "state": self.state,
                "created": self.created, "started": self.started, "finished": self.finished,
                "result": self.result, "error": self.error, "events": len(self.events)}

    # --- waking the event streams (asyncio) from worker threads -------------------------

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # that loop is closed: its stream is gone
                pass

    def watch(self) -> asyncio.Event:
        """An asyncio.Event set whenever the job changes (call in the stream's loop)."""
        flag = asyncio.Event()
        with self._lock:
            self._waiters.append((asyncio.get_running_loop(), flag))
        return flag

    def unwatch(self, flag: asyncio.Event) -> None:
        with self._lock:
            self._waiters = [(lp, f) for lp, f in self._waiters if f is not flag]


class Jobs:
    """The jobs of one web server (kept in memory: the journal keeps the lasting record)."""

    def __init__(self, workers: int = 4, keep: int = 200):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vpd-job")
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._keep = keep
        self._lock = threading.Lock()
        self._unsubscribe = events.subscribe(self._on_event)

    def _on_event(self, event: events.Event) -> None:
        job = self._jobs.get(event.scope) if event.scope else None
        if job is not None:
            job.events.append(event)
            job._wake()

    def submit(self, kind: str, target: str, user: str, fn: Callable[[], Any]) -> Job:
        with self._lock:
            job = Job(f"{int(time.time())}-{next(self._ids)}", kind, target, user)
            self._jobs[job.id] = job
            finished = [j for j in self._jobs.values() if j.done]
            for old in finished[: max(0, len(self._jobs) - self._keep)]:
                del self._jobs[old.id]
        ctx = contextvars.copy_context()
        self._pool.submit(ctx.run, self._run, job, fn)
        return job

    def _run(self, job: Job, fn: Callable[[], Any]) -> None:
        job.state, job.started = RUNNING, time.time()
        job._wake()
        with events.scope(job.id):
            try:
                job.result = fn()
                job.state = SUCCEEDED
            except BaseException as exc:  # noqa: BLE001 - a job records every failure
                job.error = error_body(exc)
                job.state = FAILED
        job.finished = time.time()
        job._wake()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def wait(self, job_id: str, timeout: float = 30.0) -> Job:
        """Block until the job is done (tests and scripts)."""
        deadline = time.monotonic() + timeout
        job = self._jobs[job_id]
        while not job.done and time.monotonic() < deadline:
            time.sleep(0.01)
        return job

    def close(self) -> None:
        self._unsubscribe()
        self._pool.shutdown(wait=False, cancel_futures=True)
