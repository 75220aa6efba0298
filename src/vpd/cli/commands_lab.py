"""`vpd lab ...`: parse, call vpd.lab.operations, render."""
from __future__ import annotations

import click

from ..lab import control
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
def lab_up(session, count: int, link_rate: str, firewall: str):
    """Bring the lab up: hosts hosta, hostb, ... each with libvirtd, sshd and a firewall."""
    return lab_ops.up(session, count, link_rate, firewall)


@command(lab, "down", render=lambda r: say(f"lab down in {r['seconds']:.1f} s"))
@click.option("--force", is_flag=True, help="Also remove this lab network's links when no lab state owns them "
                                            "(leftovers of a crashed run).")
def lab_down(session, force: bool):
    """Tear the lab down: no namespace, process, mount or link is left."""
    return lab_ops.down(session, force)


@command(lab, "status", render=lambda r: _render_status(r), bars=False)
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
          ["host", "FQDN", "address", "powered", "virtlogd", "libvirtd", "sshd", "libvirt", "VMs running"],
          [[h["name"], h["fqdn"], h["address"], _yn(h["powered"]), *(_yn(v) for v in h["daemons"].values()),
            _yn(h["libvirt_reachable"]), h["vms_running"]] for h in report["hosts"]])


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"
