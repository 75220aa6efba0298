"""Output: rich tables for people, JSON for scripts. Commands only pick one."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..core import events

console = Console()
err_console = Console(stderr=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """Cells and title are printed literally: names and libvirt's texts may hold brackets."""
    t = Table(title=Text(title) if title is not None else None, title_justify="left")
    for c in columns:
        t.add_column(Text(c))
    for row in rows:
        t.add_row(*(Text("-" if v is None else str(v)) for v in row))
    console.print(t, highlight=False)


@contextmanager
def progress(enabled: bool) -> Iterator[None]:
    """Draw a bar for every operation that emits progress events while the body runs."""
    if not enabled or not err_console.is_terminal:
        yield
        return
    bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[step]}"),
                    TimeElapsedColumn(), console=err_console, transient=True)
    tasks: dict[str, int] = {}

    def on_event(ev: events.Event) -> None:
        if ev.operation not in tasks:
            tasks[ev.operation] = bars.add_task(ev.operation, total=ev.total, step=ev.step)
        bars.update(tasks[ev.operation], completed=ev.done, total=ev.total, step=ev.step)

    unsubscribe = events.subscribe(on_event)
    with bars:
        try:
            yield
        finally:
            unsubscribe()
