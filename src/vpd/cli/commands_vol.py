"""`vpd vol ...`: volumes in the pools of the inventory's hosts (Práctica 3)."""
from __future__ import annotations

import click

from ..core import journal
from ..storage import volumes
from . import context
from .commands_pool import human
from .main import cli, handle_errors, json_option
from .render import console, emit_json, progress, table


@cli.group()
def vol() -> None:
    """Volumes: create, list, info, clone, resize, delete, upload, download."""


def _run(ctx, action: str, pool_name: str, name: str, host_name: str, fn, **args) -> dict:
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record(f"vol.{action}", target=f"{host.name}/{pool_name}/{name}", **args) as entry:
        entry.result = conns.call(host, lambda c: fn(host, c))
    return entry.result


def _show(result: dict, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(result)
    elif result.get("changed") is False:
        console.print(f"volume {result['name']} already exists in {result['pool']} on {result['host']} "
                      "with these settings: nothing to do", highlight=False)
    else:
        console.print(f"volume {result['name']} {verb} in {result['pool']} on {result['host']}: {result['format']}, "
                      f"{human(result['capacity'])}, path {result['path']}", highlight=False)


@vol.command("create")
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--size", help="e.g. 10G (default with --backing: the backing volume's size).")
@click.option("--format", "fmt", type=click.Choice(volumes.FORMATS), default="qcow2", show_default=True)
@click.option("--backing", help="A volume of the same pool: the new one is its qcow2 overlay.")
@json_option
@click.pass_context
@handle_errors
def vol_create(ctx, pool_name, name, host_name, size, fmt, backing, as_json) -> None:
    """Create a volume (vol-create-as)."""
    r = _run(ctx, "create", pool_name, name, host_name,
             lambda h, c: volumes.create_volume(h, c, pool_name, name, size, fmt, backing),
             size=size, format=fmt, backing=backing)
    _show(r, "created", as_json)


@vol.command("list")
@click.argument("pool_name", metavar="[POOL]", required=False)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@json_option
@click.pass_context
@handle_errors
def vol_list(ctx, pool_name, names, as_json) -> None:
    """Volumes of every running pool (or of POOL) on every host at once."""
    per_host = volumes.list_volumes(context.connections(ctx), context.inventory(ctx).select(list(names)), pool_name)
    if as_json:
        emit_json({"hosts": [{"host": h.host, "error": h.error, "volumes": [v.to_dict() for v in h.volumes]}
                             for h in per_host]})
        return
    table("Volumes", ["host", "pool", "name", "type", "format", "capacity", "allocation", "path"],
          [[v.host, v.pool, v.name, v.type, v.format, human(v.capacity), human(v.allocation), v.path]
           for h in per_host for v in h.volumes])
    for h in per_host:
        if h.error:
            console.print(f"[red]{h.host}[/]: {h.error}", highlight=False)


@vol.command("info")
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def vol_info(ctx, pool_name, name, host_name, as_json) -> None:
    """One volume: type, format, capacity, allocation, path, backing image, VMs using it."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)

    def info(c):
        from ..storage.pools import find_pool

        v = volumes.describe(host, pool_name, volumes.find_volume(host, find_pool(c, host, pool_name), name))
        return {**v.to_dict(), "used_by": volumes.volume_users(c, pool_name, name, v.path)}

    r = conns.call(host, info)
    if as_json:
        emit_json(r)
        return
    for key, value in r.items():
        if key in ("capacity", "allocation"):
            value = f"{human(value)} ({value} bytes)"
        if key == "used_by":
            value = ", ".join(value) or None
        console.print(f"{key:>10}: {'-' if value is None else value}", highlight=False)


@vol.command("clone")
@click.argument("pool_name", metavar="POOL")
@click.argument("source")
@click.argument("new_name")
@click.option("--host", "host_name", required=True)
@click.option("--to-pool", help="Put the copy in another pool of the same host.")
@json_option
@click.pass_context
@handle_errors
def vol_clone(ctx, pool_name, source, new_name, host_name, to_pool, as_json) -> None:
    """Full copy of a volume (vol-clone)."""
    with progress(not as_json):
        r = _run(ctx, "clone", pool_name, source, host_name,
                 lambda h, c: volumes.clone_volume(h, c, pool_name, source, new_name, to_pool),
                 new_name=new_name, to_pool=to_pool)
    _show(r, f"cloned from {source}", as_json)


@vol.command("resize")
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.argument("size")
@click.option("--host", "host_name", required=True)
@click.option("--shrink", is_flag=True, help="Allow a smaller size (data past it is lost).")
@json_option
@click.pass_context
@handle_errors
def vol_resize(ctx, pool_name, name, size, host_name, shrink, as_json) -> None:
    """Set a volume's capacity to SIZE (e.g. 20G)."""
    r = _run(ctx, "resize", pool_name, name, host_name,
             lambda h, c: volumes.resize_volume(h, c, pool_name, name, size, shrink), size=size, shrink=shrink)
    if as_json:
        emit_json(r)
    elif not r["changed"]:
        console.print(f"volume {name} is already {human(r['capacity'])}: nothing to do", highlight=False)
    else:
        console.print(f"volume {name}: {human(r['previous_capacity'])} -> {human(r['capacity'])}", highlight=False)


@vol.command("delete")
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def vol_delete(ctx, pool_name, name, host_name, as_json) -> None:
    """Delete a volume and its data (refused while a VM has it as a disk)."""
    r = _run(ctx, "delete", pool_name, name, host_name, lambda h, c: volumes.delete_volume(h, c, pool_name, name))
    if as_json:
        emit_json(r)
    else:
        console.print(f"volume {name} deleted from {pool_name} on {r['host']}", highlight=False)


@vol.command("upload")
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def vol_upload(ctx, pool_name, name, file, host_name, as_json) -> None:
    """Write a local image FILE into a volume, converted to the volume's format when needed."""
    with progress(not as_json):
        r = _run(ctx, "upload", pool_name, name, host_name,
                 lambda h, c: volumes.upload(h, c, pool_name, name, file), file=file)
    if as_json:
        emit_json(r)
    else:
        console.print(f"uploaded {file} ({r['file_format']}) into {pool_name}/{name} ({r['format']})"
                      + (", converted" if r["converted"] else "") + f": {human(r['bytes_sent'])} sent", highlight=False)


@vol.command("download")
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--host", "host_name", required=True)
@click.option("--format", "fmt", type=click.Choice(volumes.FORMATS), help="Convert the local copy to this format.")
@json_option
@click.pass_context
@handle_errors
def vol_download(ctx, pool_name, name, file, host_name, fmt, as_json) -> None:
    """Copy a volume into a local FILE (in the volume's format, or --format)."""
    with progress(not as_json):
        r = _run(ctx, "download", pool_name, name, host_name,
                 lambda h, c: volumes.download(h, c, pool_name, name, file, fmt), file=file, format=fmt)
    if as_json:
        emit_json(r)
    else:
        console.print(f"downloaded {pool_name}/{name} into {file} ({r['file_format']}"
                      + (", converted" if r["converted"] else "") + f"): {human(r['bytes_received'])} received",
                      highlight=False)
