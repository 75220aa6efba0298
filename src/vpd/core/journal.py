"""The journal: every vpd operation, its arguments, outcome and notes, in SQLite.

Operations are recorded when they start, so a crash or Ctrl-C still leaves a
row (status 'running', shown as 'interrupted' once its process is gone). A row records its
PID and the process's start time, so a PID the kernel reuses is not taken for the same
process. A failed operation whose clean-up could not finish (its host's libvirtd died, a host
stopped answering) is 'unsettled'. `vpd recover` settles what a dead or unsettled operation
left and marks its row 'recovered'.
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
# Added after the first release, column -> its migration: what an operation is about to create,
# written before it acts, so a crash leaves a list of candidates for clean-up; the start time of
# its process (clock ticks since boot, /proc/PID/stat), so a reused PID does not pass for it.
_MIGRATIONS = {
    "objects": "ALTER TABLE operations ADD COLUMN objects TEXT NOT NULL DEFAULT '[]'",
    "pid_start": "ALTER TABLE operations ADD COLUMN pid_start INTEGER",
    # What it called (core/steps.py): libvirt calls and host commands, for --explain and --as-script.
    "steps": "ALTER TABLE operations ADD COLUMN steps TEXT NOT NULL DEFAULT '[]'",
}
# The recovery pass every mutating command runs first looks rows up by status: one indexed query.
_INDEX = "CREATE INDEX IF NOT EXISTS operations_status ON operations(status)"

RUNNING, OK, FAILED, INTERRUPTED, RECOVERED = "running", "ok", "failed", "interrupted", "recovered"
# Failed (or interrupted), and what it made could not all be taken back: recovery finishes it.
UNSETTLED = "unsettled"


def journal_path() -> Path:
    return state_dir() / "journal.sqlite"


def _connect() -> sqlite3.Connection:
    path = journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10)
    db.execute(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(operations)")}
    for column, statement in _MIGRATIONS.items():
        if column not in columns:
            db.execute(statement)
    db.execute(_INDEX)
    return db


@dataclass
class Entry:
    id: int
    operation: str
    notes: list[str] = field(default_factory=list)
    result: Any = None
    objects: list[dict] = field(default_factory=list)
    # Set by the operation layer when its clean-up after a failure could not finish.
    unsettled: bool = False
    steps: list[dict] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def plan(self, kind: str, name: str, host: str | None = None, **details: Any) -> None:
        """Record, before acting, an object this operation is about to create; written at once
        so it survives a crash of this process."""
        self.objects.append({"kind": kind, "name": name, "host": host, **details})
        with _connect() as db:
            db.execute("UPDATE operations SET objects=? WHERE id=?", (json.dumps(self.objects, default=str), self.id))


def process_start(pid: int | None = None) -> int | None:
    """When process `pid` (default: this one) started, in clock ticks since boot (field 22 of
    /proc/PID/stat); None where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid or os.getpid()}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None = None) -> bool:
    """Whether the process that wrote a row still runs: its PID exists and, when the row knows
    when it started, the process now holding that PID started then too (not a reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is None:
        return True
    now = process_start(pid)
    return now is None or now == started



_OWN_START: list[int | None] = []


def _own_start() -> int | None:
    if not _OWN_START:
        _OWN_START.append(process_start())
    return _OWN_START[0]


@contextmanager
def record(operation: str, target: str | None = None, **args: Any) -> Iterator[Entry]:
    """Record one operation. The body may set entry.result and add notes."""
    with _connect() as db:
        cur = db.execute(
            "INSERT INTO operations (started, pid, pid_start, operation, target, args, status) VALUES (?,?,?,?,?,?,?)",
            (time.time(), os.getpid(), _own_start(), operation, target, json.dumps(args, default=str), RUNNING),
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
        if error and entry.unsettled:
            status = UNSETTLED
        # A failed operation keeps what it had reported (a migration's preflight) next to the error.
        result = ({"error": error} | ({"report": entry.result} if entry.result is not None else {})) if error \
            else entry.result
        with _connect() as db:
            db.execute(
                "UPDATE operations SET finished=?, status=?, result=?, notes=?, steps=? WHERE id=?",
                (time.time(), status, json.dumps(result, default=str), json.dumps(entry.notes),
                 json.dumps(entry.steps, default=str), entry.id),
            )


_OPERATION_PREFIX = re.compile(r"[a-z][a-z0-9._-]{0,63}")


def check_operation_prefix(text: str) -> str:
    """An operation name or its start ('vm', 'vm.clone'), as the journal records them."""
    if not isinstance(text, str) or not _OPERATION_PREFIX.fullmatch(text):
        raise UsageError(f"invalid operation {text!r}", hint="an operation name or its start, e.g. vm or vm.clone")
    return text


def entries(limit: int = 50, operation: str | None = None, since: float | None = None,
            steps: bool = False) -> list[dict]:
    """Newest first. Rows left 'running' by a dead process are shown as 'interrupted'.
    `since`: only rows started then or later (a Unix time); `steps`: with what each called."""
    with _connect() as db:
        db.row_factory = sqlite3.Row
        query = "SELECT * FROM operations"
        where, params = [], []
        if operation is not None:
            # A literal prefix (LIKE would read '%' and '_' as wildcards).
            where.append("substr(operation, 1, ?) = ?")
            params += [len(check_operation_prefix(operation)), operation]
        if since is not None:
            where.append("started >= ?")
            params.append(since)
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
    out = []
    for row in rows:
        item = dict(row)
        item["args"] = json.loads(item["args"])
        item["result"] = json.loads(item["result"]) if item["result"] else None
        item["notes"] = json.loads(item["notes"])
        item["objects"] = json.loads(item.get("objects") or "[]")
        recorded = item.pop("steps", None)
        if steps:
            item["steps"] = json.loads(recorded or "[]")
        if item["status"] == RUNNING and not process_alive(item["pid"], item.get("pid_start")):
            item["status"] = INTERRUPTED
        out.append(item)
    return out


def dead_running() -> list[dict]:
    """What recovery settles: rows still 'running' whose process is gone (killed, crashed, the
    machine lost power), and 'unsettled' ones (failed, their clean-up unfinished). One indexed
    query; /proc is read only for the running rows it returns."""
    with _connect() as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM operations WHERE status IN (?, ?) ORDER BY id",
                          (RUNNING, UNSETTLED)).fetchall()
    out = []
    for row in rows:
        if row["status"] == RUNNING and process_alive(row["pid"], row["pid_start"]):
            continue
        item = dict(row)
        item.pop("steps", None)
        item["args"] = json.loads(item["args"])
        item["notes"] = json.loads(item["notes"])
        item["objects"] = json.loads(item.get("objects") or "[]")
        out.append(item)
    return out


def mark_recovered(entry_id: int, notes: list[str], by: int | None = None) -> bool:
    """Close a dead or unsettled operation's row as 'recovered', with what recovery did in its
    notes (an unsettled row keeps its error). False when it is no longer either (another vpd
    settled it meanwhile)."""
    with _connect() as db:
        row = db.execute("SELECT notes, status, result FROM operations WHERE id=? AND status IN (?, ?)",
                         (entry_id, RUNNING, UNSETTLED)).fetchone()
        if row is None:
            return False
        notes_before, status, result_before = row
        before = json.loads(result_before) if result_before else None
        error = before.get("error") if status == UNSETTLED and isinstance(before, dict) else None
        result = {"error": error or "its process died", "recovered_by": by}
        cur = db.execute("UPDATE operations SET finished=COALESCE(finished, ?), status=?, result=?, notes=? "
                         "WHERE id=? AND status=?", (time.time(), RECOVERED, json.dumps(result),
                                                     json.dumps(json.loads(notes_before) + notes), entry_id, status))
        return cur.rowcount == 1
