"""`vpd pool ...`: storage pools on the inventory's hosts (Práctica 3). Parse, call
vpd.storage.operations, render. No libvirt calls, no domain rules here."""
from __future__ import annotations

import click

from ..core.errors import UsageError
from ..storage import operations as storage_ops
from ..storage import secrets
from ..storage.support import POOL_TYPES
from .command import command, say
from .main import LocalPath, cli
from .render import table


def human(n: int | None) -> str | None:
    if n is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


@cli.group()
def pool() -> None:
    """Storage pools: dir, fs, netfs, logical, iscsi, iscsi-direct."""


_host = click.option("--host", "host_ref", required=True, help="The pool's host (inventory name, FQDN or address).")


def _render_created(r: dict) -> None:
    if not r["changed"]:
        say(f"pool {r['pool']} already exists on {r['host']} with these settings: nothing to do")
    else:
        say(f"pool {r['pool']} ({r['type']}) on {r['host']}: {', '.join(r['steps'])}; "
            f"capacity {human(r['capacity'])}, available {human(r['available'])}")


@command(pool, "create", render=_render_created)
@click.argument("name")
@click.option("--host", "host_ref", required=True, help="Host to create it on.")
@click.option("--type", "pool_type", required=True, type=click.Choice(POOL_TYPES))
@click.option("--path", help="Target: directory (dir), mount point (fs, netfs), device directory (iscsi).")
@click.option("--source-dev", "source_devices", multiple=True, help="Block device (fs: one; logical: the PVs).")
@click.option("--source-host", help="NFS server (netfs).")
@click.option("--source-path", help="Exported directory (netfs).")
@click.option("--source-format", help="Filesystem: ext4, xfs... (fs), nfs, cifs (netfs).")
@click.option("--portal", help="iSCSI portal HOST[:PORT] (iscsi, iscsi-direct).")
@click.option("--target", "target_iqn", help="The iSCSI target's IQN.")
@click.option("--initiator", "initiator_iqn",
              help="IQN to log in as (iscsi-direct; default iqn.2024-01.org.vpd:HOST).")
@click.option("--chap", "chap_user", help="CHAP user; the secret comes from --chap-secret-file or $VPD_CHAP_SECRET.")
@click.option("--chap-secret-file", type=LocalPath(dir_okay=False), help="File holding the CHAP secret.")
@click.option("--build", is_flag=True, help="Make the structure: mkfs (fs, only if the device has no filesystem), "
                                            "pvcreate + vgcreate (logical).")
@click.option("--no-start", is_flag=True, help="Define (and build) only.")
@click.option("--autostart", is_flag=True, help="Start it when libvirtd starts.")
def pool_create(session, name, host_ref, pool_type, path, source_devices, source_host, source_path, source_format,
                portal, target_iqn, initiator_iqn, chap_user, chap_secret_file, build, no_start, autostart):
    """Define, build and start a pool (pool-define + pool-build + pool-start [+ pool-autostart])."""
    if source_host and portal:
        raise UsageError("--source-host is for NFS, --portal for iSCSI: give one")
    if chap_secret_file and not chap_user:
        raise UsageError("--chap-secret-file needs --chap USER")
    password = secrets.read_password(chap_secret_file) if chap_user else None
    return storage_ops.pool_create(
        session, name, host_ref, pool_type, path=path, source_devices=source_devices,
        source_host=source_host or portal, source_path=source_path, source_format=source_format,
        target_iqn=target_iqn, initiator_iqn=initiator_iqn, chap_user=chap_user, password=password, build=build,
        start=not no_start, autostart=autostart)


def _said(done: str, nothing: str):
    def render(r: dict) -> None:
        say(f"pool {r['pool']} on {r['host']}: {done if r['changed'] else nothing}")

    return render


@command(pool, "start", render=_said("started", "already running"))
@click.argument("name")
@_host
def pool_start(session, name, host_ref):
    """Start (activate) a pool."""
    return storage_ops.pool_start(session, name, host_ref)


@command(pool, "stop", render=_said("stopped", "already stopped"))
@click.argument("name")
@_host
def pool_stop(session, name, host_ref):
    """Stop a pool (its volumes stay); refused while running VMs use it."""
    return storage_ops.pool_stop(session, name, host_ref)


def _render_autostart(r: dict) -> None:
    state = "on" if r["autostart"] else "off"
    _said(f"autostart {state}", f"autostart already {state}")(r)


@command(pool, "autostart", render=_render_autostart)
@click.argument("name")
@_host
@click.option("--disable", is_flag=True)
def pool_autostart(session, name, host_ref, disable):
    """Start the pool when libvirtd starts (or not, with --disable)."""
    return storage_ops.pool_autostart(session, name, host_ref, enable=not disable)


@command(pool, "refresh", render=lambda r: say(f"pool {r['name']} on {r['host']}: {r['volumes']} volumes, "
                                                f"{human(r['available'])} available"))
@click.argument("name")
@_host
def pool_refresh(session, name, host_ref):
    """Rescan the pool's volumes (after files were added or removed by hand)."""
    return storage_ops.pool_refresh(session, name, host_ref)


def _render_deleted(r: dict) -> None:
    say(f"pool {r['pool']} deleted from {r['host']}"
        + (f"; {len(r['volumes_deleted'])} volumes wiped" if r["wiped"] else " (volumes kept)")
        + "".join(f"; {n}" for n in r["notes"]))


@command(pool, "delete", render=_render_deleted)
@click.argument("name")
@_host
@click.option("--wipe", is_flag=True, help="Also delete its volumes and what build made (directory, VG).")
@click.option("--yes", is_flag=True, help="Do not ask before --wipe.")
def pool_delete(session, name, host_ref, wipe, yes):
    """Stop and undefine a pool; --wipe also removes its volumes and structure (asks first)."""
    if wipe and not yes:
        count = storage_ops.pool_wipe_count(session, name, host_ref)
        if click.get_current_context().params.get("as_json"):
            raise UsageError("--wipe with --json needs --yes (there is no one to ask)")
        click.confirm(f"Delete pool {name} on {session.host(host_ref).name} AND its {count} volumes and their data?",
                      abort=True)
    return storage_ops.pool_delete(session, name, host_ref, wipe=wipe)


def _render_list(r: dict) -> None:
    table("Pools", ["host", "name", "type", "state", "autostart", "capacity", "allocation", "available", "volumes",
                    "path / source"],
          [[p["host"], p["name"], p["type"], p["state"], "yes" if p["autostart"] else "no", human(p["capacity"]),
            human(p["allocation"]), human(p["available"]), p["volumes"], p["path"] or p["source"]]
           for h in r["hosts"] for p in h["pools"]])
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")
        for p in h["pools"]:
            if p.get("stale"):
                say(f"note: {p['stale']}", "yellow")


@command(pool, "list", render=_render_list, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@click.option("--all", "include_inactive", is_flag=True, help="Include pools that are not running.")
def pool_list(session, names, include_inactive):
    """Pools of every host at once, with capacity, allocation and available space."""
    return storage_ops.pool_list(session, names, include_inactive)


def _render_info(info: dict) -> None:
    for key, value in info.items():
        if key in ("capacity", "allocation", "available"):
            value = f"{human(value)} ({value} bytes)"
        say(f"{key:>11}: {'-' if value is None else value}")


@command(pool, "info", render=_render_info, bars=False, readonly=True)
@click.argument("name")
@_host
def pool_info(session, name, host_ref):
    """One pool: type, state, sizes, path, source, volume count."""
    return storage_ops.pool_info(session, name, host_ref)
