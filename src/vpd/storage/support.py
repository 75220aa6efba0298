"""Which pool types a host can really run, found before anything is changed.

libvirt's pool capabilities only say whether the daemon has a backend for a type; the
backend still needs the kernel and tools under it (libvirt reports netfs, logical and iscsi
as supported on a kernel with no NFS client, no device-mapper and no iSCSI initiator, and
fails only half-way through; docs/lab.md, "Storage on the lab's kernel"). So vpd asks both: libvirt, then the
host itself, in one remote command.
"""
from __future__ import annotations

from dataclasses import dataclass

import libvirt

from ..connect.inventory import Host
from ..connect.ssh import runner_for
from ..core.checks import Check, failed
from ..core.errors import UsageError
from ..xml.pool import StoragePoolCapabilities

POOL_TYPES = ("dir", "fs", "netfs", "logical", "iscsi", "iscsi-direct")

# A constant script (no user input reaches it): one round trip answers every probe. A module
# that is not loaded counts only where modules can be loaded at all: `modprobe -n` finds the
# file of a module that a kernel without /proc/modules (a container, a sandbox) cannot load.
# Device-mapper is asked of the kernel (its misc device), not of /dev/mapper/control: tools
# such as LVM's create that node even where the kernel has no device-mapper to answer it.
_PROBE = r"""
yes_no() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
echo "nfs_kernel=$(yes_no sh -c 'grep -qwE "nfs|nfs4" /proc/filesystems \
  || { [ -e /proc/modules ] && modprobe -n -q nfs; }')"
echo "mount_nfs=$(yes_no sh -c 'command -v mount.nfs || test -x /sbin/mount.nfs || test -x /usr/sbin/mount.nfs')"
echo "device_mapper=$(yes_no sh -c 'test -e /sys/class/misc/device-mapper || test -e /sys/module/dm_mod \
  || { [ -e /proc/modules ] && modprobe -n -q dm_mod; }')"
echo "lvm=$(yes_no sh -c 'command -v vgcreate || test -x /sbin/vgcreate || test -x /usr/sbin/vgcreate')"
echo "iscsiadm=$(yes_no sh -c 'command -v iscsiadm || test -x /sbin/iscsiadm || test -x /usr/sbin/iscsiadm')"
echo "iscsi_tcp=$(yes_no sh -c 'test -e /sys/module/iscsi_tcp \
  || { [ -e /proc/modules ] && modprobe -n -q iscsi_tcp; }')"
echo "mkfs=$(yes_no sh -c 'command -v mkfs || test -x /sbin/mkfs || test -x /usr/sbin/mkfs')"
"""


class Unsupported(UsageError):
    """The host cannot run what was asked (its kernel or tools lack it); nothing was changed."""


@dataclass(frozen=True)
class HostStorageFacts:
    libvirt_types: frozenset[str]
    probes: dict[str, bool]


def parse_probe(text: str) -> dict[str, bool]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            out[key] = value == "yes"
    return out


def host_facts(host: Host, conn: libvirt.virConnect) -> HostStorageFacts:
    try:
        caps = StoragePoolCapabilities.from_xml(conn.getStoragePoolCapabilities())
        libvirt_types = frozenset(p.type for p in caps.pools if p.supported == "yes")
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        libvirt_types = frozenset(POOL_TYPES)  # a driver that cannot tell (test:///) refuses at define time
    if host.uri.startswith("test:"):
        return HostStorageFacts(libvirt_types, {})  # libvirt's test driver has no host under it
    result = runner_for(host).run(["sh", "-c", _PROBE], check=False, timeout=30, reads=True)
    return HostStorageFacts(libvirt_types, parse_probe(result.stdout))


def checks_for(pool_type: str, facts: HostStorageFacts, *, mkfs: bool = False) -> list[Check]:
    """The named checks a pool of `pool_type` needs on a host with `facts` (pure)."""
    checks = [Check(f"libvirt storage backend '{pool_type}'", pool_type in facts.libvirt_types,
                    "libvirtd has it" if pool_type in facts.libvirt_types else "libvirtd has no backend for it",
                    fix=f"install libvirt's storage driver for {pool_type} and restart libvirtd")]
    p = facts.probes
    if not p:
        return checks

    def need(name: str, key: str, missing: str, fix: str) -> None:
        checks.append(Check(name, p.get(key, False), "present" if p.get(key) else missing, fix=fix))

    if pool_type == "netfs":
        need("NFS client in the kernel", "nfs_kernel", "the kernel has no NFS client (no nfs in /proc/filesystems "
             "and no nfs module)", "use a kernel with NFS support (CONFIG_NFS_FS)")
        need("mount.nfs", "mount_nfs", "mount.nfs is not installed", "install nfs-common (Debian) or nfs-utils")
    elif pool_type == "logical":
        need("device-mapper", "device_mapper", "the kernel has no device-mapper (no device-mapper misc device, "
             "no dm_mod module): LVM cannot create logical volumes", "use a kernel with CONFIG_BLK_DEV_DM")
        need("LVM tools", "lvm", "vgcreate is not installed", "install lvm2")
    elif pool_type == "iscsi":
        need("iscsiadm", "iscsiadm", "iscsiadm is not installed",
             "install open-iscsi (Debian) or iscsi-initiator-utils")
        need("iSCSI initiator in the kernel", "iscsi_tcp", "the kernel has no iscsi_tcp module",
             "use a kernel with the iSCSI initiator, or the userspace one: --type iscsi-direct")
    elif pool_type == "fs" and mkfs:
        need("mkfs", "mkfs", "mkfs is not installed", "install e2fsprogs/xfsprogs")
    return checks


def require_pool_type(host: Host, conn: libvirt.virConnect, pool_type: str, *, mkfs: bool = False) -> list[Check]:
    """The checks, all passed; else Unsupported naming every reason."""
    if pool_type not in POOL_TYPES:
        raise UsageError(f"unknown pool type {pool_type!r}", hint="use one of: " + ", ".join(POOL_TYPES))
    checks = checks_for(pool_type, host_facts(host, conn), mkfs=mkfs)
    bad = failed(checks)
    if bad:
        raise Unsupported(
            f"{host.name} cannot run a {pool_type} pool: " + "; ".join(f"{c.name}: {c.detail}" for c in bad),
            hint="; ".join(c.fix for c in bad if c.fix))
    return checks
