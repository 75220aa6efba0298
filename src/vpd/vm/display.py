"""Where a VM's graphical display (VNC or SPICE) can be reached: the URI on the host's address
and, when the server listens only on the host's loopback (vpd's default), the SSH tunnel that
brings it to the user's machine. Pure: it reads a domain's XML and the host's inventory entry."""
from __future__ import annotations

from ..connect.inventory import Host
from ..core.errors import UsageError
from ..xml.domain import Domain

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def display_of(xml: str, host: Host, name: str) -> dict:
    """{type, listen, port, uri, local_uri, tunnel}; port is None while the VM is not running
    (libvirt picks one when it starts)."""
    domain = Domain.from_xml(xml)
    shown = [g for g in domain.devices.graphics if g.type in ("vnc", "spice")]
    if not shown:
        raise UsageError(f"VM {name} on {host.name} has no VNC or SPICE display",
                         hint="it is headless: `vpd vm console` attaches to its serial console")
    g = shown[0]
    listen = next((li.address for li in g.listens if li.address), None) or g.listen or "0.0.0.0"
    port = g.port if g.port is not None and g.port > 0 else None
    address = host.address or host.fqdn or host.name
    out = {"host": host.name, "vm": name, "type": g.type, "listen": listen, "port": port,
           "uri": None, "local_uri": None, "tunnel": None}
    if port is None:
        return out
    out["uri"] = f"{g.type}://{address}:{port}"
    if listen in LOOPBACK:
        target = f"{host.ssh_user}@{address}"
        ssh_port = f" -p {host.ssh_port}" if host.ssh_port != 22 else ""
        out["tunnel"] = f"ssh -N{ssh_port} -L {port}:127.0.0.1:{port} {target}"
        out["local_uri"] = f"{g.type}://127.0.0.1:{port}"
    return out
