"""`vpd lab ...`: parse, call vpd.lab.operations, render."""
from __future__ import annotations

import click

from ..lab import control, links
from ..lab import operations as lab_ops
from .command import command, say
from .main import cli
from .render import table


@cli.group()
def lab() -> None:
    """A lab of several real libvirt hosts on this machine."""


def _render_up(report: dict) -> None:
    _render_status(report)
    say(f"lab up in {report['up_seconds']:.1f} s; inventory {report['inventory']}")


@command(lab, "up", render=_render_up)
@click.option("--hosts", "count", default=2, show_default=True, type=int, help="Number of hosts (1-8).")
@click.option("--link-rate", default="1gbit", show_default=True, help="Shape each host's link (tc), or 'none'.")
@click.option("--firewall", type=click.Choice(control.FIREWALLS), default="nftables", show_default=True,
              help="Each host's firewall (closed except SSH and libvirt): an nftables table, or firewalld.")
@click.option("--links", "n_links", default=1, show_default=True, type=int,
              help=f"Links from each host to the lab LAN (1-{links.MAX_LINKS}): eth0, plus spare eth1.. "
                   "without addresses (for host bonds and bridges).")
def lab_up(session, count: int, link_rate: str, firewall: str, n_links: int):
    """Bring the lab up: hosts hosta, hostb, ... each with libvirtd, sshd and a firewall."""
    return lab_ops.up(session, count, link_rate, firewall, n_links)


def _render_link(r: dict) -> None:
    say(f"{r['host']}: {links.describe(r)}" + (f" (through {r['backend']})" if r.get("backend") else ""))


@command(lab, "link", render=_render_link)
@click.argument("name")
@click.argument("iface")
@click.argument("action", type=click.Choice(links.ACTIONS))
@click.argument("value", required=False)
def lab_link(session, name: str, iface: str, action: str, value: str | None):
    """Cut (down) or restore (up) a lab host's link IFACE (eth0, eth1...), or impair it:
    `loss 5%` (0-100), `delay 50` (ms, 0-10000), `clear` (no impairment, link up).
    Faults apply to what the link carries towards the host."""
    return lab_ops.link(session, name, iface, action, value)


@command(lab, "down", render=lambda r: say(f"lab down in {r['seconds']:.1f} s"))
@click.option("--force", is_flag=True, help="Also remove this lab network's links when no lab state owns them "
                                            "(leftovers of a crashed run).")
def lab_down(session, force: bool):
    """Tear the lab down: no namespace, process, mount or link is left."""
    return lab_ops.down(session, force)


@command(lab, "status", render=lambda r: _render_status(r), bars=False, readonly=True)
def lab_status(session):
    """Each lab host: powered, daemons, libvirt reachable, running VMs."""
    return lab_ops.status(session)


@command(lab, "host-down", render=lambda r: say(f"{r['host']} powered off"))
@click.argument("name")
def lab_host_down(session, name: str):
    """Power a lab host off (all its processes stop at once)."""
    return lab_ops.power(session, name, on=False)


@command(lab, "host-up", render=lambda r: say(f"{r['host']} powered on"))
@click.argument("name")
def lab_host_up(session, name: str):
    """Power a lab host back on."""
    return lab_ops.power(session, name, on=True)


def _render_status(report: dict) -> None:
    rate = report["link_rate_bps"]
    table(f"lab (bridge {report['bridge']}, link {f'{rate / 1e6:g} Mbit/s' if rate else 'unshaped'}, "
          f"firewall {report['firewall']}, shared pool {report['shared_pool']} at {report['shared_path']})",
          ["host", "FQDN", "address", "powered", "virtlogd", "libvirtd", "sshd", "libvirt", "VMs running", "links"],
          [[h["name"], h["fqdn"], h["address"], _yn(h["powered"]), *(_yn(v) for v in h["daemons"].values()),
            _yn(h["libvirt_reachable"]), h["vms_running"], ", ".join(links.describe(x) for x in h.get("links", []))]
           for h in report["hosts"]])


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"
