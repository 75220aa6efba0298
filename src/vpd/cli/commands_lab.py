from __future__ import annotations

import time

import click

from ..core import journal
from ..core.names import parse_rate
from ..lab import control
from .main import cli, handle_errors, json_option
from .render import console, emit_json, progress, table


@cli.group()
def lab() -> None:
    """A lab of several real libvirt hosts on this machine."""


@lab.command("up")
@click.option("--hosts", "count", default=2, show_default=True, type=int, help="Number of hosts (1-8).")
@click.option("--link-rate", default="1gbit", show_default=True, help="Shape each host's link (tc), or 'none'.")
@click.option("--firewall", type=click.Choice(control.FIREWALLS), default="nftables", show_default=True,
              help="Each host's firewall (closed except SSH and libvirt): an nftables table, or firewalld.")
@json_option
@handle_errors
def lab_up(count: int, link_rate: str, firewall: str, as_json: bool) -> None:
    """Bring the lab up: hosts hosta, hostb, ... each with libvirtd, sshd and a firewall."""
    rate = parse_rate(link_rate)
    started = time.monotonic()
    with journal.record("lab.up", hosts=count, link_rate=link_rate, firewall=firewall) as entry, \
            progress(not as_json):
        control.up(count, rate, firewall)
        took = time.monotonic() - started
        entry.result = {"seconds": round(took, 2)}
    report = control.status()
    report["up_seconds"] = round(took, 2)
    if as_json:
        emit_json(report)
        return
    _print_status(report)
    console.print(f"lab up in {took:.1f} s; inventory {report['inventory']}")


@lab.command("down")
@click.option("--force", is_flag=True, help="Also remove this lab network's links when no lab state owns them "
                                            "(leftovers of a crashed run).")
@json_option
@handle_errors
def lab_down(force: bool, as_json: bool) -> None:
    """Tear the lab down: no namespace, process, mount or link is left."""
    started = time.monotonic()
    with journal.record("lab.down", force=force) as entry:
        control.down(force)
        took = time.monotonic() - started
        entry.result = {"seconds": round(took, 2)}
    if as_json:
        emit_json({"down": True, "seconds": round(took, 2)})
    else:
        console.print(f"lab down in {took:.1f} s")


@lab.command("status")
@json_option
@handle_errors
def lab_status(as_json: bool) -> None:
    """Each lab host: powered, daemons, libvirt reachable, running VMs."""
    report = control.status()
    if as_json:
        emit_json(report)
    else:
        _print_status(report)


@lab.command("host-down")
@click.argument("name")
@json_option
@handle_errors
def lab_host_down(name: str, as_json: bool) -> None:
    """Power a lab host off (all its processes stop at once)."""
    with journal.record("lab.host-down", target=name):
        control.host_down(name)
    emit_json({"host": name, "powered": False}) if as_json else console.print(f"{name} powered off")


@lab.command("host-up")
@click.argument("name")
@json_option
@handle_errors
def lab_host_up(name: str, as_json: bool) -> None:
    """Power a lab host back on."""
    with journal.record("lab.host-up", target=name):
        control.host_up(name)
    emit_json({"host": name, "powered": True}) if as_json else console.print(f"{name} powered on")


def _print_status(report: dict) -> None:
    rate = report["link_rate_bps"]
    table(f"lab (bridge {report['bridge']}, link {f'{rate / 1e6:g} Mbit/s' if rate else 'unshaped'}, "
          f"firewall {report['firewall']}, shared pool {report['shared_pool']} at {report['shared_path']})",
          ["host", "FQDN", "address", "powered", "virtlogd", "libvirtd", "sshd", "libvirt", "VMs running"],
          [[h["name"], h["fqdn"], h["address"], _yn(h["powered"]), *(_yn(v) for v in h["daemons"].values()),
            _yn(h["libvirt_reachable"]), h["vms_running"]] for h in report["hosts"]])


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"
