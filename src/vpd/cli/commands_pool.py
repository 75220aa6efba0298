"""`vpd pool ...`: storage pools on the inventory's hosts (Práctica 3)."""
from __future__ import annotations

import click

from ..core import journal
from ..core.errors import UsageError
from ..storage import pools, secrets
from ..storage.iqn import default_initiator
from ..storage.support import POOL_TYPES
from ..storage.volumes import pool_users
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, table


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


@pool.command("create")
@click.argument("name")
@click.option("--host", "host_name", required=True, help="Host to create it on.")
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
@click.option("--chap-secret-file", type=click.Path(dir_okay=False), help="File holding the CHAP secret.")
@click.option("--build", is_flag=True, help="Make the structure: mkfs (fs, only if the device has no filesystem), "
                                            "pvcreate + vgcreate (logical).")
@click.option("--no-start", is_flag=True, help="Define (and build) only.")
@click.option("--autostart", is_flag=True, help="Start it when libvirtd starts.")
@json_option
@click.pass_context
@handle_errors
def pool_create(ctx, name, host_name, pool_type, path, source_devices, source_host, source_path, source_format,
                portal, target_iqn, initiator_iqn, chap_user, chap_secret_file, build, no_start, autostart,
                as_json) -> None:
    """Define, build and start a pool (pool-define + pool-build + pool-start [+ pool-autostart])."""
    if source_host and portal:
        raise UsageError("--source-host is for NFS, --portal for iSCSI: give one")
    if pool_type == "iscsi-direct" and not initiator_iqn:
        initiator_iqn = default_initiator(host_name)
    spec = pools.PoolSpec(name=name, type=pool_type, path=path, source_devices=tuple(source_devices),
                          source_host=source_host or portal, source_path=source_path, source_format=source_format,
                          target_iqn=target_iqn, initiator_iqn=initiator_iqn, chap_user=chap_user, build=build)
    pools.pool_xml(spec)  # every argument checked before a host is touched
    password = secrets.read_password(chap_secret_file) if chap_user else None
    if chap_secret_file and not chap_user:
        raise UsageError("--chap-secret-file needs --chap USER")
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    with journal.record("pool.create", target=f"{host.name}/{name}", type=pool_type, path=path,
                        source_devices=list(source_devices), source_host=source_host or portal,
                        source_path=source_path, target_iqn=target_iqn, initiator=initiator_iqn, chap_user=chap_user,
                        build=build, start=not no_start, autostart=autostart) as entry:
        entry.result = conns.call(host, lambda c: pools.create_pool(c, host, spec, password=password,
                                                                    start=not no_start, autostart=autostart))
    result = entry.result
    if as_json:
        emit_json(result)
    elif not result["changed"]:
        console.print(f"pool {name} already exists on {host.name} with these settings: nothing to do", highlight=False)
    else:
        console.print(f"pool {name} ({pool_type}) on {host.name}: {', '.join(result['steps'])}; "
                      f"capacity {human(result['capacity'])}, available {human(result['available'])}",
                      highlight=False)


def _simple(ctx, action: str, name: str, host_name: str, fn, as_json: bool, **args) -> dict:
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    with journal.record(f"pool.{action}", target=f"{host.name}/{name}", **args) as entry:
        entry.result = conns.call(host, lambda c: fn(c, host, pools.find_pool(c, host, name)))
    if as_json:
        emit_json(entry.result)
    return entry.result


def _said(result: dict, done: str, nothing: str) -> None:
    console.print(f"pool {result['pool']} on {result['host']}: {done if result['changed'] else nothing}", highlight=False)


@pool.command("start")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def pool_start(ctx, name, host_name, as_json) -> None:
    """Start (activate) a pool."""
    r = _simple(ctx, "start", name, host_name, lambda c, h, p: pools.start_pool(h, p), as_json)
    if not as_json:
        _said(r, "started", "already running")


@pool.command("stop")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def pool_stop(ctx, name, host_name, as_json) -> None:
    """Stop a pool (its volumes stay); refused while running VMs use it."""
    r = _simple(ctx, "stop", name, host_name,
                lambda c, h, p: pools.stop_pool(h, p, pool_users(c, p, running_only=True)), as_json)
    if not as_json:
        _said(r, "stopped", "already stopped")


