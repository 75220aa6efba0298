"""`vpd vm display NAME --open`: remote-viewer (virt-viewer's client) on this machine, showing a
VM's VNC or SPICE display through an SSH tunnel to the host's loopback, where vpd's displays
listen. The password goes to the viewer in a connection file (mode 0600, deleted once read), never
on a command line another local user could read in /proc.

Where remote-viewer is missing (or there is no graphical session), nothing is started: the result
says how to install it and gives the tunnel command to run by hand."""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import libvirt

from ..connect.ssh import tunnel_argv
from ..core.errors import UsageError, VpdError
from ..ops import Session
from .display import LOOPBACK, display_of
from .inventory import locate_vm

VIEWER_ENV = "VPD_REMOTE_VIEWER"
"""A client to start instead of remote-viewer, given the same connection file (a script that
checks the tunnel, for instance)."""
INSTALL_HINT = ("install virt-viewer, which has remote-viewer (Debian/Ubuntu: apt install virt-viewer; "
                "Fedora: dnf install virt-viewer), or use the tunnel above with any VNC/SPICE client")
TUNNEL_READY_S = 20.0


def find_viewer() -> str | None:
    return os.environ.get(VIEWER_ENV) or shutil.which("remote-viewer")


def connection_file(kind: str, address: str, port: int, password: str | None, title: str) -> str:
    """virt-viewer's connection file (the format of the .vv files oVirt and Proxmox hand out)."""
    lines = ["[virt-viewer]", f"type={kind}", f"host={address}", f"port={port}", f"title={title}",
             "delete-this-file=1"]
    if password:
        lines.append(f"password={password}")
    return "\n".join(lines) + "\n"


def _free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, tunnel: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if tunnel.poll() is not None:
            err = tunnel.stderr.read().decode(errors="replace").strip() if tunnel.stderr else ""
            raise VpdError(f"the SSH tunnel ended at once (exit {tunnel.returncode}): {err or 'no message'}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise VpdError(f"the SSH tunnel did not listen on 127.0.0.1:{port} within {TUNNEL_READY_S:g} s")


def open_display(session: Session, name: str, host_ref: str | None = None) -> dict:
    """Start the viewer on the VM's display and wait until it is closed; or, without a viewer,
    the tunnel to run by hand and how to install one."""
    vm = locate_vm(session, name, host_ref, True)
    xml = session.call(vm.host, lambda _c: vm.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
    shown = display_of(xml, vm.host, name)
    if shown["port"] is None:
        raise UsageError(f"VM {name} on {vm.host.name} is not running: its display is off",
                         hint=f"`vpd vm start {name}`")
    from ..xml.domain import Domain

    graphics = next(g for g in Domain.from_xml(xml).devices.graphics if g.type == shown["type"])
    viewer = find_viewer()
    graphical = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or VIEWER_ENV in os.environ
    result = {**shown, "opened": False, "viewer": viewer, "hint": None, "viewer_exit": None}
    if viewer is None or not graphical:
        result["reason"] = ("remote-viewer is not installed here" if viewer is None
                            else "no graphical session here (neither DISPLAY nor WAYLAND_DISPLAY is set)")
        result["hint"] = INSTALL_HINT if viewer is None else "run it where you have a desktop, or use the tunnel"
        return result
    tunnel = None
    address, port = shown["listen"], shown["port"]
    if shown["listen"] in LOOPBACK and not vm.host.is_local:
        address, port = "127.0.0.1", _free_local_port()
        argv = tunnel_argv(vm.host, port, "127.0.0.1", shown["port"])
        tunnel = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        result["tunnel"] = shlex.join(argv)
    elif shown["listen"] not in LOOPBACK:
        address = vm.host.address or vm.host.hostname or shown["listen"]
    try:
        if tunnel is not None:
            _wait_listening(port, tunnel, time.monotonic() + TUNNEL_READY_S)
        with tempfile.TemporaryDirectory(prefix="vpd-display-") as work:
            vv = Path(work) / f"{name}.vv"
            fd = os.open(vv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(connection_file(shown["type"], address, port, graphics.passwd, f"{name} on {vm.host.name}"))
            ran = subprocess.run([viewer, str(vv)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    finally:
        if tunnel is not None:
            tunnel.terminate()
            try:
                tunnel.wait(5)
            except subprocess.TimeoutExpired:
                tunnel.kill()
                tunnel.wait()
    result.update(opened=True, viewer_exit=ran.returncode, viewer_output=(ran.stdout + ran.stderr).strip()[-2000:])
    return result
