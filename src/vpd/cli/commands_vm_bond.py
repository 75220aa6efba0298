"""`vpd vm bond status`: a bond inside a guest (Práctica 8's /proc/net/bonding/bond0, read from
outside). Parse, call vpd.vm.operations, render."""
from __future__ import annotations

import click

from ..vm import operations as vm_ops
from .command import command, host_option
from .commands_vm import vm
from .render import table


@vm.group("bond")
def bond() -> None:
    """Bonds inside guests (made at `vm create ... --bond`)."""


def _render_status(r: dict) -> None:
    table(f"bond {r['bond']} in {r['vm']} on {r['host']}: {r['mode']}, active port {r['active_port'] or '-'}, "
          f"miimon {r['miimon']} ms (read through the {r['via']})",
          ["port", "MII status", "link failures", "permanent MAC", "rx packets", "tx packets", "active"],
          [[p["name"], p["mii_status"], p["link_failures"], p["permanent_mac"], p["rx_packets"], p["tx_packets"],
            "yes" if p["name"] == r["active_port"] else ""] for p in r["ports"]])


@command(bond, "status", render=_render_status, bars=False, readonly=True)
@click.argument("name")
@click.option("--bond", "bond_name", default="bond0", show_default=True, help="The bond's name in the guest.")
@host_option()
def bond_status(session, name, bond_name, host_ref):
    """The guest's bond as its kernel reports it (/proc/net/bonding/BOND and the ports' counters),
    through the lab guest's command channel or the QEMU guest agent."""
    return vm_ops.bond_status(session, name, bond_name, host_ref)
