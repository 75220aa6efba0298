"""Typed libvirt XML: each element a small declarative pydantic-xml model, never a pasted string.

Parse what libvirt reports with ``Model.from_xml(text)``; build definitions with the models or
the builders (lab_guest_domain, dir_pool, volume) and hand ``model.to_xml_string()`` to libvirt.

Names are loaded from their submodule on first use (PEP 562): building pydantic-xml models costs
time, and a command that only needs pools and volumes (`vpd vol list`) should not pay for domains.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SUBMODULE = {
    "Flag": "base",
    "LibvirtXml": "base",
    "Channel": "devices",
    "CharLog": "devices",
    "CharSource": "devices",
    "CharTarget": "devices",
    "Console": "devices",
    "Devices": "devices",
    "Disk": "devices",
    "DiskAuth": "devices",
    "DiskAuthSecret": "devices",
    "DiskDriver": "devices",
    "DiskInitiator": "devices",
    "DiskIqn": "devices",
    "DiskSource": "devices",
    "DiskSourceHost": "devices",
    "DiskTarget": "devices",
    "Emulator": "devices",
    "Graphics": "devices",
    "Interface": "devices",
    "InterfaceModel": "devices",
    "InterfaceSource": "devices",
    "InterfaceTarget": "devices",
    "MacAddress": "devices",
    "Serial": "devices",
    "DiskEditor": "edit",
    "DomainEditor": "edit",
    "InterfaceEditor": "edit",
    "Boot": "domain",
    "Clock": "domain",
    "Domain": "domain",
    "Features": "domain",
    "Os": "domain",
    "OsType": "domain",
    "lab_guest_domain": "domain",
    "Dhcp": "network",
    "DhcpHost": "network",
    "DhcpRange": "network",
    "Forward": "network",
    "ForwardInterface": "network",
    "Network": "network",
    "NetworkBridge": "network",
    "NetworkIp": "network",
    "virtual_network": "network",
    "AuthSecret": "pool",
    "CapabilityPool": "pool",
    "Iqn": "pool",
    "Permissions": "pool",
    "PoolAuth": "pool",
    "PoolInitiator": "pool",
    "PoolSource": "pool",
    "PoolSourceDevice": "pool",
    "PoolSourceDir": "pool",
    "PoolSourceFormat": "pool",
    "PoolSourceHost": "pool",
    "PoolTarget": "pool",
    "StoragePool": "pool",
    "StoragePoolCapabilities": "pool",
    "dir_pool": "pool",
    "Secret": "secret",
    "SecretUsage": "secret",
    "iscsi_secret": "secret",
    "MemorySize": "units",
    "ScaledInteger": "units",
    "StorageSize": "units",
    "to_bytes": "units",
    "unit_scale": "units",
    "BackingStore": "volume",
    "StorageVolume": "volume",
    "VolumeFormat": "volume",
    "VolumeTarget": "volume",
    "volume": "volume",
}

__all__ = sorted(_SUBMODULE)


def __getattr__(name: str) -> Any:
    try:
        module = _SUBMODULE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


# The builder `volume` shares its name with its submodule: importing the submodule binds the
# module to that name here, so the function is bound now, after it, and stays.
from .volume import volume  # noqa: E402

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .base import Flag, LibvirtXml  # noqa: F401
    from .devices import (  # noqa: F401
        Channel,
        CharLog,
        CharSource,
        CharTarget,
        Console,
        Devices,
        Disk,
        DiskAuth,
        DiskAuthSecret,
        DiskDriver,
        DiskInitiator,
        DiskIqn,
        DiskSource,
        DiskSourceHost,
        DiskTarget,
        Emulator,
        Graphics,
        Interface,
        InterfaceModel,
        InterfaceSource,
        InterfaceTarget,
        MacAddress,
        Serial,
    )
    from .domain import Boot, Clock, Domain, Features, Os, OsType, lab_guest_domain  # noqa: F401
    from .edit import DiskEditor, DomainEditor, InterfaceEditor  # noqa: F401
    from .network import Dhcp, DhcpRange, Forward, Network, NetworkBridge, NetworkIp  # noqa: F401
    from .pool import (  # noqa: F401
        AuthSecret,
        CapabilityPool,
        Iqn,
        Permissions,
        PoolAuth,
        PoolInitiator,
        PoolSource,
        PoolSourceDevice,
        PoolSourceDir,
        PoolSourceFormat,
        PoolSourceHost,
        PoolTarget,
        StoragePool,
        StoragePoolCapabilities,
        dir_pool,
    )
    from .secret import Secret, SecretUsage, iscsi_secret  # noqa: F401
    from .units import MemorySize, ScaledInteger, StorageSize, to_bytes, unit_scale  # noqa: F401
    from .volume import BackingStore, StorageVolume, VolumeFormat, VolumeTarget, volume  # noqa: F401
