"""The lab's commands as front ends run them: each change is an Operation (journal entry
lab.up, lab.down, lab.host-down, lab.host-up) around lab.control, which keeps its own lab
lock; status is read-only."""
from __future__ import annotations

import time

from ..core.names import parse_rate
from ..ops import Operation, Session
from . import control, links


def up(session: Session, count: int = 2, link_rate: str = "1gbit", firewall: str = "nftables",
       n_links: int = 1) -> dict:
    """Bring the lab up; the lab's status with how long it took (`up_seconds`)."""
    rate = parse_rate(link_rate)
    links.check_links(n_links)
    started = time.monotonic()
    with Operation(session, "lab.up", hosts=count, link_rate=link_rate, firewall=firewall, links=n_links) as op:
        control.up(count, rate, firewall, n_links)
        op.result = {"seconds": round(time.monotonic() - started, 2)}
    return {**control.status(), "up_seconds": op.result["seconds"]}


def down(session: Session, force: bool = False) -> dict:
    started = time.monotonic()
    with Operation(session, "lab.down", force=force) as op:
        control.down(force)
        op.result = {"seconds": round(time.monotonic() - started, 2)}
    return {"down": True, "seconds": op.result["seconds"]}


def status(session: Session) -> dict:
    return control.status()


def power(session: Session, name: str, on: bool) -> dict:
    """Power a lab host off (all its processes stop at once) or back on."""
    with Operation(session, "lab.host-up" if on else "lab.host-down", target=name) as op:
        (control.host_up if on else control.host_down)(name)
        op.result = {"host": name, "powered": on}
    return op.result


def link(session: Session, name: str, iface: str, action: str, value: str | None = None) -> dict:
    """Cut (down), restore (up) or impair (loss P%, delay MS) a lab host's link; clear undoes all."""
    change = links.parse_change(action, value)
    links.link_index(iface)
    with Operation(session, "lab.link", target=f"{name}/{iface}", action=action, value=value) as op:
        op.result = control.link(name, iface, change)
    return op.result
