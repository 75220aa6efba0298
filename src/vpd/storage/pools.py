"""Storage pools: create (checked first, undone on failure), start/stop/autostart/refresh,
delete (with --wipe the physical structure too), info, and a bulk listing of every host.

A pool is described by a PoolSpec, turned into typed XML by pool_xml() (pure, so every
argument is checked before a host is touched). create_pool() then runs the steps virsh
users type one by one -- pool-define, pool-build, pool-start, pool-autostart -- and undoes
the ones done when a later one fails.
"""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import cast

import libvirt

from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections, lookup
from ..connect.libvirt_conn import refresh_pool as refresh_listing
from ..connect.ssh import runner_for
from ..core.errors import NotFound, UsageError, VpdError
from ..core.names import check_local_path, check_name, is_dns_name
from ..core.undo import Undo
from ..xml.checks import require_absolute_path
from ..xml.pool import (
    AuthSecret,
    Iqn,
    PoolAuth,
    PoolInitiator,
    PoolSource,
    PoolSourceDevice,
    PoolSourceDir,
    PoolSourceFormat,
    PoolSourceHost,
    PoolTarget,
    PoolType,
    StoragePool,
)
from . import secrets
from .iqn import check_iqn
from .support import POOL_TYPES, require_pool_type

ISCSI_PORT = 3260
FS_FORMATS = ("auto", "ext2", "ext3", "ext4", "xfs", "vfat")
NETFS_FORMATS = ("auto", "nfs", "cifs", "glusterfs")
STATES = {
    libvirt.VIR_STORAGE_POOL_INACTIVE: "inactive",
    libvirt.VIR_STORAGE_POOL_BUILDING: "building",
    libvirt.VIR_STORAGE_POOL_RUNNING: "running",
    libvirt.VIR_STORAGE_POOL_DEGRADED: "degraded",
    libvirt.VIR_STORAGE_POOL_INACCESSIBLE: "inaccessible",
}
_CHAP_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}")


@dataclass(frozen=True)
class PoolSpec:
    name: str
    type: str
    path: str | None = None
    """Target: the directory (dir, fs, netfs mount point) or device directory."""
    source_devices: tuple[str, ...] = ()
    source_host: str | None = None
    """NFS server, or iSCSI portal."""
    source_port: int | None = None
    source_path: str | None = None
    """The NFS export."""
    source_format: str | None = None
    target_iqn: str | None = None
    initiator_iqn: str | None = None
    chap_user: str | None = None
    build: bool = False
    """Make the physical structure: mkfs for fs, pvcreate + vgcreate for logical."""


def parse_server(text: str, what: str) -> tuple[str, int | None]:
    """'host', 'host:port', '198.18.0.11:3260' or '[::1]:3260' -> (host, port)."""
    text = (text or "").strip()
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise UsageError(f"invalid {what} {text!r}", hint="use HOST or HOST:PORT")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise UsageError(f"invalid {what} {text!r}", hint="use HOST or HOST:PORT")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not is_dns_name(host):
            raise UsageError(f"invalid {what} {text!r}",
                             hint="use a host name or IP address, optionally :PORT") from None
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"{what} port {port} is out of range")
    return host, port


def check_chap_user(user: str) -> str:
    if not _CHAP_USER.fullmatch(user or ""):
        raise UsageError(f"invalid CHAP user name {user!r}", hint="1-64 letters, digits, '.', '_', '@', ':' or '-'")
    return user


_FLAGS = {"path": "--path", "source_devices": "--source-dev", "source_host": "--source-host/--portal",
          "source_path": "--source-path", "source_format": "--source-format", "target_iqn": "--target",
          "initiator_iqn": "--initiator", "chap_user": "--chap", "build": "--build"}


# Where a pool's directory may never be: a dir pool lists, and `vol delete` removes, every file
# of its directory. The roots of the system (and anything beneath them) and the parents of
# libvirt's own pool root, /var/lib/libvirt/images, whose files are not volumes.
SYSTEM_TREES = ("/etc", "/usr", "/boot", "/proc", "/sys", "/dev", "/bin", "/sbin",
                "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_DIRS = frozenset({"/", "/var", "/var/lib", "/var/lib/libvirt", "/var/lib/libvirt/qemu", "/var/log",
                         "/var/run", "/run", "/tmp", "/var/tmp", "/home", "/root", "/srv", "/opt", "/mnt",
                         "/media"})
