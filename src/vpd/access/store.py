"""The grant store: one JSON file under state_dir()/access/, changed under a lock.

The lock is held for the whole of a grant or revoke, remote edits included, so
two vpd processes on this machine never edit one authorized_keys at once (a
read-modify-write over SSH cannot be made atomic on the far side).
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core import paths

# Revoked grants stay listed a while so `revoke` can tell "already revoked" from
# "unknown"; the journal keeps the full history after that.
KEEP_REVOKED_SECONDS = 30 * 86400


def access_dir() -> Path:
    return paths.state_dir() / "access"


def keys_dir() -> Path:
    """Local copies of grant key pairs (private: mode 700)."""
    d = access_dir() / "keys"
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    return d


def _store_path() -> Path:
    return access_dir() / "grants.json"


def load() -> dict[str, dict]:
    """A snapshot of every grant record, by id."""
    try:
        return json.loads(_store_path().read_text())["grants"]
    except FileNotFoundError:
        return {}


@contextmanager
def transaction() -> Iterator[dict[str, dict]]:
    """Records by id, locked; whatever the body leaves is written back atomically,
    also when it raises (a half-done grant must stay recorded to be cleaned up)."""
    access_dir().mkdir(parents=True, exist_ok=True)
    with open(access_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        grants = load()
        try:
            yield grants
        finally:
            write(grants)


def write(grants: dict[str, dict]) -> None:
    """Replace the file atomically (inside transaction(), which holds the lock)."""
    cutoff = time.time() - KEEP_REVOKED_SECONDS
    kept = {gid: g for gid, g in grants.items()
            if not (g["state"] == "revoked" and (g.get("revoked_at") or 0) < cutoff)}
    tmp = _store_path().with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"grants": kept}, indent=2, sort_keys=True))
    tmp.replace(_store_path())
