"""``<domainbackup>`` and ``<domaincheckpoint>``: libvirt's backup API, push mode.

A checkpoint asks QEMU to keep a dirty bitmap in each qcow2 disk from now on; a later
backup that names it as ``<incremental>`` copies only the blocks written since."""
from __future__ import annotations

from typing import Literal

from pydantic_xml import attr, element, wrapped

from .base import LibvirtXml


class BackupTarget(LibvirtXml, tag="target"):
    file: str = attr()


class BackupDriver(LibvirtXml, tag="driver"):
    type: str = attr()


class BackupDisk(LibvirtXml, tag="disk"):
    name: str = attr()
    """The disk's target device (hda, vda...)."""
    backup: Literal["yes", "no"] = attr(default="yes")
    type: Literal["file"] | None = attr(default="file")
    target: BackupTarget | None = element(default=None)
    driver: BackupDriver | None = element(default=None)


class DomainBackup(LibvirtXml, tag="domainbackup"):
    mode: Literal["push", "pull"] = attr(default="push")
    incremental: str | None = element(default=None)
    """The checkpoint this backup copies changes since; None for a full backup."""
    disks: list[BackupDisk] = wrapped("disks", element(default_factory=list))


class CheckpointDisk(LibvirtXml, tag="disk"):
    name: str = attr()
    checkpoint: Literal["bitmap", "no"] = attr(default="bitmap")


class DomainCheckpoint(LibvirtXml, tag="domaincheckpoint"):
    name: str = element()
    description: str | None = element(default=None)
    disks: list[CheckpointDisk] = wrapped("disks", element(default_factory=list))


def push_backup(files: dict[str, str], incremental: str | None = None,
                formats: dict[str, str] | None = None) -> DomainBackup:
    """Back up each disk target in `files` into its file (written by QEMU on the VM's host), in
    its format from `formats` (qcow2 when not given)."""
    formats = formats or {}
    return DomainBackup(
        mode="push", incremental=incremental,
        disks=[BackupDisk(name=target, target=BackupTarget(file=path),
                          driver=BackupDriver(type=formats.get(target, "qcow2")))
               for target, path in files.items()],
    )


def checkpoint(name: str, targets: list[str], description: str | None = None) -> DomainCheckpoint:
    return DomainCheckpoint(name=name, description=description,
                            disks=[CheckpointDisk(name=t) for t in targets])
