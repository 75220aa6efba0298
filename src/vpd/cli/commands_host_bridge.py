"""`vpd host bridge create|delete`: a host bridge for guests to join the host's LAN."""
from __future__ import annotations

import click

from ..core import journal
from ..network import bridge as bridges
from . import context
from .commands_host import host
from .main import handle_errors, json_option
from .render import console, emit_json


@host.group("bridge")
def bridge() -> None:
    """Host bridges (NetworkManager where it runs, else iproute2), commit-confirmed."""


_force = click.option("--force-management", is_flag=True,
                      help="Allow changing the interface that carries the host's management address.")
_confirm = click.option("--confirm-timeout", type=click.FloatRange(5, 300), default=bridges.DEFAULT_CONFIRM_S,
                        show_default=True, help="Seconds after which the host undoes the change by itself "
                                                "unless vpd reached it again and confirmed.")


@bridge.command("create")
@click.argument("name")
@click.option("--iface", required=True, help="The host interface that becomes the bridge's port.")
@click.option("--host", "host_name", required=True)
@_force
@_confirm
@json_option
@click.pass_context
@handle_errors
def bridge_create(ctx, name, iface, host_name, force_management, confirm_timeout, as_json) -> None:
    """Make bridge NAME with IFACE as its port, moving IFACE's addresses and routes to it.
    The same bridge with the same port again is a no-op."""
    h = context.inventory(ctx).get(host_name)
    with journal.record("host.bridge.create", target=f"{h.name}/{name}", iface=iface,
                        force_management=force_management) as entry:
        result = bridges.create(h, name, iface, force_management=force_management, confirm_s=confirm_timeout)
        entry.result = result
    if as_json:
        emit_json(result)
    elif result["changed"]:
        console.print(f"bridge {name} on {h.name}: created with port {iface} ({result['backend']})"
                      + (f", moved {', '.join(result['moved_addresses'])}" if result.get("moved_addresses") else "")
                      + "; host answered, change confirmed", highlight=False)
    else:
        console.print(f"bridge {name} on {h.name} already has port {iface}: nothing to do", highlight=False)


@bridge.command("delete")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@_force
@_confirm
@json_option
@click.pass_context
@handle_errors
def bridge_delete(ctx, name, host_name, force_management, confirm_timeout, as_json) -> None:
    """Remove bridge NAME, giving its addresses and routes back to its port."""
    h = context.inventory(ctx).get(host_name)
    with journal.record("host.bridge.delete", target=f"{h.name}/{name}", force_management=force_management) as entry:
        result = bridges.delete(h, name, force_management=force_management, confirm_s=confirm_timeout)
        entry.result = result
    if as_json:
        emit_json(result)
    else:
        console.print(f"bridge {name} on {h.name}: removed" + (f", {result['iface']} has its addresses back"
                                                               if result.get("iface") else ""), highlight=False)
