"""``<domainsnapshot>``: what vpd asks libvirt to snapshot, and what libvirt reports back."""
from __future__ import annotations

from typing import Literal

from pydantic_xml import attr, element, wrapped

from .base import LibvirtXml
from .domain import Domain

SnapshotLocation = Literal["no", "internal", "external", "manual"]


class SnapshotSource(LibvirtXml, tag="source"):
    file: str | None = attr(default=None)


class SnapshotDisk(LibvirtXml, tag="disk"):
    """One disk's part of a snapshot: kept inside its qcow2 (internal) or in a new overlay file (external)."""

    name: str = attr()
    """The disk's target device (vda, hda...) or its source path."""
    snapshot: SnapshotLocation | None = attr(default=None)
    source: SnapshotSource | None = element(default=None)
    """For external: the overlay file that receives the guest's writes from now on."""


class SnapshotMemory(LibvirtXml, tag="memory"):
    snapshot: SnapshotLocation = attr()
    file: str | None = attr(default=None)


class SnapshotParent(LibvirtXml, tag="parent"):
    name: str = element()


class DomainSnapshot(LibvirtXml, tag="domainsnapshot"):
    name: str = element()
    description: str | None = element(default=None)
    state: str | None = element(default=None)
    """The guest's state when taken: 'running', 'paused', 'shutoff', or 'disk-snapshot' for disk-only ones."""
    creation_time: int | None = element(tag="creationTime", default=None)
    parent: SnapshotParent | None = element(default=None)
    memory: SnapshotMemory | None = element(default=None)
    disks: list[SnapshotDisk] = wrapped("disks", element(default_factory=list))
    domain: Domain | None = element(default=None)
    """The guest's definition when the snapshot was taken, as libvirt reports it (never sent)."""

    @property
    def external(self) -> bool:
        return any(d.snapshot == "external" for d in self.disks) or (
            self.memory is not None and self.memory.snapshot == "external")

    @property
    def has_memory(self) -> bool:
        return self.memory is not None and self.memory.snapshot != "no"
