"""Storage operations as front ends run them (CLI, web API, scripts): pools, volumes and iSCSI
targets. Each resolves its host (inventory name, FQDN or address), runs a change inside an
Operation (journal entry, lock on the object, undo, progress) and returns a plain result.
The work itself lives in pools, volumes and iscsi_target."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.errors import UsageError
from ..core.names import check_name
from ..ops import Operation, Session
from ..ops.locks import object_key
from ..xml.checks import require_absolute_path
from . import iscsi_target, pools, volumes
from .iqn import check_iqn, default_initiator

# --- pools -------------------------------------------------------------------------------


def _pool_key(host: str, name: str) -> str:
    return object_key("pool", host, name)


def pool_create(session: Session, name: str, host_ref: str, pool_type: str, *, path: str | None = None,
                source_devices: tuple[str, ...] | list[str] = (), source_host: str | None = None,
                source_path: str | None = None, source_format: str | None = None, target_iqn: str | None = None,
                initiator_iqn: str | None = None, chap_user: str | None = None, password: str | None = None,
                build: bool = False, start: bool = True, autostart: bool = False) -> dict:
    """Define, build and start a pool (every argument checked before the host is touched); a
    failed step undoes the ones done. The same pool again is a no-op, another one of that name
    is refused. An iscsi-direct pool logs in as the host's vpd IQN unless told otherwise."""
    host = session.host(host_ref)
    if pool_type == "iscsi-direct" and not initiator_iqn:
        initiator_iqn = default_initiator(host.name)
    spec = pools.PoolSpec(name=name, type=pool_type, path=path, source_devices=tuple(source_devices),
                          source_host=source_host, source_path=source_path, source_format=source_format,
                          target_iqn=target_iqn, initiator_iqn=initiator_iqn, chap_user=chap_user, build=build)
    pools.pool_xml(spec)
    with Operation(session, "pool.create", target=f"{host.name}/{name}", locks=[_pool_key(host.name, name)],
                   type=pool_type, path=path, source_devices=list(source_devices), source_host=source_host,
                   source_path=source_path, target_iqn=target_iqn, initiator=initiator_iqn, chap_user=chap_user,
                   build=build, start=start, autostart=autostart) as op:
        op.result = session.call(host, lambda c: pools.create_pool(
            c, host, spec, password=password, start=start, autostart=autostart, undo=op.undo,
            plan=lambda: op.plan("pool", name, host.name, type=pool_type)))
    return op.result


def _on_pool(session: Session, action: str, name: str, host_ref: str, fn: Callable[..., dict], **args: Any) -> dict:
    check_name(name, "pool name")
    host = session.host(host_ref)
    with Operation(session, f"pool.{action}", target=f"{host.name}/{name}", locks=[_pool_key(host.name, name)],
                   **args) as op:
        op.result = session.call(host, lambda c: fn(c, host, pools.find_pool(c, host, name)))
    return op.result


def pool_start(session: Session, name: str, host_ref: str) -> dict:
    return _on_pool(session, "start", name, host_ref, lambda c, h, p: pools.start_pool(h, p))


def pool_stop(session: Session, name: str, host_ref: str) -> dict:
    """Refused while running VMs of that host have disks in it."""
    return _on_pool(session, "stop", name, host_ref,
                    lambda c, h, p: pools.stop_pool(h, p, volumes.pool_users(c, p, running_only=True)))


def pool_autostart(session: Session, name: str, host_ref: str, enable: bool = True) -> dict:
    return _on_pool(session, "autostart", name, host_ref, lambda c, h, p: pools.set_autostart(h, p, enable),
                    enable=enable)


def pool_refresh(session: Session, name: str, host_ref: str) -> dict:
    return _on_pool(session, "refresh", name, host_ref, lambda c, h, p: pools.refresh_pool(h, p))


def pool_wipe_count(session: Session, name: str, host_ref: str) -> int | str:
    """How many volumes `pool delete --wipe` would delete ("all" while the pool is stopped),
    for a front end to ask about first."""
    host = session.host(host_ref)

    def count(c):
        p = pools.find_pool(c, host, name)
        return p.numOfVolumes() if p.isActive() else "all"

    return session.call(host, count)


