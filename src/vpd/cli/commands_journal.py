"""`vpd journal`: what vpd did, newest first (read-only); `--as-script`: the same session as the
hand commands of what each operation called."""
from __future__ import annotations

import datetime
import re
import time

import click

from ..core import journal
from ..core.errors import UsageError
from ..ops import explain
from .command import command
from .main import cli
from .render import table

_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """`--since`: a duration back from now (90s, 30m, 2h, 1d) or a local date/time (ISO 8601)."""
    match = _DURATION.fullmatch(text)
    if match:
        return (now if now is not None else time.time()) - int(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"invalid --since {text!r}",
                         hint="a duration back from now (90s, 30m, 2h, 1d) or a date/time, e.g. '2026-12-04 19:00'") \
            from None


def as_script(rows: list[dict]) -> str:
    """Oldest first: each operation as a comment, then its hand commands."""
    lines = ["#!/bin/sh", "# vpd journal --as-script: the hand commands of what vpd called, oldest first.",
             "set -e"]
    for row in reversed(rows):
        when = datetime.datetime.fromtimestamp(row["started"]).strftime("%F %T")
        lines += ["", f"# [{row['id']}] {when} {row['operation']} {row['target'] or ''} ({row['status']})".rstrip()]
        commands = explain.script(row.get("steps") or [])
        lines += commands or ["# (nothing recorded: it changed nothing, or ran before vpd recorded its calls)"]
    return "\n".join(lines) + "\n"


def _render(result: list[dict] | dict) -> None:
    if isinstance(result, dict):
        click.echo(result["script"], nl=False)
        return
    rows = result
    table("journal", ["id", "started", "operation", "target", "status", "took"],
          [[r["id"], datetime.datetime.fromtimestamp(r["started"]).strftime("%F %T"), r["operation"], r["target"],
            r["status"], f"{r['finished'] - r['started']:.2f}s" if r["finished"] else None] for r in rows])


@command(cli, "journal", render=_render, bars=False, readonly=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--operation", help="Only operations starting with this, e.g. lab.")
@click.option("--since", help="Only operations started since: a duration (30m, 2h, 1d) or a date/time.")
@click.option("--as-script", "script", is_flag=True,
              help="Print a shell script of the hand commands (virsh, ssh ...) of what those operations called.")
def journal_cmd(session, limit: int, operation: str | None, since: str | None, script: bool):
    """What vpd did: every operation (with the objects it planned to make), newest first."""
    rows = journal.entries(limit, operation, since=parse_since(since) if since is not None else None, steps=script)
    if script:
        return {"script": as_script(rows), "operations": [r["id"] for r in rows]}
    return rows


