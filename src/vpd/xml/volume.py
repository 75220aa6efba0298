"""``<volume>``: a volume in a libvirt storage pool, and its builder."""
from __future__ import annotations

import os
from typing import Literal, get_args

from pydantic_xml import attr, element

from ..core.names import check_name
from .base import LibvirtXml
from .checks import require_absolute_path, require_choice, require_count
from .units import StorageSize

VolumeType = Literal["file", "block", "dir", "network", "netdir", "ploop"]
ImageFormat = Literal[
    "raw", "qcow2", "qed", "vmdk", "vdi", "vpc", "vhd", "luks", "iso", "dmg", "bochs", "cloop",
    "fat", "ploop", "dir", "cow", "qcow",
]
"""The file formats libvirt's storage schema knows."""

MAX_VOLUME_BYTES = 1024**5
"""1 PiB, the same ceiling as vpd.core.names.parse_size."""


class VolumeFormat(LibvirtXml, tag="format"):
    type: str = attr()
    """An ImageFormat for file volumes; disk and logical pools use their own names."""


class VolumeTarget(LibvirtXml, tag="target"):
    path: str | None = element(default=None)
    """Chosen by libvirt from the pool's target path and the volume name."""
    format: VolumeFormat | None = element(default=None)


class BackingStore(LibvirtXml, tag="backingStore"):
    """The image a copy-on-write volume reads unwritten blocks from."""

    path: str = element()
    format: VolumeFormat | None = element(default=None)
    """None when libvirt could not tell the backing image's format."""


class StorageVolume(LibvirtXml, tag="volume"):
    type: VolumeType | None = attr(default=None)
    name: str = element()
    capacity: StorageSize = element(tag="capacity")
    """The size the guest sees."""
    allocation: StorageSize | None = element(tag="allocation", default=None)
    """Host space used so far; libvirt reports it, and preallocates this much on create."""
    target: VolumeTarget | None = element(default=None)
    backing_store: BackingStore | None = element(tag="backingStore", default=None)


def volume(
    name: str,
    capacity_bytes: int,
    fmt: ImageFormat = "qcow2",
    backing: str | os.PathLike[str] | None = None,
    *,
    backing_fmt: ImageFormat = "qcow2",
) -> StorageVolume:
    """A new `fmt` volume of `capacity_bytes`, a copy-on-write overlay of `backing` when given.

    The backing image's format is always written out (`backing_fmt`): letting QEMU probe it would
    let a guest that writes a qcow2 header into a raw image make the host open other files.
    Raises UsageError for bad arguments.
    """
    backing_store = None
    if backing is not None:
        backing_store = BackingStore(
            path=require_absolute_path(backing, "backing image"),
            format=VolumeFormat(type=require_choice(backing_fmt, "backing format", get_args(ImageFormat))),
        )
    return StorageVolume(
        name=check_name(name, "volume name"),
        capacity=StorageSize(
            value=require_count(capacity_bytes, "volume capacity (bytes)", maximum=MAX_VOLUME_BYTES),
            unit="bytes",
        ),
        target=VolumeTarget(format=VolumeFormat(type=require_choice(fmt, "volume format", get_args(ImageFormat)))),
        backing_store=backing_store,
    )
