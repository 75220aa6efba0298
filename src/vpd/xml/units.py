"""Sizes in libvirt XML: ``<memory unit='KiB'>131072</memory>``, ``<capacity unit='bytes'>...``.

Units are read the way libvirt's own virScaleInteger reads them, case-insensitively:
'b', 'byte' or 'bytes'; a power prefix k, m, g, t, p or e alone or followed by 'iB' for powers
of 1024; the prefix followed by 'B' for powers of 1000. So 'KB' is 1000 while 'K', 'k' and 'KiB'
are 1024. Mirroring libvirt exactly means we read whatever it writes or accepts and reject what it
would reject. (User-typed sizes such as '10G' are vpd.core.names.parse_size's business.)
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import NonNegativeInt, model_validator
from pydantic_xml import attr

from .base import LibvirtXml

MAX_BYTES = 2**64 - 1
"""libvirt holds every scaled size in an unsigned long long."""

_PREFIX_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def unit_scale(unit: str) -> int:
    """Bytes per one `unit`, e.g. 1024 for 'KiB' or 'k', 1000 for 'KB'; ValueError if unknown."""
    folded = unit.lower()
    if folded in ("b", "byte", "bytes"):
        return 1
    power = _PREFIX_POWERS.get(folded[:1])
    suffix = folded[1:]
    if power is None or suffix not in ("", "ib", "b"):
        raise ValueError(f"unknown size unit {unit!r}")
    return (1000 if suffix == "b" else 1024) ** power


def to_bytes(value: int, unit: str) -> int:
    """`value` `unit`s in bytes; ValueError if negative, the unit is unknown or it overflows libvirt."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"size must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"size must not be negative, got {value}")
    scaled = value * unit_scale(unit)
    if scaled > MAX_BYTES:
        raise ValueError(f"{value} {unit} is more than libvirt can hold (2^64 - 1 bytes)")
    return scaled


class ScaledInteger(LibvirtXml):
    """An element holding a count of `unit`s; without a unit the element's default applies."""

    default_unit: ClassVar[str]

    unit: str | None = attr(default=None)
    value: NonNegativeInt

    @model_validator(mode="after")
    def _fits_libvirt(self) -> ScaledInteger:
        to_bytes(self.value, self.unit or self.default_unit)  # ValueError: unknown unit, overflow
        return self

    @property
    def in_bytes(self) -> int:
        return to_bytes(self.value, self.unit or self.default_unit)


class MemorySize(ScaledInteger):
    """``<memory>``, ``<currentMemory>``: libvirt counts KiB when no unit is given."""

    default_unit = "KiB"


class StorageSize(ScaledInteger):
    """``<capacity>``, ``<allocation>``, ``<available>``: libvirt counts bytes when no unit is given."""

    default_unit = "bytes"
