"""The maintenance flag of each inventory host, kept in vpd's state (VPD_HOME/maintenance.json).

A host in maintenance takes no new guests from vpd: placement (`host/placement.py`) skips it,
`vpd migrate --to` it is refused, and `vpd vm create --host` it is refused (exit 2, with the
command that clears the flag). The flag is vpd's, not libvirt's: other tools (virsh) still see
the host as any other. `vpd host maintenance on|off` sets and clears it."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..core import paths
from ..core.errors import UsageError


def _path() -> Path:
    return paths.state_dir() / "maintenance.json"


def marked() -> dict[str, dict]:
    """Host name -> {"since": epoch seconds, "reason": text} of every host in maintenance."""
    try:
        data = json.loads(_path().read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def is_marked(host: str) -> bool:
    return host in marked()


def _write(data: dict[str, dict]) -> None:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


def mark(host: str, reason: str = "") -> dict:
    data = marked()
    data.setdefault(host, {"since": round(time.time(), 3), "reason": reason})
    _write(data)
    return data[host]


def clear(host: str) -> bool:
    """Clear the flag; whether it was set."""
    data = marked()
    was = data.pop(host, None) is not None
    if was:
        _write(data)
    return was


def refuse_new_guests(host: str, what: str = "a new VM") -> None:
    """UsageError (exit 2, nothing changed) when `host` is in maintenance."""
    if is_marked(host):
        raise UsageError(f"{host} is in maintenance: vpd places no {what} there",
                         hint=f"pick another host, or end it: vpd host maintenance off {host}")
