"""`vpd host bond create|delete|status`: host bonds (Práctica 8). Parse, call
vpd.network.operations, render."""
from __future__ import annotations

import click

from ..network import bond as bonds
from ..network import bridge as bridges
from ..network import operations as net_ops
from .command import command, say
from .commands_host import host
from .render import table


@host.group("bond")
def bond() -> None:
    """Host bonds (NetworkManager where it runs, else iproute2), commit-confirmed."""


_host = click.option("--host", "host_ref", required=True)
_force = click.option("--force", is_flag=True,
                      help="Allow bonding (or removing a bond over) the interface with the host's management "
                           "address; rolled back by itself if the host stops answering.")
_confirm = click.option("--confirm-timeout", type=click.FloatRange(5, 300), default=bridges.DEFAULT_CONFIRM_S,
                        show_default=True, help="Seconds after which the host undoes the change by itself "
                                                "unless vpd reached it again and confirmed.")


def _render_created(r: dict) -> None:
    if r["changed"]:
        say(f"bond {r['bond']} on {r['host']}: {r['mode']} over {','.join(r['ports'])} (miimon {r['miimon']} ms, "
            f"{r['backend']})" + (f", moved {', '.join(r['moved_addresses'])}" if r.get("moved_addresses") else "")
            + "; host answered, change confirmed")
    else:
        say(f"bond {r['bond']} on {r['host']} already has ports {','.join(r['ports'])}: nothing to do")


@command(bond, "create", render=_render_created)
@click.argument("name")
@_host
@click.option("--mode", required=True, help="balance-rr, active-backup, balance-xor, broadcast, 802.3ad, "
                                            "balance-tlb, balance-alb (or 0-6).")
@click.option("--ports", required=True, help="Comma-separated interfaces, e.g. eth1,eth2.")
@click.option("--miimon", default=100, show_default=True, type=int, help="Link check interval (ms).")
@click.option("--primary", help="The preferred port (active-backup, balance-tlb, balance-alb).")
@click.option("--xmit-hash-policy", help="balance-xor, 802.3ad, balance-tlb: " + ", ".join(bonds.HASH_POLICIES))
@click.option("--lacp-rate", help="802.3ad: slow or fast.")
@_force
@_confirm
def bond_create(session, name, host_ref, mode, ports, miimon, primary, xmit_hash_policy, lacp_rate, force,
                confirm_timeout):
    """Make bond NAME of --ports in --mode; options are checked per mode before anything changes."""
    return net_ops.bond_create(session, name, host_ref, mode=mode, ports=ports, miimon=miimon, primary=primary,
                               xmit_hash_policy=xmit_hash_policy, lacp_rate=lacp_rate, force=force,
                               confirm_s=confirm_timeout)


@command(bond, "delete", render=lambda r: say(
    f"bond {r['bond']} on {r['host']}: removed, ports {','.join(r['ports']) or 'none'} freed"))
@click.argument("name")
@_host
@_force
@_confirm
def bond_delete(session, name, host_ref, force, confirm_timeout):
    """Remove bond NAME; its ports become plain interfaces again."""
    return net_ops.bond_delete(session, name, host_ref, force=force, confirm_s=confirm_timeout)


def _render_status(r: dict) -> None:
    table(f"bond {r['bond']} on {r['host']}: {r['mode']} ({'up' if r['up'] else 'down'}), active port "
          f"{r['active_port'] or '-'}, miimon {r['miimon']} ms",
          ["port", "MII status", "speed", "link failures", "permanent MAC", "active"],
          [[p["name"], p["mii_status"], p["speed"], p["link_failures"], p["permanent_mac"],
            "yes" if p["name"] == r["active_port"] else ""] for p in r["ports"]])


@command(bond, "status", render=_render_status, bars=False, readonly=True)
@click.argument("name")
@_host
def bond_status(session, name, host_ref):
    """Mode, active port, and each port's MII status and failure count (netlink and /proc/net/bonding)."""
    return net_ops.bond_status(session, name, host_ref)
