"""The lab's power switch: what an IPMI BMC or a switched PDU is to real hosts.

`vpd lab up` starts it on the machine; it listens on a unix socket that every lab
host sees at layout.PDU_MOUNT, and the fence agent inside hosts (host_bin/
fence_vpdlab) asks it to power a lab host off or on. Off and on are exactly
`vpd lab host-down` and `vpd lab host-up` (the host loses every process, its
addresses and its link; on boots it again), so fencing is a real power cut of a
lab host and can never reach anything else: only names of this lab's hosts are
accepted.

Protocol, one line each way: "list" | "status HOST" | "off HOST" | "on HOST" |
"reboot HOST"  ->  "ok ..." | "error MESSAGE".
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

from ..core.errors import VpdError
from . import control, layout

LOCK_WAIT_S = 120.0  # a `vpd lab` command may hold the lab lock while booting a host


def log(message: str) -> None:
    # Wall-clock time with milliseconds: bench/ha.py lines fences up with pacemaker's log.
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    print(f"{stamp} {message}", flush=True)


def _powered(name: str) -> bool:
    state = control.load_state()
    if state is None:
        raise VpdError("no lab")
    hs = state.host(name)
    return hs.powered and control.hostproc.alive(hs.holder_pid)


def handle(line: str) -> str:
    words = line.split()
    if words == ["list"]:
        state = control.load_state()
        return "ok " + " ".join(h.name for h in state.hosts) if state else "error no lab"
    if len(words) != 2 or words[0] not in ("status", "off", "on", "reboot"):
        return "error expected: list | status|off|on|reboot HOST"
    action, name = words
    try:
        powered = _powered(name)  # also refuses names that are not this lab's hosts
        if action == "status":
            return "ok " + ("on" if powered else "off")
        if action in ("off", "reboot") and powered:
            control.host_down(name, lock_wait=LOCK_WAIT_S)
        if action in ("on", "reboot") and not (powered and action == "on"):
            control.host_up(name, lock_wait=LOCK_WAIT_S)
        return "ok " + ("off" if action == "off" else "on")
    except VpdError as exc:
        return f"error {exc}"


def serve(lab_dir: Path) -> None:
    path = lab_dir / "pdu" / layout.PDU_SOCKET_NAME
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(8)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"listening on {path}")
    try:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                try:
                    line = conn.makefile().readline().strip()
                except OSError:
                    continue
                log(f"request: {line}")
                answer = handle(line)
                log(f"answer: {answer}")
                try:
                    conn.sendall(answer.encode() + b"\n")
                except OSError:
                    pass
    finally:
        path.unlink(missing_ok=True)


def main() -> None:
    serve(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
