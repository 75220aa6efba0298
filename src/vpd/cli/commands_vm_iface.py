"""`vpd vm iface attach|detach|list`: a VM's network interfaces (its own module, attached to
the `vm` group, so the VM commands and these evolve apart)."""
from __future__ import annotations

import click

from ..core import journal
from ..network import ifaces
from ..network.hostnet import host_network
from ..vm.inventory import find_domain
from . import context
from .commands_vm import vm
from .main import handle_errors, json_option
from .render import console, emit_json, table


@vm.group("iface")
def iface() -> None:
    """A VM's network interfaces (attach-interface, detach-interface, domiflist)."""


_live = click.option("--live/--no-live", "live", default=None,
                     help="Change the running VM (default: if it runs).")
_config = click.option("--config/--no-config", "config", default=None,
                       help="Change its definition (default: if it is defined).")


def _macs_elsewhere(ctx, host, name) -> set[str]:
    """MACs of every other VM of every host: VMs migrate, and hosts share LANs."""
    conns = context.connections(ctx)
    taken: set[str] = set()
    for h in context.inventory(ctx).hosts:
        def collect(c, h=h):
            return {m for d in c.listAllDomains() if not (h.name == host.name and d.name() == name)
                    for m in macs_in_use_of(d)}
        taken |= conns.call(h, collect)
    return taken


def macs_in_use_of(dom) -> set[str]:
    from lxml import etree

    return {m.lower() for m in etree.fromstring(dom.XMLDesc(0).encode()).xpath("devices/interface/mac/@address")}


@iface.command("attach")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--network", help="A libvirt network of that host.")
@click.option("--bridge", help="A host bridge (e.g. made by `vpd host bridge create`).")
@click.option("--model", default="virtio", show_default=True, type=click.Choice(ifaces.NIC_MODELS))
@click.option("--mac", help="Unicast MAC, unique in the inventory (default: a new 52:54:00:xx:xx:xx).")
@_live
@_config
@json_option
@click.pass_context
@handle_errors
def iface_attach(ctx, name, host_name, network, bridge, model, mac, live, config, as_json) -> None:
    """Attach a NIC; the same MAC on the same source again is a no-op."""
    req = ifaces.AttachRequest(network=network, bridge=bridge, model=model, mac=mac, live=live, config=config)
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    dom = conns.call(host, lambda c: find_domain(c, host, name))
    taken = _macs_elsewhere(ctx, host, name)
    hostnet = host_network(host) if bridge else None
    with journal.record("vm.iface.attach", target=f"{host.name}/{name}", network=network, bridge=bridge,
                        model=model, mac=req.mac, live=live, config=config) as entry:
        result = conns.call(host, lambda c: ifaces.attach(c, host, dom, req, macs_elsewhere=taken, hostnet=hostnet))
        entry.result = result
    if as_json:
        emit_json(result)
    elif result["changed"]:
        console.print(f"{name} on {host.name}: NIC {result['mac']} ({result['model']}) attached to "
                      f"{result['type']} {result['source']}"
                      + (f" as {result['target']}" if result.get("target") else ""), highlight=False)
    else:
        console.print(f"{name} on {host.name}: NIC {result['mac']} is already on {result['type']} "
                      f"{result['source']}: nothing to do", highlight=False)


@iface.command("detach")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--mac", help="The NIC's MAC.")
@click.option("--network", help="The NIC on this network (if only one is).")
@click.option("--bridge", help="The NIC on this bridge (if only one is).")
@_live
@_config
@json_option
@click.pass_context
@handle_errors
def iface_detach(ctx, name, host_name, mac, network, bridge, live, config, as_json) -> None:
    """Detach a NIC (a running guest must acknowledge the unplug; vpd waits for it)."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record("vm.iface.detach", target=f"{host.name}/{name}", mac=mac, network=network, bridge=bridge,
                        live=live, config=config) as entry:
        dom = conns.call(host, lambda c: find_domain(c, host, name))
        result = conns.call(host, lambda c: ifaces.detach(dom, host, mac=mac, network=network, bridge=bridge,
                                                          live=live, config=config))
        entry.result = result
    if as_json:
        emit_json(result)
    else:
        console.print(f"{name} on {host.name}: NIC {result['mac']} detached from {result['type']} {result['source']}"
                      + (" (the guest has not released it yet)" if result["unplug_pending"] else ""), highlight=False)


@iface.command("list")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def iface_list(ctx, name, host_name, as_json) -> None:
    """The VM's NICs with their addresses (from DHCP leases, else the host's ARP table)."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    rows = conns.call(host, lambda c: ifaces.list_interfaces(find_domain(c, host, name), host))
    if as_json:
        emit_json({"vm": name, "host": host.name, "interfaces": rows})
        return
    table(f"interfaces of {name} on {host.name}", ["interface", "type", "source", "model", "MAC", "addresses"],
          [[r["interface"], r["type"], r["source"], r["model"], r["mac"], ", ".join(r["addresses"]) or None]
           for r in rows])
