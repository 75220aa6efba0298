"""`vpd backup [create] VM --to DIR`, `vpd backup list|verify`, `vpd restore BACKUP`:
parse, call vpd.backup.operations, render."""
from __future__ import annotations

import click
from rich.text import Text

from ..backup import operations as backup_ops
from .command import command, host_option, say
from .main import cli
from .render import err_console, table


class DefaultCommandGroup(click.Group):
    """`vpd backup VM ...` means `vpd backup create VM ...`: the common case reads like the seed's verb."""

    default_command = "create"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=DefaultCommandGroup)
def backup() -> None:
    """Backups of VMs: `vpd backup VM --to DIR [--host H] [--incremental]`, list, verify."""


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _render_backup(m: dict) -> None:
    say(f"{m['kind']} backup of {m['vm']} ({m['method']}, guest {m['guest_state']}"
        + (", filesystems frozen by its agent" if m.get("quiesced") else "") + f") in {m['path']}: "
        f"{_mib(m['total_bytes'])} in {m['seconds']} s" + (f", on top of {m['parent']}" if m["parent"] else ""))


@command(backup, "create", render=_render_backup)
@click.argument("name")
@host_option()
@click.option("--to", "root", required=True, help="Directory on the VM's host; backups go to DIR/VM/ID/.")
@click.option("--incremental", is_flag=True,
              help="Copy only the blocks written since the last backup in DIR (running guests, qcow2 disks).")
@click.option("--quiesce", is_flag=True,
              help="Freeze the guest's filesystems through its guest agent while the backup's instant is taken "
                   "(a clean filesystem, not a power-cut one); thawed at once, whatever happens.")
def backup_create(session, name, host_ref, root, incremental, quiesce):
    """Back up a running or stopped VM: its XML, its disks (qcow2) and a manifest with checksums."""
    return backup_ops.backup(session, name, root, host_ref, incremental, quiesce)


def _render_list(r: dict) -> None:
    table(f"backups in {r['root']} on {r['host']}", ["VM", "id", "kind", "parent", "guest", "disks", "size", "path"],
          [[m["vm"], m["id"], m["kind"], m["parent"] or "-", m["guest_state"], len(m["disks"]),
            _mib(m["total_bytes"]), m["path"]] for m in r["backups"]])
    for bad in r.get("unreadable", []):
        err_console.print(Text(f"skipped {bad['path']}: {bad['error']}", style="yellow"), highlight=False,
                          soft_wrap=True)


@command(backup, "list", render=_render_list, bars=False, readonly=True)
@click.argument("root")
@click.option("--host", "host_ref", required=True, help="Host whose directory it is (name, FQDN or address).")
def backup_list(session, root, host_ref):
    """Finished backups under DIR on a host."""
    return backup_ops.list_(session, root, host_ref)


def _render_verify(r: dict) -> None:
    for f in r["files"]:
        say(f"{'ok ' if f['ok'] else 'BAD'}  {f['path']}"
            + ("" if f["ok"] else "  (missing)" if f["actual"] is None else "  (checksum differs)"),
            None if f["ok"] else "red")
    if r["ok"]:
        say(f"backup {r['backup']} is intact (chain {' -> '.join(r['chain'])})")


@command(backup, "verify", render=_render_verify)
@click.argument("backup_path", metavar="BACKUP")
@click.option("--host", "host_ref", required=True, help="Host the backup is on (name, FQDN or address).")
def backup_verify(session, backup_path, host_ref):
    """Recompute the checksums of a backup and of every backup it builds on."""
    return backup_ops.verify(session, backup_path, host_ref)


def _render_restored(r: dict) -> None:
    say(f"restored {r['name']} on {r['host']} from {' -> '.join(r['chain'])} in {r['seconds']} s; "
        f"disks {', '.join(r['disks'])}" + ("; started" if r.get("started") or "boot_id" in r else ""))


@command(cli, "restore", render=_render_restored)
@click.argument("backup_path", metavar="BACKUP")
@click.option("--host", "host_ref", required=True, help="Host to restore on (the backup must be readable there).")
@click.option("--as", "new_name", help="A new name, UUID and MACs, so the copy can run beside the original.")
@click.option("--pool", help="Pool for the disks (default: the original pool if the host has it, else 'default').")
@click.option("--start", is_flag=True, help="Start it afterwards.")
@click.option("--wait-boot", is_flag=True, help="With --start: wait for the lab guest's boot marker.")
def restore(session, backup_path, host_ref, new_name, pool, start, wait_boot):
    """Restore a backup (its whole chain, verified first) as a new VM on any host."""
    return backup_ops.restore(session, backup_path, host_ref, new_name, pool, start, wait_boot)
