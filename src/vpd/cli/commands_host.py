from __future__ import annotations

import click

from ..host.facts import list_hosts
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