def pool_delete(session: Session, name: str, host_ref: str, wipe: bool = False) -> dict:
    """Stop and undefine a pool (refused while VMs have disks in it); `wipe` also deletes its
    volumes and what build made. Front ends ask before wiping."""
    check_name(name, "pool name")
    host = session.host(host_ref)
    with Operation(session, "pool.delete", target=f"{host.name}/{name}", locks=[_pool_key(host.name, name)],
                   wipe=wipe) as op:
        def delete(c):
            p = pools.find_pool(c, host, name)
            return pools.delete_pool(c, host, p, wipe=wipe, users=volumes.pool_users(c, p))

        op.result = session.call(host, delete)
    return op.result


def pool_list(session: Session, host_refs: list[str] | tuple[str, ...] | None = None,
              include_inactive: bool = False) -> dict:
    per_host = pools.list_pools(session.conns, session.hosts(host_refs), include_inactive)
    return {"hosts": [{"host": h.host, "error": h.error, "pools": [p.to_dict() for p in h.pools]} for h in per_host]}


def pool_info(session: Session, name: str, host_ref: str) -> dict:
    host = session.host(host_ref)
    return session.call(host, lambda c: pools.describe(host, pools.find_pool(c, host, name))).to_dict()


# --- volumes -----------------------------------------------------------------------------


def _vol_key(host: str, pool: str, name: str) -> str:
    return object_key("volume", host, f"{pool}/{name}")


def _on_volume(session: Session, action: str, pool_name: str, name: str, host_ref: str,
               fn: Callable[..., dict], extra_locks: tuple[str, ...] = (), **args: Any) -> dict:
    """One volume operation: journaled as vol.ACTION on HOST/POOL/NAME, the volume locked."""
    check_name(pool_name, "pool name")
    volumes.check_existing_name(name)
    host = session.host(host_ref)
    with Operation(session, f"vol.{action}", target=f"{host.name}/{pool_name}/{name}",
                   locks=[_vol_key(host.name, pool_name, name), *extra_locks], **args) as op:
        op.result = session.call(host, lambda c: fn(host, c, op))
    return op.result


def vol_create(session: Session, pool_name: str, name: str, host_ref: str, size: str | int | None = None,
               fmt: str = "qcow2", backing: str | None = None) -> dict:
    """A volume (vol-create-as), or a qcow2 overlay on `backing`; the same one again is a no-op."""
    check_name(name, "volume name")
    return _on_volume(session, "create", pool_name, name, host_ref,
                      lambda h, c, op: volumes.create_volume(
                          h, c, pool_name, name, size, fmt, backing,
                          plan=lambda: op.plan("volume", name, h.name, pool=pool_name)),
                      size=size, format=fmt, backing=backing)


def vol_clone(session: Session, pool_name: str, source: str, new_name: str, host_ref: str,
              to_pool: str | None = None) -> dict:
    """Full copy of a volume into the same pool or `to_pool` of the same host."""
    check_name(new_name, "volume name")
    if to_pool is not None:
        check_name(to_pool, "pool name")
    host = session.host(host_ref)
    dest = to_pool or pool_name
    return _on_volume(session, "clone", pool_name, source, host_ref,
                      lambda h, c, op: volumes.clone_volume(
                          h, c, pool_name, source, new_name, to_pool,
                          plan=lambda: op.plan("volume", new_name, h.name, pool=dest)),
                      extra_locks=(_vol_key(host.name, dest, new_name),), new_name=new_name, to_pool=to_pool)


def vol_resize(session: Session, pool_name: str, name: str, size: str | int, host_ref: str,
               shrink: bool = False) -> dict:
    return _on_volume(session, "resize", pool_name, name, host_ref,
                      lambda h, c, op: volumes.resize_volume(h, c, pool_name, name, size, shrink),
                      size=size, shrink=shrink)


def vol_delete(session: Session, pool_name: str, name: str, host_ref: str) -> dict:
    """Refused while a VM has it as a disk or another volume is its overlay."""
    return _on_volume(session, "delete", pool_name, name, host_ref,
                      lambda h, c, op: volumes.delete_volume(h, c, pool_name, name))


def vol_upload(session: Session, pool_name: str, name: str, file: str, host_ref: str) -> dict:
    return _on_volume(session, "upload", pool_name, name, host_ref,
                      lambda h, c, op: volumes.upload(h, c, pool_name, name, file), file=file)