DEVICE_TREE = "/dev"


def check_pool_dir(path: str, what: str = "pool path", devices: bool = False) -> str:
    """The normalised absolute directory a pool may live at (UsageError, exit 2, otherwise):
    no '..', no control characters, not a system directory nor beneath /etc, /usr, /proc...
    `devices`: the directory holds device nodes (an iSCSI pool's /dev/disk/by-path)."""
    check_local_path(path, what)
    require_absolute_path(path, what)
    if ".." in path.split("/"):
        raise UsageError(f"{what} {path!r} climbs out with '..'", hint="give the directory itself, without '..'")
    normal = "/" + os.path.normpath(path).lstrip("/")
    hint = "use a directory of its own, e.g. /var/lib/libvirt/images/NAME or /srv/vpd/NAME"
    if normal in SYSTEM_DIRS:
        raise UsageError(f"{what} {normal!r} is a system directory: a pool there would list and delete its files",
                         hint=hint)
    for tree in SYSTEM_TREES:
        if devices and tree == DEVICE_TREE:
            continue
        if normal == tree or normal.startswith(tree + "/"):
            raise UsageError(f"{what} {normal!r} is inside the system directory {tree}", hint=hint)
    return normal


def _only(spec: PoolSpec, allowed: set[str]) -> None:
    """Options that do not apply to the pool type are refused, not silently dropped."""
    extra = [flag for key, flag in _FLAGS.items() if getattr(spec, key) and key not in allowed]
    if extra:
        raise UsageError(f"{', '.join(extra)} do not apply to a {spec.type} pool")


def _need(value, flag: str, pool_type: str):
    if not value:
        raise UsageError(f"a {pool_type} pool needs {flag}")
    return value


def pool_xml(spec: PoolSpec) -> StoragePool:
    """The pool definition for `spec`; UsageError for anything libvirt would refuse or vpd finds unsafe."""
    check_name(spec.name, "pool name")
    if spec.type not in POOL_TYPES:
        raise UsageError(f"unknown pool type {spec.type!r}", hint="use one of: " + ", ".join(POOL_TYPES))
    t = cast(PoolType, spec.type)  # one of POOL_TYPES, all libvirt pool types
    devices = [PoolSourceDevice(path=require_absolute_path(d, "source device")) for d in spec.source_devices]
    if t == "dir":
        _only(spec, {"path"})
        return StoragePool(type=t, name=spec.name,
                           target=PoolTarget(path=check_pool_dir(_need(spec.path, "--path", t), "pool path")))
    if t == "fs":
        _only(spec, {"path", "source_devices", "source_format", "build"})
        if len(devices) != 1:
            raise UsageError("a fs pool needs exactly one --source-dev (the block device holding the filesystem)")
        fmt = spec.source_format or ("ext4" if spec.build else "auto")
        if fmt not in FS_FORMATS or (spec.build and fmt == "auto"):
            raise UsageError(f"unknown filesystem {fmt!r} for a fs pool",
                             hint="use one of: " + ", ".join(FS_FORMATS[1:]))
        return StoragePool(type=t, name=spec.name,
                           source=PoolSource(devices=devices, format=PoolSourceFormat(type=fmt)),
                           target=PoolTarget(path=check_pool_dir(_need(spec.path, "--path", t), "mount point")))
    if t == "netfs":
        _only(spec, {"path", "source_host", "source_path", "source_format"})
        fmt = spec.source_format or "nfs"
        if fmt not in NETFS_FORMATS:
            raise UsageError(f"unknown network filesystem {fmt!r}", hint="use one of: " + ", ".join(NETFS_FORMATS))
        server, _ = parse_server(_need(spec.source_host, "--source-host", t), "NFS server")
        return StoragePool(type=t, name=spec.name,
                           source=PoolSource(host=PoolSourceHost(name=server),
                                             dir=PoolSourceDir(path=require_absolute_path(
                                                 _need(spec.source_path, "--source-path", t), "NFS export")),
                                             format=PoolSourceFormat(type=fmt)),
                           target=PoolTarget(path=check_pool_dir(_need(spec.path, "--path", t), "mount point")))
    if t == "logical":
        _only(spec, {"source_devices", "build"})
        if spec.build and not devices:
            raise UsageError("--build of a logical pool needs --source-dev (the physical volumes)")
        return StoragePool(type=t, name=spec.name,
                           source=PoolSource(devices=devices, name=spec.name, format=PoolSourceFormat(type="lvm2")),
                           target=PoolTarget(path=f"/dev/{spec.name}"))
    # iscsi and iscsi-direct
    allowed = {"path", "source_host", "target_iqn", "initiator_iqn", "chap_user"}
    _only(spec, allowed - {"path"} if t == "iscsi-direct" else allowed)
    server, port = parse_server(_need(spec.source_host, "--portal", t), "iSCSI portal")
    target = check_iqn(_need(spec.target_iqn, "--target (the target's IQN)", t), "target IQN")
    initiator = None
    if spec.initiator_iqn:
        initiator = PoolInitiator(iqn=Iqn(name=check_iqn(spec.initiator_iqn, "initiator IQN")))
    elif t == "iscsi-direct":
        raise UsageError("an iscsi-direct pool needs --initiator (the IQN it logs in as)")
    auth = None
    if spec.chap_user:
        auth = PoolAuth(type="chap", username=check_chap_user(spec.chap_user),
                        secret=AuthSecret(usage=secrets.pool_usage_id(spec.name)))
    source = PoolSource(host=PoolSourceHost(name=server, port=port or ISCSI_PORT),
                        devices=[PoolSourceDevice(path=target)], initiator=initiator, auth=auth)
    pool_target = None
    if t == "iscsi":
        pool_target = PoolTarget(path=check_pool_dir(spec.path or "/dev/disk/by-path", "device directory",
                                                     devices=True))
    return StoragePool(type=t, name=spec.name, source=source, target=pool_target)


