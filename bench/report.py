"""docs/benchmarks.md holds one section per benchmark; each bench replaces only its own
section (between markers), so running one never erases another's figures."""
from __future__ import annotations

import re
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TITLE = "# Benchmarks\n\nFigures measured on the project's machine by the scripts in `bench/` (run on demand).\n"


def write_section(name: str, text: str, path: Path = DEFAULT) -> None:
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    current = path.read_text() if path.exists() else TITLE
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current)
    else:
        updated = current.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated)
