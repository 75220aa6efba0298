"""The journal: every vpd operation, its arguments, outcome and notes, in SQLite.

Operations are recorded when they start, so a crash or Ctrl-C still leaves a
row (status 'running' -> 'interrupted' on the next open if its process is gone).
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .paths import state_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    pid INTEGER NOT NULL,
    operation TEXT NOT NULL,
    target TEXT,
    args TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    notes TEXT NOT NULL DEFAULT '[]'
);
"""
# Added after the first release: what an operation is about to create, written before it acts,
# so a crash leaves a list of candidates for clean-up.
_MIGRATIONS = ("ALTER TABLE operations ADD COLUMN objects TEXT NOT NULL DEFAULT '[]'",)


def journal_path() -> Path:
    return state_dir() / "journal.sqlite"


def _connect() -> sqlite3.Connection:
    path = journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10)
    db.execute(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(operations)")}
    if "objects" not in columns:
        for statement in _MIGRATIONS:
            db.execute(statement)
    return db


@dataclass
class Entry:
    id: int
    operation: str
    notes: list[str] = field(default_factory=list)
    result: Any = None
    objects: list[dict] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def plan(self, kind: str, name: str, host: str | None = None, **details: Any) -> None:
        """Record, before acting, an object this operation is about to create; written at once
        so it survives a crash of this process."""
        self.objects.append({"kind": kind, "name": name, "host": host, **details})
        with _connect() as db:
            db.execute("UPDATE operations SET objects=? WHERE id=?", (json.dumps(self.objects, default=str), self.id))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def record(operation: str, target: str | None = None, **args: Any) -> Iterator[Entry]:
    """Record one operation. The body may set entry.result and add notes."""
    with _connect() as db:
        cur = db.execute(
            "INSERT INTO operations (started, pid, operation, target, args, status) VALUES (?,?,?,?,?,?)",
            (time.time(), os.getpid(), operation, target, json.dumps(args, default=str), "running"),
        )
        assert cur.lastrowid is not None  # an INSERT always sets it
        entry = Entry(id=cur.lastrowid, operation=operation)
    status, error = "ok", None
    try:
        yield entry
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
        raise
    except BaseException as exc:  # recorded, then re-raised untouched
        status, error = "failed", str(exc)
        raise
    finally:
        result = {"error": error} if error else entry.result
        with _connect() as db:
            db.execute(
                "UPDATE operations SET finished=?, status=?, result=?, notes=? WHERE id=?",
                (time.time(), status, json.dumps(result, default=str), json.dumps(entry.notes), entry.id),
            )


_OPERATION_PREFIX = re.compile(r"[a-z][a-z0-9._-]{0,63}")


def check_operation_prefix(text: str) -> str:
    """An operation name or its start ('vm', 'vm.clone'), as the journal records them."""
    if not isinstance(text, str) or not _OPERATION_PREFIX.fullmatch(text):
        raise UsageError(f"invalid operation {text!r}", hint="an operation name or its start, e.g. vm or vm.clone")
    return text


def entries(limit: int = 50, operation: str | None = None) -> list[dict]:
    """Newest first. Rows left 'running' by a dead process are shown as 'interrupted'."""
    with _connect() as db:
        db.row_factory = sqlite3.Row
        query = "SELECT * FROM operations"
        params: tuple = ()
        if operation is not None:
            # A literal prefix (LIKE would read '%' and '_' as wildcards).
            query += " WHERE substr(operation, 1, ?) = ?"
            params = (len(check_operation_prefix(operation)), operation)
        rows = db.execute(query + " ORDER BY id DESC LIMIT ?", params + (limit,)).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        item["args"] = json.loads(item["args"])
        item["result"] = json.loads(item["result"]) if item["result"] else None
        item["notes"] = json.loads(item["notes"])
        item["objects"] = json.loads(item.get("objects") or "[]")
        if item["status"] == "running" and not _pid_alive(item["pid"]):
            item["status"] = "interrupted"
        out.append(item)
    return out
