"""`vpd snapshot ...`: parse, call vpd.snapshot.operations, render."""
from __future__ import annotations

import time

import click

from ..snapshot import operations as snap_ops
from .command import command, host_option, say
from .main import cli
from .render import table


@cli.group()
def snapshot() -> None:
    """Snapshots of a VM: internal (with memory when running) or external --disk-only; a LIFO stack."""


def _render_created(r: dict) -> None:
    say(f"snapshot {r['snapshot']} of {r['vm']}: {r['kind']}" + (" with memory" if r["memory"] else ", disk only")
        + (", filesystems frozen by the guest agent" if r.get("quiesced") else "")
        + (f", overlays {', '.join(r['overlays'])}" if r["overlays"] else "") + f" ({r['seconds']} s)")


@command(snapshot, "create", render=_render_created)
@click.argument("vm_name", metavar="VM")
@click.argument("name", required=False)
@host_option()
@click.option("--disk-only", is_flag=True, help="External overlay per disk, no memory (merged back on delete).")
@click.option("--description", help="Free text kept with the snapshot.")
@click.option("--quiesce", is_flag=True,
              help="Freeze the running guest's filesystems through its guest agent for the snapshot's instant "
                   "(implies --disk-only, as libvirt quiesces only those).")
def snapshot_create(session, vm_name, name, host_ref, disk_only, description, quiesce):
    """Take a snapshot NAME (default: snap-DATE-TIME) of VM."""
    return snap_ops.create(session, vm_name, name, host_ref, disk_only, description, quiesce)


def _render_list(r: dict) -> None:
    table(f"Snapshots of {r['vm']} on {r['host']}", ["name", "kind", "state", "memory", "created", "current"],
          [["  " * s["depth"] + ("└ " if s["depth"] else "") + s["name"], s["kind"], s["state"],
            "yes" if s["memory"] else "no",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s["created"])) if s["created"] else None,
            "*" if s["current"] else ""] for s in r["snapshots"]])


@command(snapshot, "list", render=_render_list, bars=False, readonly=True)
@click.argument("vm_name", metavar="VM")
@host_option()
def snapshot_list(session, vm_name, host_ref):
    """VM's snapshot tree, oldest first; the current one is marked."""
    return snap_ops.list_(session, vm_name, host_ref)


def _render_reverted(r: dict) -> None:
    say(f"{r['vm']} reverted to {r['snapshot']}" + (" (memory restored)" if r["memory"] else "")
        + f", now {r['state']} ({r['seconds']} s)")
    if "note" in r:
        say(f"note: {r['note']}")


@command(snapshot, "revert", render=_render_reverted)
@click.argument("vm_name", metavar="VM")
@click.argument("name")
@host_option()
def snapshot_revert(session, vm_name, name, host_ref):
    """Bring VM's disks, and its memory when saved, back to snapshot NAME."""
    return snap_ops.revert(session, vm_name, name, host_ref)


def _render_deleted(r: dict) -> None:
    say(f"snapshot {r['snapshot']} of {r['vm']} deleted"
        + (f", merged {', '.join(r['merged_overlays'])}" if r["merged_overlays"] else "") + f" ({r['seconds']} s)")


@command(snapshot, "delete", render=_render_deleted)
@click.argument("vm_name", metavar="VM")
@click.argument("name")
@host_option()
def snapshot_delete(session, vm_name, name, host_ref):
    """Delete snapshot NAME; an external one is merged back into its base first."""
    return snap_ops.delete(session, vm_name, name, host_ref)