@pool.command("autostart")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--disable", is_flag=True)
@json_option
@click.pass_context
@handle_errors
def pool_autostart(ctx, name, host_name, disable, as_json) -> None:
    """Start the pool when libvirtd starts (or not, with --disable)."""
    r = _simple(ctx, "autostart", name, host_name, lambda c, h, p: pools.set_autostart(h, p, not disable), as_json,
                enable=not disable)
    if not as_json:
        _said(r, "autostart " + ("off" if disable else "on"), "autostart already " + ("off" if disable else "on"))


@pool.command("refresh")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def pool_refresh(ctx, name, host_name, as_json) -> None:
    """Rescan the pool's volumes (after files were added or removed by hand)."""
    r = _simple(ctx, "refresh", name, host_name, lambda c, h, p: pools.refresh_pool(h, p), as_json)
    if not as_json:
        console.print(f"pool {r['name']} on {r['host']}: {r['volumes']} volumes, "
                      f"{human(r['available'])} available", highlight=False)


@pool.command("delete")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--wipe", is_flag=True, help="Also delete its volumes and what build made (directory, VG).")
@click.option("--yes", is_flag=True, help="Do not ask before --wipe.")
@json_option
@click.pass_context
@handle_errors
def pool_delete(ctx, name, host_name, wipe, yes, as_json) -> None:
    """Stop and undefine a pool; --wipe also removes its volumes and structure (asks first)."""
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    p = conns.call(host, lambda c: pools.find_pool(c, host, name))
    if wipe and not yes:
        if as_json:
            raise UsageError("--wipe with --json needs --yes (there is no one to ask)")
        count = conns.call(host, lambda c: p.numOfVolumes() if p.isActive() else "all")
        click.confirm(f"Delete pool {name} on {host.name} AND its {count} volumes and their data?", abort=True)
    with journal.record("pool.delete", target=f"{host.name}/{name}", wipe=wipe) as entry:
        entry.result = conns.call(host, lambda c: pools.delete_pool(c, host, p, wipe=wipe, users=pool_users(c, p)))
    r = entry.result
    if as_json:
        emit_json(r)
    else:
        console.print(f"pool {name} deleted from {host.name}"
                      + (f"; {len(r['volumes_deleted'])} volumes wiped" if wipe else " (volumes kept)")
                      + "".join(f"; {n}" for n in r["notes"]), highlight=False)


@pool.command("list")
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@click.option("--all", "include_inactive", is_flag=True, help="Include pools that are not running.")
@json_option
@click.pass_context
@handle_errors
def pool_list(ctx, names, include_inactive, as_json) -> None:
    """Pools of every host at once, with capacity, allocation and available space."""
    per_host = pools.list_pools(context.connections(ctx), context.inventory(ctx).select(list(names)), include_inactive)
    if as_json:
        emit_json({"hosts": [{"host": h.host, "error": h.error, "pools": [p.to_dict() for p in h.pools]}
                             for h in per_host]})
        return
    table("Pools", ["host", "name", "type", "state", "autostart", "capacity", "allocation", "available", "volumes",
                    "path / source"],
          [[p.host, p.name, p.type, p.state, "yes" if p.autostart else "no", human(p.capacity), human(p.allocation),
            human(p.available), p.volumes, p.path or p.source] for h in per_host for p in h.pools])
    for h in per_host:
        if h.error:
            console.print(f"[red]{h.host}[/]: {h.error}", highlight=False)


@pool.command("info")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def pool_info(ctx, name, host_name, as_json) -> None:
    """One pool: type, state, sizes, path, source, volume count."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    info = conns.call(host, lambda c: pools.describe(host, pools.find_pool(c, host, name))).to_dict()
    if as_json:
        emit_json(info)
        return
    for key, value in info.items():
        if key in ("capacity", "allocation", "available"):
            value = f"{human(value)} ({value} bytes)"
        console.print(f"{key:>11}: {'-' if value is None else value}", highlight=False)
