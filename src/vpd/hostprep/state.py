"""What vpd changed on each host, kept under state_dir()/hostprep/ so that
`unprepare` can undo exactly that, plus local backups of the files it edits."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..core import paths


def state_root() -> Path:
    return paths.state_dir() / "hostprep"


def state_file(host_name: str) -> Path:
    # Host names are validated (vpd.core.names): safe as file names.
    return state_root() / f"{host_name}.json"


def records(host_name: str) -> list[dict]:
    try:
        return json.loads(state_file(host_name).read_text())["records"]
    except FileNotFoundError:
        return []


def set_records(host_name: str, recs: list[dict]) -> None:
    """Replace the host's records; none left removes its file."""
    path = state_file(host_name)
    if not recs:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"host": host_name, "records": recs}, indent=2))
    tmp.replace(path)


def add_record(host_name: str, record: dict) -> None:
    """Written right after each change, so a failure half-way still leaves a full account."""
    set_records(host_name, records(host_name) + [{**record, "at": time.time()}])


def backup(on: str, remote_path: str, content: str) -> Path:
    """Keep a copy of a file before vpd edits it (locally: lab hosts share /etc)."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
    path = state_root() / "backups" / f"{on}{remote_path.replace('/', '_')}.{stamp}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path
