"""`vpd journal`: what vpd did, newest first (read-only)."""
from __future__ import annotations

import datetime

import click

from ..core import journal
from .command import command
from .main import cli
from .render import table


def _render(rows: list[dict]) -> None:
    table("journal", ["id", "started", "operation", "target", "status", "took"],
          [[r["id"], datetime.datetime.fromtimestamp(r["started"]).strftime("%F %T"), r["operation"], r["target"],
            r["status"], f"{r['finished'] - r['started']:.2f}s" if r["finished"] else None] for r in rows])


@command(cli, "journal", render=_render, bars=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--operation", help="Only operations starting with this, e.g. lab.")
def journal_cmd(session, limit: int, operation: str | None):
    """What vpd did: every operation (with the objects it planned to make), newest first."""
    return journal.entries(limit, operation)
