"""What a drain's migrations share: facts and checks about the hosts, not the guests.

A drain moves many guests between the same few hosts. Whether the source resolves the
destination's name, reaches its migration ports, logs in to it with the drain's key, sees the
same storage, and runs a libvirt and QEMU new enough is the same answer for every guest of one
host pair, so each is asked once per drain: the first migration that needs it asks, the others
running at once wait for that answer and reuse it. Each guest's own checks (no clash on the
destination, room there, its dirty rate, its probe before and after) stay per guest.

Thread-safe: a drain's workers call `once` concurrently."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

CANCEL_POLL_S = 0.2  # how soon a migration waiting for a job slot sees the drain interrupted


@dataclass
class _Slot:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    failed: bool = False


class SharedChecks:
    def __init__(self, dirty_mib_s: dict[str, float | None] | None = None, jobs_at_once: int | None = None) -> None:
        self._lock = threading.Lock()
        # The link's share: at most this many migration jobs at once (the drain's --parallel), while
        # more migrations run their checks and probes around them (None: no limit).
        self._job_slots = threading.BoundedSemaphore(jobs_at_once) if jobs_at_once else None
        self._slots: dict[tuple, _Slot] = {}
        # Measured once for all guests, at once (QEMU samples each for 1 s): name -> MiB/s.
        self.dirty_mib_s: dict[str, float | None] = dict(dirty_mib_s or {})
        self.asked: dict[tuple, int] = {}  # key -> how many migrations wanted it (reused = asked - 1)

    def once(self, key: tuple, compute: Callable[[], T]) -> T:
        """`compute()`'s value for `key`, computed by the first caller. A computation that raised
        is not kept: the next caller tries again (and gets its own error)."""
        while True:
            with self._lock:
                self.asked[key] = self.asked.get(key, 0) + 1
                slot = self._slots.get(key)
                mine = slot is None
                if slot is None:
                    slot = self._slots[key] = _Slot()
            if mine:
                try:
                    slot.value = compute()
                except BaseException:
                    with self._lock:
                        slot.failed = True
                        del self._slots[key]
                    raise
                finally:
                    slot.done.set()
                return slot.value
            slot.done.wait()
            if not slot.failed:
                return slot.value
            with self._lock:
                self.asked[key] -= 1  # counted again on the retry


    def job_slot(self, cancel: threading.Event | None = None) -> bool:
        """Wait for one of the link's job slots (True: taken, give it back with release_job_slot);
        False when `cancel` was set first (the drain was interrupted: start no job)."""
        if self._job_slots is None:
            return cancel is None or not cancel.is_set()
        while not self._job_slots.acquire(timeout=CANCEL_POLL_S):
            if cancel is not None and cancel.is_set():
                return False
        if cancel is not None and cancel.is_set():
            self._job_slots.release()
            return False
        return True

    def release_job_slot(self) -> None:
        if self._job_slots is not None:
            self._job_slots.release()


def once(shared: SharedChecks | None, key: tuple, compute: Callable[[], T]) -> T:
    """`compute()` itself outside a drain (a single `vpd migrate`), else shared."""
    return compute() if shared is None else shared.once(key, compute)