def _settings(pool: StoragePool) -> dict:
    """What makes two definitions of a pool the same, for idempotent create."""
    src = pool.source
    return {
        "type": pool.type,
        "path": pool.target.path.rstrip("/") if pool.target and pool.target.path else None,
        "devices": sorted(d.path for d in src.devices) if src else [],
        "host": (src.host.name, src.host.port) if src and src.host else None,
        "dir": src.dir.path if src and src.dir else None,
        "format": src.format.type if src and src.format and pool.type not in ("logical",) else None,
        "initiator": src.initiator.iqn.name if src and src.initiator else None,
        "chap": src.auth.username if src and src.auth else None,
    }


def differences(existing: StoragePool, wanted: StoragePool) -> list[str]:
    have, want = _settings(existing), _settings(wanted)
    return [f"{k}: {have[k]!r} (wanted {want[k]!r})" for k in want if have[k] != want[k]]


# --- looking pools up --------------------------------------------------------------

def find_pool(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virStoragePool:
    """The pool `name` (NotFound, exit 2, when libvirt has none; a dropped connection is a failure)."""
    check_name(name, "pool name")
    return lookup(host, lambda: conn.storagePoolLookupByName(name), f"no pool named {name!r} on {host.name}",
                  hint="`vpd pool list --all` lists them")


def existing_pool(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virStoragePool | None:
    """The pool `name`, or None when there is none (other libvirt errors are failures)."""
    try:
        return find_pool(conn, host, name)
    except NotFound:
        return None


@dataclass
class PoolInfo:
    host: str
    name: str
    type: str
    state: str
    autostart: bool
    persistent: bool
    capacity: int
    allocation: int
    available: int
    path: str | None
    source: str | None
    volumes: int | None = None
    stale: str | None = None  # why the volume count may be out of date (see rescan)

    def to_dict(self) -> dict:
        return asdict(self)


def _source_text(pool: StoragePool) -> str | None:
    s = pool.source
    if s is None:
        return None
    if s.host and s.devices:  # iSCSI
        return f"{s.host.name}:{s.host.port or ISCSI_PORT}/{s.devices[0].path}"
    if s.host and s.dir:
        return f"{s.host.name}:{s.dir.path}"
    if s.devices:
        return ",".join(d.path for d in s.devices)
    return s.name


# Pools whose volume list is a directory listing: re-scanned before every listing and before a
# lookup that misses (a readdir and a header probe per file). libvirt caches a pool's list at
# its last refresh, so a volume another host wrote into a shared directory (netfs, or a dir
# pool over a shared mount) is otherwise missing here until someone runs `pool refresh`.
RESCANNED_TYPES = frozenset({"dir", "fs", "netfs"})


def rescan(host: Host, pool: libvirt.virStoragePool) -> str | None:
    """Refresh a running pool whose list is cheap to re-read; None when its view is fresh, else
    a note saying why this host's view of it may be stale."""
    model = StoragePool.from_xml(pool.XMLDesc())
    if model.type not in RESCANNED_TYPES:
        return (f"pool {model.name} ({model.type}) on {host.name} shows libvirt's last scan: "
                f"`vpd pool refresh {model.name} --host {host.name}` re-reads it")
    try:
        if refresh_listing(pool):
            return None
        reason = "libvirt is building a volume in it"
    except libvirt.libvirtError as exc:
        reason = exc.get_error_message()
    return f"pool {model.name} on {host.name} could not be re-scanned ({reason}): its list may be stale"


def describe(host: Host, pool: libvirt.virStoragePool, count_volumes: bool = True) -> PoolInfo:
    state, capacity, allocation, available = pool.info()
    model = StoragePool.from_xml(pool.XMLDesc())
    volumes = None
    if count_volumes and state == libvirt.VIR_STORAGE_POOL_RUNNING:
        volumes = pool.numOfVolumes()
    return PoolInfo(host.name, model.name, model.type, STATES.get(state, "unknown"), bool(pool.autostart()),
                    bool(pool.isPersistent()), capacity, allocation, available,
                    model.target.path if model.target else None, _source_text(model), volumes)


@dataclass
class HostPools:
    host: str
    pools: list[PoolInfo] = field(default_factory=list)
    error: str | None = None


def _described(host: Host, pool: libvirt.virStoragePool) -> PoolInfo:
    stale = rescan(host, pool) if pool.isActive() else None
    info = describe(host, pool)
    info.stale = stale
    return info


def list_pools(conns: Connections, hosts: list[Host], include_inactive: bool = False) -> list[HostPools]:
    """Every pool of every host, the hosts asked in parallel."""
    flags = 0 if include_inactive else libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE

    def one(host: Host) -> HostPools:
        try:
            pools = conns.call(host, lambda c: [_described(host, p) for p in c.listAllStoragePools(flags)])
            return HostPools(host.name, sorted(pools, key=lambda p: p.name))
        except VpdError as exc:
            return HostPools(host.name, [], exc.message)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as executor:
        return list(executor.map(one, hosts))


# --- creating ----------------------------------------------------------------------

def _login_error(pool_type: str, spec: PoolSpec, message: str) -> VpdError:
    low = message.lower()
    if "authentication failure" in low:
        return VpdError(f"the iSCSI target refused the CHAP credentials of user {spec.chap_user!r}",
                        hint="check the user and secret given to `vpd iscsi target create --chap`")
    if "authorization failure" in low or "not authorized" in low or "target not found" in low:
        # tgt hides a target from initiators outside its ACL: both read "Target not found".
        return VpdError(f"the portal {spec.source_host} offers no target {spec.target_iqn} to initiator "
                        f"{spec.initiator_iqn}: the target does not exist there or its ACL does not admit that IQN",
                        hint="check --target, and allow the initiator on the target: "
                             "`vpd iscsi target create ... --allow HOST=IQN`")
    return VpdError(f"starting the {pool_type} pool {spec.name} failed: {message}")


def _check_devices(host: Host, spec: PoolSpec) -> None:
    """Source devices must be block devices on the host itself (exit 2 before anything changes)."""
    if host.uri.startswith("test:"):
        return
    runner = runner_for(host)
    for device in spec.source_devices:
        if not runner.run(["test", "-b", device], check=False).ok:
            raise UsageError(f"{host.name}: {device} is not a block device there",
                             hint="give a disk, partition or loop device of that host (e.g. `losetup -f --show FILE`)")


def _check_portal(host: Host, pool: StoragePool) -> None:
    """An iSCSI portal must answer from the initiator host: a firewall that drops 3260 would
    otherwise leave libvirt's login hanging for minutes. Probed in 2 s, before any change."""
    from ..hostprep.firewall import FILTERED, UNREACHABLE, probe_ports

    if pool.type not in ("iscsi", "iscsi-direct") or host.uri.startswith("test:"):
        return
    server = pool.source.host if pool.source else None
    if server is None:  # pool_xml gives every iSCSI pool its portal
        return
    try:
        ipaddress.ip_address(server.name)
    except ValueError:
        return  # a name: resolved by the initiator itself, which reports its own errors
    state = probe_ports(host, server.name, [server.port or ISCSI_PORT])[server.port or ISCSI_PORT]
    if state in (FILTERED, UNREACHABLE):
        raise VpdError(f"{host.name} cannot reach the iSCSI portal {server.name}:{server.port}: {state}",
                       hint="a firewall drops it: `vpd iscsi target create ... --allow` "
                            "opens it to the initiator's host")
    if state != "open":
        raise VpdError(f"nothing listens on the iSCSI portal {server.name}:{server.port} ({state})",
                       hint="create the target first: `vpd iscsi target create`")


def create_pool(conn: libvirt.virConnect, host: Host, spec: PoolSpec, *, password: str | None = None,
                start: bool = True, autostart: bool = False, undo: Undo | None = None,
                plan: Callable[[], None] | None = None) -> dict:
    """Define, build, start and (optionally) autostart a pool; undo every step done if one fails.

    Same name and same settings: nothing to do. Same name, other settings: UsageError.
    With `undo` (an Operation's), the steps are pushed there and run (and journaled) by its
    owner; without, they run here before the error goes on. `plan` is called once the pool is
    known to be new, just before anything is made (an Operation journals the pool there)."""
    wanted = pool_xml(spec)
    if spec.chap_user and password is None:
        raise UsageError("--chap needs the secret: --chap-secret-file FILE or $VPD_CHAP_SECRET")
    existing = existing_pool(conn, host, spec.name)
    if existing is not None:
        diff = differences(StoragePool.from_xml(existing.XMLDesc(0)), wanted)
        if diff:
            raise UsageError(f"pool {spec.name} already exists on {host.name} with other settings: " + "; ".join(diff),
                             hint="delete it first, or pick another name")
        return {"host": host.name, "pool": spec.name, "changed": False,
                "state": describe(host, existing, count_volumes=False).state}
    checks = require_pool_type(host, conn, spec.type, mkfs=spec.build and spec.type == "fs")
    _check_devices(host, spec)
    _check_portal(host, wanted)

    if plan is not None:
        plan()
    steps_undo = undo if undo is not None else Undo()
    steps: list[str] = []
    with steps_undo if undo is None else nullcontext():
        if spec.chap_user:
            assert password is not None  # checked on entry
            usage = secrets.pool_usage_id(spec.name)
            if secrets.store(conn, usage, password, f"vpd: CHAP secret of pool {spec.name}"):
                steps_undo.push(lambda: secrets.remove(conn, usage), f"remove the CHAP secret of pool {spec.name}")
            steps.append("secret")
        pool = conn.storagePoolDefineXML(wanted.to_xml_string())
        steps_undo.push(pool.undefine, f"undefine pool {spec.name}")
        steps.append("define")
        if spec.type in ("dir", "fs", "netfs") or (spec.type == "logical" and spec.build):
            flags = libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE if spec.build else 0
            path_existed = (spec.type != "logical" and wanted.target is not None
                            and _path_exists(host, wanted.target.path))
            pool.build(flags)
            if spec.type == "logical" or not path_existed:
                # pool.delete removes what build made: the directory (if empty) or the VG.
                steps_undo.push(lambda: pool.delete(0), f"remove what building pool {spec.name} made")
            steps.append("build")
        if start:
            try:
                pool.create(0)
            except libvirt.libvirtError as exc:
                if spec.type in ("iscsi", "iscsi-direct"):
                    raise _login_error(spec.type, spec, exc.get_error_message()) from None
                raise
            steps_undo.push(pool.destroy, f"stop pool {spec.name}")
            steps.append("start")
        if autostart:
            pool.setAutostart(1)
            steps.append("autostart")
    info = describe(host, pool)
    return {"host": host.name, "pool": spec.name, "changed": True, "steps": steps,
            "checks": [c.to_dict() for c in checks],
            **{k: v for k, v in info.to_dict().items() if k not in ("host", "name")}}


def _path_exists(host: Host, path: str | None) -> bool:
    if not path or host.uri.startswith("test:"):
        return False
    return runner_for(host).run(["test", "-e", path], check=False).ok


# --- the other verbs ---------------------------------------------------------------

def start_pool(host: Host, pool: libvirt.virStoragePool) -> dict:
    changed = not pool.isActive()
    if changed:
        pool.create(0)
    return {"host": host.name, "pool": pool.name(), "changed": changed, "state": "running"}


def stop_pool(host: Host, pool: libvirt.virStoragePool, users: list[str]) -> dict:
    """`users`: running VMs with disks in this pool; stopping it under them is refused."""
    if not pool.isActive():
        return {"host": host.name, "pool": pool.name(), "changed": False, "state": "inactive"}
    if users:
        raise UsageError(f"pool {pool.name()} holds disks of running VMs: {', '.join(users)}",
                         hint="stop or detach them first")
    pool.destroy()
    return {"host": host.name, "pool": pool.name(), "changed": True, "state": "inactive"}


def set_autostart(host: Host, pool: libvirt.virStoragePool, enable: bool) -> dict:
    changed = bool(pool.autostart()) != enable
    if changed:
        pool.setAutostart(1 if enable else 0)
    return {"host": host.name, "pool": pool.name(), "changed": changed, "autostart": enable}


def refresh_pool(host: Host, pool: libvirt.virStoragePool) -> dict:
    if not pool.isActive():
        raise UsageError(f"pool {pool.name()} is not running",
                         hint=f"`vpd pool start {pool.name()} --host {host.name}`")
    pool.refresh(0)
    return describe(host, pool).to_dict()


def delete_pool(conn: libvirt.virConnect, host: Host, pool: libvirt.virStoragePool, *, wipe: bool,
                users: list[str]) -> dict:
    """Stop and undefine the pool; with `wipe`, first delete its volumes and what build made.

    `users`: VMs (running or not) with disks in this pool: deleting it under them is refused."""
    name = pool.name()
    if users:
        raise UsageError(f"pool {name} holds disks of VMs: {', '.join(users)}", hint="detach or undefine them first")
    model = StoragePool.from_xml(pool.XMLDesc(0))
    removed: list[str] = []
    notes: list[str] = []
    if wipe:
        if model.type in ("iscsi", "iscsi-direct"):
            notes.append("an iSCSI pool's LUNs belong to the target: nothing wiped (`vpd iscsi target delete`)")
        else:
            if not pool.isActive():
                pool.create(0)
            for vol in pool.listAllVolumes(0):
                removed.append(vol.name())
                vol.delete(0)
    if pool.isActive():
        pool.destroy()
    if wipe and model.type not in ("iscsi", "iscsi-direct"):
        try:
            pool.delete(0)  # the directory, the mount point or the volume group
            notes.append(f"removed {model.target.path if model.target else 'the pool structure'}")
        except libvirt.libvirtError as exc:
            notes.append(f"could not remove the pool's structure: {exc.get_error_message()}")
    if pool.isPersistent():
        pool.undefine()
    if model.source and model.source.auth and secrets.remove(conn, secrets.pool_usage_id(name)):
        notes.append("removed its CHAP secret")
    return {"host": host.name, "pool": name, "wiped": wipe, "volumes_deleted": removed, "notes": notes}
