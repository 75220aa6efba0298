from __future__ import annotations

import datetime

import click

from ..core import journal
from .main import cli, handle_errors, json_option
from .render import emit_json, table


@cli.command("journal")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--operation", help="Only operations starting with this, e.g. lab.")
@json_option
@handle_errors
def journal_cmd(limit: int, operation: str | None, as_json: bool) -> None:
    """What vpd did: every operation, newest first."""
    rows = journal.entries(limit, operation)
    if as_json:
        emit_json(rows)
        return
    table("journal", ["id", "started", "operation", "target", "status", "took"],
          [[r["id"], datetime.datetime.fromtimestamp(r["started"]).strftime("%F %T"), r["operation"], r["target"],
            r["status"], f"{r['finished'] - r['started']:.2f}s" if r["finished"] else None] for r in rows])
