from __future__ import annotations

import time

import click

from .. import snapshot as snapshots
from ..core import journal
from ..vm.inventory import find_domain
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, table


@cli.group()
def snapshot() -> None:
    """Snapshots of a VM: internal (with memory when running) or external --disk-only; a LIFO stack."""


def _run(ctx, action: str, vm_name: str, host_name: str, fn, **args):
    """Find the VM, run fn(dom) under a journal entry, return its result."""
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    with journal.record(f"snapshot.{action}", target=f"{host.name}/{vm_name}", **args) as entry:
        dom = conns.call(host, lambda c: find_domain(c, host, vm_name))
        entry.result = conns.call(host, lambda c: fn(dom))
    return entry.result


@snapshot.command("create")
@click.argument("vm_name", metavar="VM")
@click.argument("name", required=False)
@click.option("--host", "host_name", required=True)
@click.option("--disk-only", is_flag=True, help="External overlay per disk, no memory (merged back on delete).")
@click.option("--description", help="Free text kept with the snapshot.")
@json_option
@click.pass_context
@handle_errors
def snapshot_create(ctx, vm_name, name, host_name, disk_only, description, as_json) -> None:
    """Take a snapshot NAME (default: snap-DATE-TIME) of VM."""
    result = _run(ctx, "create", vm_name, host_name,
                  lambda dom: snapshots.create(dom, name, disk_only, description),
                  name=name, disk_only=disk_only)
    if as_json:
        emit_json(result)
    else:
        console.print(f"snapshot {result['snapshot']} of {vm_name}: {result['kind']}"
                      + (" with memory" if result["memory"] else ", disk only")
                      + (f", overlays {', '.join(result['overlays'])}" if result["overlays"] else "")
                      + f" ({result['seconds']} s)", highlight=False)


@snapshot.command("list")
@click.argument("vm_name", metavar="VM")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def snapshot_list(ctx, vm_name, host_name, as_json) -> None:
    """VM's snapshot tree, oldest first; the current one is marked."""
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    dom = conns.call(host, lambda c: find_domain(c, host, vm_name))
    items = conns.call(host, lambda c: snapshots.list_snapshots(dom))
    current = next((s.name for s in items if s.current), None)
    if as_json:
        emit_json({"host": host.name, "vm": vm_name, "current": current, "snapshots": [s.to_dict() for s in items]})
        return
    table(f"Snapshots of {vm_name} on {host.name}", ["name", "kind", "state", "memory", "created", "current"],
          [["  " * s.depth + ("└ " if s.depth else "") + s.name, s.kind, s.state, "yes" if s.memory else "no",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.created)) if s.created else None,
            "*" if s.current else ""] for s in items])


@snapshot.command("revert")
@click.argument("vm_name", metavar="VM")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def snapshot_revert(ctx, vm_name, name, host_name, as_json) -> None:
    """Bring VM's disks, and its memory when saved, back to snapshot NAME."""
    result = _run(ctx, "revert", vm_name, host_name, lambda dom: snapshots.revert(dom, name), name=name)
    if as_json:
        emit_json(result)
    else:
        console.print(f"{vm_name} reverted to {name}" + (" (memory restored)" if result["memory"] else "")
                      + f", now {result['state']} ({result['seconds']} s)", highlight=False)
        if "note" in result:
            console.print(f"note: {result['note']}", highlight=False)


@snapshot.command("delete")
@click.argument("vm_name", metavar="VM")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def snapshot_delete(ctx, vm_name, name, host_name, as_json) -> None:
    """Delete snapshot NAME; an external one is merged back into its base first."""
    result = _run(ctx, "delete", vm_name, host_name, lambda dom: snapshots.delete(dom, name), name=name)
    if as_json:
        emit_json(result)
    else:
        console.print(f"snapshot {name} of {vm_name} deleted"
                      + (f", merged {', '.join(result['merged_overlays'])}" if result["merged_overlays"] else "")
                      + f" ({result['seconds']} s)", highlight=False)
