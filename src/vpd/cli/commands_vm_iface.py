"""`vpd vm iface attach|detach|list`: a VM's network interfaces (its own module, attached to
the `vm` group, so the VM commands and these evolve apart). Parse, call vpd.vm.devices, render."""
from __future__ import annotations

import click

from ..network.ifaces import NIC_MODELS
from ..vm import devices
from .command import command, host_option, say
from .commands_vm import vm
from .render import table


@vm.group("iface")
def iface() -> None:
    """A VM's network interfaces (attach-interface, detach-interface, domiflist)."""


_live = click.option("--live/--no-live", "live", default=None,
                     help="Change the running VM (default: if it runs).")
_config = click.option("--config/--no-config", "config", default=None,
                       help="Change its definition (default: if it is defined).")


def _render_attached(r: dict) -> None:
    if r["changed"]:
        say(f"{r['vm']} on {r['host']}: NIC {r['mac']} ({r['model']}) attached to {r['type']} {r['source']}"
            + (f" as {r['target']}" if r.get("target") else ""))
    else:
        say(f"{r['vm']} on {r['host']}: NIC {r['mac']} is already on {r['type']} {r['source']}: nothing to do")


@command(iface, "attach", render=_render_attached)
@click.argument("name")
@host_option()
@click.option("--network", help="A libvirt network of that host.")
@click.option("--bridge", help="A host bridge (e.g. made by `vpd host bridge create`).")
@click.option("--model", default="virtio", show_default=True, type=click.Choice(NIC_MODELS))
@click.option("--mac", help="Unicast MAC, unique in the inventory (default: a new 52:54:00:xx:xx:xx).")
@_live
@_config
def iface_attach(session, name, host_ref, network, bridge, model, mac, live, config):
    """Attach a NIC; the same MAC on the same source again is a no-op."""
    return devices.iface_attach(session, name, host_ref, network=network, bridge=bridge, model=model, mac=mac,
                                live=live, config=config)


@command(iface, "detach", render=lambda r: say(
    f"{r['vm']} on {r['host']}: NIC {r['mac']} detached from {r['type']} {r['source']}"
    + (" (the guest has not released it yet)" if r["unplug_pending"] else "")))
@click.argument("name")
@host_option()
@click.option("--mac", help="The NIC's MAC.")
@click.option("--network", help="The NIC on this network (if only one is).")
@click.option("--bridge", help="The NIC on this bridge (if only one is).")
@_live
@_config
def iface_detach(session, name, host_ref, mac, network, bridge, live, config):
    """Detach a NIC (a running guest must acknowledge the unplug; vpd waits for it)."""
    return devices.iface_detach(session, name, host_ref, mac=mac, network=network, bridge=bridge, live=live,
                                config=config)


def _render_link(r: dict) -> None:
    say(f"{r['vm']} on {r['host']}: NIC {r['mac']} link {r['state']}"
        + ("" if r["changed"] else " already: nothing to do"))


@command(iface, "link", render=_render_link)
@click.argument("name")
@click.argument("iface_ref", metavar="MAC|DEV")
@click.argument("state", type=click.Choice(["up", "down"]))
@host_option()
@_live
@_config
def iface_link(session, name, iface_ref, state, host_ref, live, config):
    """Plug (up) or unplug (down) a NIC's virtual cable, as virsh domif-setlink: the guest sees
    the carrier change. The NIC is named by its MAC or its host-side device (vnet0)."""
    return devices.iface_link(session, name, iface_ref, state, host_ref, live=live, config=config)


def _render_list(r: dict) -> None:
    table(f"interfaces of {r['vm']} on {r['host']}",
          ["interface", "type", "source", "model", "MAC", "link", "addresses"],
          [[x["interface"], x["type"], x["source"], x["model"], x["mac"], x["link"], ", ".join(x["addresses"]) or None]
           for x in r["interfaces"]])


@command(iface, "list", render=_render_list, bars=False, readonly=True)
@click.argument("name")
@host_option()
def iface_list(session, name, host_ref):
    """The VM's NICs with their addresses (from DHCP leases, else the host's ARP table)."""
    return devices.iface_list(session, name, host_ref)
