"""`vpd vol ...`: volumes in the pools of the inventory's hosts (Práctica 3). Parse, call
vpd.storage.operations, render. No libvirt calls, no domain rules here."""
from __future__ import annotations

import click

from ..storage import operations as storage_ops
from ..storage.volumes import FORMATS
from .command import command, say
from .commands_pool import human
from .main import LocalPath, cli
from .render import table


@cli.group()
def vol() -> None:
    """Volumes: create, list, info, clone, resize, delete, upload, download."""


_host = click.option("--host", "host_ref", required=True, help="The pool's host (inventory name, FQDN or address).")


def _shown(verb: str):
    def render(r: dict) -> None:
        if r.get("changed") is False:
            say(f"volume {r['name']} already exists in {r['pool']} on {r['host']} with these settings: nothing to do")
        else:
            say(f"volume {r['name']} {verb(r) if callable(verb) else verb} in {r['pool']} on {r['host']}: "
                f"{r['format']}, {human(r['capacity'])}, path {r['path']}")

    return render


@command(vol, "create", render=_shown("created"))
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@_host
@click.option("--size", help="e.g. 10G (default with --backing: the backing volume's size).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="qcow2", show_default=True)
@click.option("--backing", help="A volume of the same pool: the new one is its qcow2 overlay.")
def vol_create(session, pool_name, name, host_ref, size, fmt, backing):
    """Create a volume (vol-create-as)."""
    return storage_ops.vol_create(session, pool_name, name, host_ref, size, fmt, backing)


def _render_list(r: dict) -> None:
    table("Volumes", ["host", "pool", "name", "type", "format", "capacity", "allocation", "path"],
          [[v["host"], v["pool"], v["name"], v["type"], v["format"], human(v["capacity"]), human(v["allocation"]),
            v["path"]] for h in r["hosts"] for v in h["volumes"]])
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")
        for note in h.get("stale") or []:
            say(f"note: {note}", "yellow")


@command(vol, "list", render=_render_list, bars=False, readonly=True)
@click.argument("pool_name", metavar="[POOL]", required=False)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def vol_list(session, pool_name, names):
    """Volumes of every running pool (or of POOL) on every host at once."""
    return storage_ops.vol_list(session, pool_name, names)


def _render_info(r: dict) -> None:
    for key, value in r.items():
        if key in ("capacity", "allocation"):
            value = f"{human(value)} ({value} bytes)"
        if key == "used_by":
            value = ", ".join(value) or None
        say(f"{key:>10}: {'-' if value is None else value}")


@command(vol, "info", render=_render_info, bars=False, readonly=True)
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@_host
def vol_info(session, pool_name, name, host_ref):
    """One volume: type, format, capacity, allocation, path, backing image, VMs using it."""
    return storage_ops.vol_info(session, pool_name, name, host_ref)


@command(vol, "clone", render=_shown(lambda r: f"cloned from {r['source']}"))
@click.argument("pool_name", metavar="POOL")
@click.argument("source")
@click.argument("new_name")
@_host
@click.option("--to-pool", help="Put the copy in another pool of the same host.")
def vol_clone(session, pool_name, source, new_name, host_ref, to_pool):
    """Full copy of a volume (vol-clone)."""
    return storage_ops.vol_clone(session, pool_name, source, new_name, host_ref, to_pool)


def _render_resize(r: dict) -> None:
    if not r["changed"]:
        say(f"volume {r['name']} is already {human(r['capacity'])}: nothing to do")
    else:
        say(f"volume {r['name']}: {human(r['previous_capacity'])} -> {human(r['capacity'])}")


@command(vol, "resize", render=_render_resize)
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.argument("size")
@_host
@click.option("--shrink", is_flag=True, help="Allow a smaller size (data past it is lost).")
def vol_resize(session, pool_name, name, size, host_ref, shrink):
    """Set a volume's capacity to SIZE (e.g. 20G)."""
    return storage_ops.vol_resize(session, pool_name, name, size, host_ref, shrink)


@command(vol, "delete", render=lambda r: say(f"volume {r['volume']} deleted from {r['pool']} on {r['host']}"))
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@_host
def vol_delete(session, pool_name, name, host_ref):
    """Delete a volume and its data (refused while a VM has it as a disk)."""
    return storage_ops.vol_delete(session, pool_name, name, host_ref)


@command(vol, "upload", render=lambda r: say(
    f"uploaded {r['file']} ({r['file_format']}) into {r['pool']}/{r['name']} ({r['format']})"
    + (", converted" if r["converted"] else "") + f": {human(r['bytes_sent'])} sent"))
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.argument("file", type=LocalPath(dir_okay=False))
@_host
def vol_upload(session, pool_name, name, file, host_ref):
    """Write a local image FILE into a volume, converted to the volume's format when needed."""
    return storage_ops.vol_upload(session, pool_name, name, file, host_ref)


@command(vol, "download", render=lambda r: say(
    f"downloaded {r['pool']}/{r['name']} into {r['file']} ({r['file_format']}"
    + (", converted" if r["converted"] else "") + f"): {human(r['bytes_received'])} received"))
@click.argument("pool_name", metavar="POOL")
@click.argument("name")
@click.argument("file", type=LocalPath(dir_okay=False))
@_host
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Convert the local copy to this format.")
def vol_download(session, pool_name, name, file, host_ref, fmt):
    """Copy a volume into a local FILE (in the volume's format, or --format)."""
    return storage_ops.vol_download(session, pool_name, name, file, host_ref, fmt)
