"""Locks on the objects an operation touches, so two vpd processes on this machine never
clone into, migrate or delete the same VM at once.

Advisory `flock`s on files under the state directory: the kernel drops them when the
holder dies (even by SIGKILL), so a crash never leaves a stale lock. They guard against
vpd processes that share the state directory, not against other tools."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from pathlib import Path

from ..core import paths
from ..core.errors import UsageError


class Busy(UsageError):
    """Another vpd operation holds an object this one needs; this one changed nothing (exit 2)."""


def lock_dir() -> Path:
    return paths.state_dir() / "locks"


def _file_for(key: str) -> Path:
    # Keys hold user-given names, normally validated before; the mapping still keeps any key to
    # one short file name: a readable prefix and, when anything was replaced or cut, a digest
    # (so 'a b' and 'a_b' stay two locks and a 300-character name is no ENAMETOOLONG).
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)
    if safe != key or len(safe) > 120:
        safe = f"{safe[:100]}-{hashlib.sha256(key.encode(errors='surrogateescape')).hexdigest()[:16]}"
    return lock_dir() / (safe + ".lock")


class LockSet:
    """Holds exclusive locks on `keys` (taken in sorted order, so two operations needing the
    same pair never deadlock) until `release()`."""

    def __init__(self, keys: list[str], owner: dict, wait: float = 0.0):
        self.keys = sorted(set(keys))
        self.owner = owner
        self.wait = wait
        self._fds: list[int] = []

    def acquire(self) -> LockSet:
        lock_dir().mkdir(parents=True, exist_ok=True)
        try:
            for key in self.keys:
                self._fds.append(self._take(key))
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, key: str) -> int:
        path = _file_for(key)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_owner(fd)
                    os.close(fd)
                    raise Busy(f"{_describe(key)} is busy: {_describe_holder(holder)}",
                               hint="wait for it to finish (`vpd journal` shows it) and try again") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**self.owner, "since": time.time()}).encode(), 0)
        return fd

    def release(self) -> None:
        while self._fds:
            fd = self._fds.pop()
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing drops the flock


def _describe(key: str) -> str:
    kind, _, rest = key.partition(":")
    return f"{kind} {rest.replace(':', '/')}"


def _describe_holder(holder: dict) -> str:
    if not holder:
        return "another vpd process holds it"
    since = time.strftime("%H:%M:%S", time.localtime(holder["since"])) if holder.get("since") else "?"
    return (f"{holder.get('operation')} started by PID {holder.get('pid')} at {since} "
            f"(journal #{holder.get('journal_id')})")


def _read_owner(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def vm_key(name: str) -> str:
    """A VM is locked by name across the inventory: it may move between hosts mid-operation."""
    return f"vm:{name}"


def object_key(kind: str, host: str, name: str) -> str:
    return f"{kind}:{host}:{name}"


def host_key(host: str) -> str:
    return f"host:{host}"
