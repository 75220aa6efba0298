"""`vpd backup [create] VM --to DIR`, `vpd backup list|verify`, `vpd restore BACKUP`."""
from __future__ import annotations

import click

from ..backup import catalog
from ..backup.create import backup_vm
from ..backup.restore import restore_backup
from ..connect.hostfiles import HostFiles
from ..core import journal
from ..core.errors import VpdError
from ..vm import lifecycle
from ..vm.inventory import find_domain
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, progress, table


class DefaultCommandGroup(click.Group):
    """`vpd backup VM ...` means `vpd backup create VM ...`: the common case reads like the seed's verb."""

    default_command = "create"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=DefaultCommandGroup)
def backup() -> None:
    """Backups of VMs: `vpd backup VM --host H --to DIR [--incremental]`, list, verify."""


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@backup.command("create")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--to", "root", required=True, help="Directory on the VM's host; backups go to DIR/VM/ID/.")
@click.option("--incremental", is_flag=True,
              help="Copy only the blocks written since the last backup in DIR (running guests, qcow2 disks).")
@json_option
@click.pass_context
@handle_errors
def backup_create(ctx, name, host_name, root, incremental, as_json) -> None:
    """Back up a running or stopped VM: its XML, its disks (qcow2) and a manifest with checksums."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record("backup.create", target=f"{host.name}/{name}", to=root, incremental=incremental) as entry, \
            progress(not as_json):
        m = conns.call(host, lambda c: backup_vm(c, host, name, root, incremental))
        entry.result = {"id": m.id, "kind": m.kind, "bytes": m.total_bytes, "seconds": m.seconds}
    where = f"{root.rstrip('/')}/{name}/{m.id}"
    if as_json:
        emit_json({"path": where, **m.model_dump(), "total_bytes": m.total_bytes})
    else:
        console.print(f"{m.kind} backup of {name} ({m.method}, guest {m.guest_state}) in {where}: "
                      f"{_mib(m.total_bytes)} in {m.seconds} s" + (f", on top of {m.parent}" if m.parent else ""),
                      highlight=False)


@backup.command("list")
@click.argument("root")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def backup_list(ctx, root, host_name, as_json) -> None:
    """Finished backups under DIR on a host."""
    host = context.inventory(ctx).get(host_name)
    found = catalog.list_backups(HostFiles(host), root)
    if as_json:
        emit_json({"host": host.name, "backups": [{"path": p, **m.model_dump(), "total_bytes": m.total_bytes}
                                                  for p, m in found]})
        return
    table(f"backups in {root} on {host.name}", ["VM", "id", "kind", "parent", "guest", "disks", "size", "path"],
          [[m.vm, m.id, m.kind, m.parent or "-", m.guest_state, len(m.disks), _mib(m.total_bytes), p]
           for p, m in found])


@backup.command("verify")
@click.argument("backup_path", metavar="BACKUP")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def backup_verify(ctx, backup_path, host_name, as_json) -> None:
    """Recompute the checksums of a backup and of every backup it builds on."""
    host = context.inventory(ctx).get(host_name)
    with journal.record("backup.verify", target=f"{host.name}:{backup_path}") as entry:
        result = catalog.verify(HostFiles(host), backup_path)
        entry.result = result.to_dict()
        if as_json:
            emit_json(result.to_dict())
        else:
            for f in result.files:
                console.print(f"{'[green]ok[/]' if f.ok else '[red]BAD[/]'}  {f.path}"
                              + ("" if f.ok else "  (missing)" if f.actual is None else "  (checksum differs)"),
                              highlight=False)
        if not result.ok:
            error = VpdError(f"backup {result.backup} is damaged",
                             hint="restore an older backup; this one cannot be trusted")
            error.reported = as_json
            raise error
    if not as_json:
        console.print(f"backup {result.backup} is intact (chain {' -> '.join(result.chain)})", highlight=False)


@cli.command("restore")
@click.argument("backup_path", metavar="BACKUP")
@click.option("--host", "host_name", required=True, help="Host to restore on (the backup must be readable there).")
@click.option("--as", "new_name", help="A new name, UUID and MACs, so the copy can run beside the original.")
@click.option("--pool", help="Pool for the disks (default: the original pool if the host has it, else 'default').")
@click.option("--start", is_flag=True, help="Start it afterwards.")
@click.option("--wait-boot", is_flag=True, help="With --start: wait for the lab guest's boot marker.")
@json_option
@click.pass_context
@handle_errors
def restore(ctx, backup_path, host_name, new_name, pool, start, wait_boot, as_json) -> None:
    """Restore a backup (its whole chain, verified first) as a new VM on any host."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record("backup.restore", target=f"{host.name}:{backup_path}", new_name=new_name, pool=pool) as entry, \
            progress(not as_json):
        restored = conns.call(host, lambda c: restore_backup(c, host, backup_path, new_name, pool))
        result = vars(restored)
        if start:
            dom = conns.call(host, lambda c: find_domain(c, host, restored.name))
            result.update(conns.call(host, lambda c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        entry.result = result
    if as_json:
        emit_json(result)
    else:
        console.print(f"restored {restored.name} on {host.name} from {' -> '.join(restored.chain)} "
                      f"in {restored.seconds} s; disks {', '.join(restored.disks)}"
                      + ("; started" if start else ""), highlight=False)
