"""Where a VM's graphical display (VNC or SPICE) can be reached: the URI on the host's address
and, when the server listens only on the host's loopback (vpd's default), the SSH tunnel that
brings it to the user's machine. Pure: it reads a domain's XML and the host's inventory entry."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ..connect.inventory import Host
from ..core.errors import UsageError
from ..xml.domain import Domain

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def tunnel_argv(host: Host, address: str, port: int) -> list[str]:
    """`ssh -N -L` bringing the display's port to this machine, with the inventory's SSH port and
    identity file (without it ssh would offer only the user's default keys)."""
    argv = ["ssh", "-N"]
    if host.ssh_port != 22:
        argv += ["-p", str(host.ssh_port)]
    if host.ssh_identity:
        argv += ["-i", str(Path(host.ssh_identity).expanduser())]
    return [*argv, "-L", f"{port}:127.0.0.1:{port}", f"{host.ssh_user}@{address}"]


def display_of(xml: str, host: Host, name: str) -> dict:
    """{type, listen, port, uri, local_uri, tunnel (a shell line), tunnel_argv}; port is None while
    the VM is not running (libvirt picks one when it starts)."""
    domain = Domain.from_xml(xml)
    shown = [g for g in domain.devices.graphics if g.type in ("vnc", "spice")]
    if not shown:
        raise UsageError(f"VM {name} on {host.name} has no VNC or SPICE display",
                         hint="it is headless: `vpd vm console` attaches to its serial console")
    g = shown[0]
    listen = next((li.address for li in g.listens if li.address), None) or g.listen or "0.0.0.0"
    port = g.port if g.port is not None and g.port > 0 else None
    address = host.address or host.fqdn or host.name
    out: dict[str, Any] = {"host": host.name, "vm": name, "type": g.type, "listen": listen, "port": port,
                           "uri": None, "local_uri": None, "tunnel": None, "tunnel_argv": None}
    if port is None:
        return out
    out["uri"] = f"{g.type}://{address}:{port}"
    if listen in LOOPBACK:
        argv = tunnel_argv(host, address, port)
        out["tunnel"] = shlex.join(argv)  # a line to paste into a shell: every word quoted as needed
        out["tunnel_argv"] = argv
        out["local_uri"] = f"{g.type}://127.0.0.1:{port}"
    return out
