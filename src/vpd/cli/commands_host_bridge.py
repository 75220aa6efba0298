"""`vpd host bridge create|delete`: a host bridge for guests to join the host's LAN. Parse,
call vpd.network.operations, render."""
from __future__ import annotations

import click

from ..network import bridge as bridges
from ..network import operations as net_ops
from .command import command, say
from .commands_host import host


@host.group("bridge")
def bridge() -> None:
    """Host bridges (NetworkManager where it runs, else iproute2), commit-confirmed."""


_force = click.option("--force-management", is_flag=True,
                      help="Allow changing the interface that carries the host's management address.")
_confirm = click.option("--confirm-timeout", type=click.FloatRange(5, 300), default=bridges.DEFAULT_CONFIRM_S,
                        show_default=True, help="Seconds after which the host undoes the change by itself "
                                                "unless vpd reached it again and confirmed.")


def _render_created(r: dict) -> None:
    if r["changed"]:
        say(f"bridge {r['bridge']} on {r['host']}: created with port {r['iface']} ({r['backend']})"
            + (f", moved {', '.join(r['moved_addresses'])}" if r.get("moved_addresses") else "")
            + "; host answered, change confirmed")
    else:
        say(f"bridge {r['bridge']} on {r['host']} already has port {r['iface']}: nothing to do")


@command(bridge, "create", render=_render_created)
@click.argument("name")
@click.option("--iface", required=True, help="The host interface that becomes the bridge's port.")
@click.option("--host", "host_ref", required=True)
@_force
@_confirm
def bridge_create(session, name, iface, host_ref, force_management, confirm_timeout):
    """Make bridge NAME with IFACE as its port, moving IFACE's addresses and routes to it.
    The same bridge with the same port again is a no-op."""
    return net_ops.bridge_create(session, name, iface, host_ref, force_management=force_management,
                                 confirm_s=confirm_timeout)


@command(bridge, "delete", render=lambda r: say(
    f"bridge {r['bridge']} on {r['host']}: removed"
    + (f", {r['iface']} has its addresses back" if r.get("iface") else "")))
@click.argument("name")
@click.option("--host", "host_ref", required=True)
@_force
@_confirm
def bridge_delete(session, name, host_ref, force_management, confirm_timeout):
    """Remove bridge NAME, giving its addresses and routes back to its port."""
    return net_ops.bridge_delete(session, name, host_ref, force_management=force_management,
                                 confirm_s=confirm_timeout)