def vol_download(session: Session, pool_name: str, name: str, file: str, host_ref: str,
                 fmt: str | None = None) -> dict:
    return _on_volume(session, "download", pool_name, name, host_ref,
                      lambda h, c, op: volumes.download(h, c, pool_name, name, file, fmt), file=file, format=fmt)


def vol_list(session: Session, pool_name: str | None = None,
             host_refs: list[str] | tuple[str, ...] | None = None) -> dict:
    per_host = volumes.list_volumes(session.conns, session.hosts(host_refs), pool_name)
    return {"hosts": [{"host": h.host, "error": h.error, "volumes": [v.to_dict() for v in h.volumes],
                       "stale": h.stale} for h in per_host]}


def vol_info(session: Session, pool_name: str, name: str, host_ref: str) -> dict:
    """The volume, and the VMs of its host that have it as a disk (`used_by`)."""
    host = session.host(host_ref)

    def info(c):
        v = volumes.describe(host, pool_name, volumes.find_volume(host, pools.find_pool(c, host, pool_name), name))
        return {**v.to_dict(), "used_by": volumes.volume_users(c, pool_name, name, v.path)}

    return session.call(host, info)


# --- iSCSI targets -----------------------------------------------------------------------


def _export_path(session: Session, host, vol_ref: str) -> str:
    """The path of a raw volume no VM uses, to export as a LUN."""
    pool_name, vol_name = volumes.parse_vol_ref(vol_ref)

    def resolve(c):
        info = volumes.describe(host, pool_name,
                                volumes.find_volume(host, pools.find_pool(c, host, pool_name), vol_name))
        if info.format not in (None, "raw"):
            raise UsageError(f"{vol_ref} is {info.format}: an initiator would see its {info.format} bytes",
                             hint="export a raw volume (vpd vol create ... --format raw)")
        users = volumes.volume_users(c, pool_name, vol_name, info.path)
        if users:
            raise UsageError(f"{vol_ref} is a disk of VMs on {host.name}: {', '.join(users)}")
        return info.path

    return session.call(host, resolve)


def target_create(session: Session, host_ref: str, iqn: str, allow: list[str] | tuple[str, ...], *,
                  vol_ref: str | None = None, file_path: str | None = None, lun: int = 1,
                  chap_user: str | None = None, password: str | None = None) -> dict:
    """Export a raw volume (POOL/VOL) or a file or device of the host as an iSCSI LUN, admitted to
    the `allow`ed initiators only (ACL, and 3260/tcp opened to their hosts)."""
    iqn = check_iqn(iqn, "target IQN")
    if bool(vol_ref) == bool(file_path):
        raise UsageError("give exactly one of --vol POOL/VOL or --file PATH")
    if chap_user:
        pools.check_chap_user(chap_user)
        if password is None:
            raise UsageError("--chap needs the secret: --chap-secret-file FILE or $VPD_CHAP_SECRET")
    host = session.host(host_ref)
    initiators = iscsi_target.parse_allow(list(allow), session.inventory)
    path = _export_path(session, host, vol_ref) if vol_ref else require_absolute_path(file_path or "", "--file")
    with Operation(session, "iscsi.target.create", target=f"{host.name}/{iqn}",
                   locks=[object_key("iscsi-target", host.name, iqn)], path=path, lun=lun,
                   allow=[i.iqn for i in initiators], chap_user=chap_user) as op:
        op.result = iscsi_target.create_target(host, iqn, path, lun, initiators, chap_user, password, undo=op.undo,
                                               plan=lambda: op.plan("iscsi-target", iqn, host.name, path=path))
    return op.result


def target_delete(session: Session, host_ref: str, iqn: str) -> dict:
    """Remove a target (its LUN's data stays), its CHAP account and its firewall openings."""
    iqn = check_iqn(iqn, "target IQN")
    host = session.host(host_ref)
    with Operation(session, "iscsi.target.delete", target=f"{host.name}/{iqn}",
                   locks=[object_key("iscsi-target", host.name, iqn)]) as op:
        op.result = iscsi_target.delete_target(host, iqn, session.inventory)
    return op.result


def target_list(session: Session, host_refs: list[str] | tuple[str, ...] | None = None) -> dict:
    return {"hosts": iscsi_target.list_targets(session.hosts(host_refs))}
