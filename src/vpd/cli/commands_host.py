from __future__ import annotations

import sys

import click

from ..connect.inventory import Host
from ..core.errors import EXIT_FAILED, UsageError
from ..host.facts import list_hosts
from ..hostprep.prepare import prepare, unprepare
from ..hostprep.report import HostPrepReport
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, table


@cli.group()
def host() -> None:
    """Hosts of the inventory."""


@host.command("list")
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@json_option
@click.pass_context
@handle_errors
def host_list(ctx: click.Context, names: tuple[str, ...], as_json: bool) -> None:
    """Each host: reachable, FQDN, libvirt/QEMU versions, CPU, memory, VMs, KVM or TCG."""
    inv = context.inventory(ctx)
    facts = list_hosts(context.connections(ctx), inv.select(list(names)))
    if as_json:
        emit_json({"inventory": inv.source, "hosts": [f.to_dict() for f in facts]})
        return
    table(f"hosts ({inv.source})",
          ["host", "reachable", "FQDN", "libvirt", "QEMU", "arch/CPU", "mem free/total MiB", "VMs run/all", "accel"],
          [[f.name, "yes" if f.reachable else "NO", f.fqdn, f.libvirt_version, f.qemu_version,
            f"{f.arch}/{f.cpu_model}" if f.reachable else None,
            f"{f.memory_free_mib}/{f.memory_total_mib}" if f.reachable else None,
            f"{f.vms_running}/{f.vms_total}" if f.reachable else None, f.accel] for f in facts])
    for f in facts:
        if not f.reachable:
            console.print(f"[red]{f.name}[/]: {f.error}", highlight=False)
        elif f.versions_ok is False:
            console.print(f"[yellow]{f.name}[/]: libvirt {f.libvirt_version} / QEMU {f.qemu_version} is older than "
                          "vpd needs (libvirt >= 11, QEMU >= 10: QEMU 7.2 corrupts guests migrated under TCG); "
                          "on Debian 12 install them from bookworm-backports (scripts/setup.sh does)")


def _hosts_named(ctx: click.Context, names: tuple[str, ...]) -> tuple[list[Host], list[Host]]:
    """The named hosts and the inventory they come from."""
    if len(set(names)) != len(names):
        raise UsageError("a host is named twice")
    inv = context.inventory(ctx)
    return inv.select(list(names)), inv.hosts


@host.command("prepare")
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Print the changes (the exact commands) and change nothing.")
@click.option("--set-fqdn", "fqdn_name", metavar="NAME",
              help="Rename the (one) host to this FQDN and add the /etc/hosts lines that are missing.")
@json_option
@click.pass_context
@handle_errors
def host_prepare(ctx: click.Context, names: tuple[str, ...], dry_run: bool, fqdn_name: str | None,
                 as_json: bool) -> None:
    """Make hosts ready for live migration between them.

    Checks that each host has a unique FQDN that every peer resolves, and opens
    SSH (22), libvirt (16509, 16514) and the migration ports (49152-49216/tcp)
    to the peer hosts only: the other hosts named, or with one host named, the
    rest of the inventory. firewalld where it runs, nftables otherwise."""
    hosts, everyone = _hosts_named(ctx, names)
    reports = prepare(hosts, hosts if len(hosts) > 1 else everyone, dry_run=dry_run, set_fqdn=fqdn_name)
    _finish(reports, as_json, "dry run: nothing was changed" if dry_run else "prepared")


@host.command("unprepare")
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@json_option
@click.pass_context
@handle_errors
def host_unprepare(ctx: click.Context, names: tuple[str, ...], as_json: bool) -> None:
    """Remove exactly what `vpd host prepare` added to these hosts, and nothing else."""
    hosts, _ = _hosts_named(ctx, names)
    _finish(unprepare(hosts), as_json, "unprepared")


def _finish(reports: list[HostPrepReport], as_json: bool, done: str) -> None:
    ok = all(r.ok for r in reports)
    if as_json:
        emit_json({"ok": ok, "hosts": [r.to_dict() for r in reports]})
    else:
        for r in reports:
            _print_report(r, done)
    if not ok:
        sys.exit(EXIT_FAILED)


def _print_report(r: HostPrepReport, done: str) -> None:
    heading = r.host + (f" (firewall: {r.backend})" if r.backend else "")
    if r.checks:
        table(f"{heading}: checks", ["check", "ok", "detail", "fix"],
              [[c.name, "yes" if c.ok else ("NO" if c.blocking else "warn"), c.detail, c.fix] for c in r.checks])
    if r.changes:
        table(f"{heading}: {'changes to make' if r.dry_run else 'changes made'}", ["#", "on", "change"],
              [[i, c.on.name, c.summary] for i, c in enumerate(r.changes, 1)])
        # The exact commands, unwrapped so they can be copied.
        for i, c in enumerate(r.changes, 1):
            for cmd in c.commands:
                console.print(f"  [{i}] $ {cmd.display()}", highlight=False, markup=False, soft_wrap=True)
    for note in r.notes:
        console.print(f"[dim]{r.host}: {note}[/]", highlight=False)
    if r.error:
        console.print(f"[bold red]{r.host}: error:[/] {r.error}", highlight=False)
    elif r.ok:
        console.print(f"{r.host}: {done}" + ("" if r.changes else " (no changes needed)"), highlight=False)
    else:
        console.print(f"[red]{r.host}: checks failed[/]", highlight=False)
