"""Talking to a cluster: pcs on a member (argv, never a shell string), and
reading the cluster's state as the first member to answer sees it (crm_mon),
once or until a condition holds."""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from ..connect.inventory import Host, Inventory
from ..connect.ssh import CommandResult, runner_for
from ..core.errors import VpdError
from . import status as st
from . import store

STICKINESS = 100  # pcs sets none: without it a VM moves back when its old host rejoins


def run(host: Host, *args: str, input: str | None = None, timeout: float = 120.0,
        check: bool = True, secret: bool = False) -> CommandResult:
    """`pcs ARGS...` on the host (`secret`: its input is a password, never recorded)."""
    return runner_for(host, timeout).run(["pcs", *args], input=input, check=check, timeout=timeout, secret=secret)


def _ask(host: Host, cluster: str) -> st.ClusterStatus:
    out = runner_for(host, 30).run(st.CRM_MON, check=False, timeout=30)
    if out.ok and "<pacemaker-result" in out.stdout:
        parsed = st.parse(out.stdout, cluster, asked=host.name)
        if parsed.members:
            return parsed
    raise VpdError((out.stderr or out.stdout).strip()[:200] or f"crm_mon exit {out.returncode}")


def ask(host: Host, cluster: str = "") -> st.ClusterStatus:
    """The cluster as `host` sees it (crm_mon), whoever made it: vpd or pcs by hand."""
    return _ask(host, cluster)


def query(rec: store.ClusterRecord, inv: Inventory, timeout: float = 40.0) -> st.ClusterStatus:
    """The cluster as the first member to answer sees it. All are asked at once (daemon
    threads): a member that is down costs an SSH connect timeout, which must neither
    add up nor hold the command's exit."""
    hosts = [inv.get(n) for n in rec.hosts]
    answers: queue.Queue = queue.Queue()

    def ask(host: Host) -> None:
        try:
            answers.put((host.name, _ask(host, rec.name)))
        except VpdError as exc:
            answers.put((host.name, exc))

    for h in hosts:
        threading.Thread(target=ask, args=(h,), daemon=True).start()
    errors = []
    deadline = time.monotonic() + timeout
    for _ in hosts:
        try:
            name, answer = answers.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if isinstance(answer, st.ClusterStatus):
            return answer
        errors.append(f"{name}: {answer.message}")
    raise VpdError(f"no member of cluster {rec.name} answers: " + ("; ".join(sorted(errors)) or "timed out"),
                   hint="are the hosts up? `vpd cluster start HOST` after a host came back")


def wait_for(rec: store.ClusterRecord, inv: Inventory, predicate: Callable[[st.ClusterStatus], bool],
             timeout: float, what: str, interval: float = 1.0) -> st.ClusterStatus:
    deadline = time.monotonic() + timeout
    last: st.ClusterStatus | None = None
    while True:
        try:
            last = query(rec, inv)
            if predicate(last):
                return last
        except VpdError:
            pass
        if time.monotonic() > deadline:
            seen = ", ".join(f"{m.name} {m.state}" for m in last.members) if last else "no answer"
            raise VpdError(f"cluster {rec.name}: not {what} within {timeout:g} s ({seen})")
        time.sleep(interval)


def online_member(rec: store.ClusterRecord, inv: Inventory) -> tuple[Host, st.ClusterStatus]:
    """A member to run pcs on: the one that answered, online in the cluster."""
    s = query(rec, inv)
    return inv.get(s.asked), s
