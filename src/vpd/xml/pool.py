"""``<pool>``: a libvirt storage pool, its builders, and libvirt's storage pool capabilities."""
from __future__ import annotations

import os
from typing import Literal

from pydantic_xml import attr, element

from ..core.names import check_name
from .base import LibvirtXml
from .checks import require_absolute_path
from .units import StorageSize

PoolType = Literal[
    "dir", "fs", "netfs", "logical", "iscsi", "iscsi-direct", "disk", "scsi", "mpath", "rbd",
    "sheepdog", "gluster", "zfs", "vstorage",
]


class PoolSourceDevice(LibvirtXml, tag="device"):
    """A block device path, or the target IQN for iSCSI pools."""

    path: str = attr()


class PoolSourceHost(LibvirtXml, tag="host"):
    name: str = attr()
    port: int | None = attr(default=None)


class PoolSourceDir(LibvirtXml, tag="dir"):
    """The exported directory of a netfs pool."""

    path: str = attr()


class PoolSourceFormat(LibvirtXml, tag="format"):
    """The filesystem ('ext4', 'nfs'...) or partition table / LVM format of the source."""

    type: str = attr()


class Iqn(LibvirtXml, tag="iqn"):
    name: str = attr()


class PoolInitiator(LibvirtXml, tag="initiator"):
    """The IQN an iscsi-direct pool logs in as."""

    iqn: Iqn = element()


class AuthSecret(LibvirtXml, tag="secret"):
    """A libvirt secret holding the password, found by its usage name or its UUID."""

    usage: str | None = attr(default=None)
    uuid: str | None = attr(default=None)


class PoolAuth(LibvirtXml, tag="auth"):
    type: Literal["chap", "ceph"] = attr()
    username: str = attr()
    secret: AuthSecret = element()


class PoolSource(LibvirtXml, tag="source"):
    devices: list[PoolSourceDevice] = element(default_factory=list)
    name: str | None = element(default=None)
    """The volume group of a logical pool."""
    host: PoolSourceHost | None = element(default=None)
    dir: PoolSourceDir | None = element(default=None)
    format: PoolSourceFormat | None = element(default=None)
    initiator: PoolInitiator | None = element(default=None)
    auth: PoolAuth | None = element(default=None)


class Permissions(LibvirtXml, tag="permissions"):
    mode: str | None = element(default=None)
    """Octal, as libvirt writes it: '0755'."""
    owner: int | None = element(default=None)
    group: int | None = element(default=None)
    label: str | None = element(default=None)


class PoolTarget(LibvirtXml, tag="target"):
    path: str | None = element(default=None)
    permissions: Permissions | None = element(default=None)


class StoragePool(LibvirtXml, tag="pool"):
    type: PoolType = attr()
    name: str = element()
    uuid: str | None = element(default=None)
    # What libvirt measured when it last refreshed the pool: reported back, ignored on define,
    # hence frozen once parsed.
    capacity: StorageSize | None = element(tag="capacity", default=None, frozen=True)
    allocation: StorageSize | None = element(tag="allocation", default=None, frozen=True)
    available: StorageSize | None = element(tag="available", default=None, frozen=True)
    source: PoolSource | None = element(default=None)
    target: PoolTarget | None = element(default=None)


def dir_pool(name: str, path: str | os.PathLike[str]) -> StoragePool:
    """A pool of image files in the host directory `path`; raises UsageError for bad arguments."""
    return StoragePool(
        type="dir",
        name=check_name(name, "pool name"),
        target=PoolTarget(path=require_absolute_path(path, "pool path")),
    )


class CapabilityPool(LibvirtXml, tag="pool"):
    """One pool type in ``<storagepoolCapabilities>``: whether this daemon has its backend."""

    type: str = attr()
    supported: Literal["yes", "no"] = attr()


class StoragePoolCapabilities(LibvirtXml, tag="storagepoolCapabilities"):
    """What virConnectGetStoragePoolCapabilities reports."""

    pools: list[CapabilityPool] = element(default_factory=list)

    def supported(self, pool_type: str) -> bool:
        return any(p.type == pool_type and p.supported == "yes" for p in self.pools)
