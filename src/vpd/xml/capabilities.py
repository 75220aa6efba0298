"""``<capabilities>`` (virConnectGetCapabilities: the architectures and domain types a host
runs) and ``<domainCapabilities>`` (virConnectGetDomainCapabilities: for one emulator, arch,
machine and domain type, the CPU modes and models, and the firmware it can boot). Read-only
models: only what `vm create --arch/--cpu/--boot uefi` checks."""
from __future__ import annotations

from pydantic_xml import attr, element

from .base import LibvirtXml


class HostCpu(LibvirtXml, tag="cpu"):
    arch: str = element(default="")


class HostInfo(LibvirtXml, tag="host"):
    cpu: HostCpu = element(default_factory=HostCpu)


class GuestDomainType(LibvirtXml, tag="domain"):
    type: str = attr()


class GuestMachine(LibvirtXml, tag="machine"):
    name: str = ""
    canonical: str | None = attr(default=None)


class GuestArch(LibvirtXml, tag="arch"):
    name: str = attr()
    emulator: str | None = element(default=None)
    machines: list[GuestMachine] = element(default_factory=list)
    domains: list[GuestDomainType] = element(default_factory=list)


class Guest(LibvirtXml, tag="guest"):
    os_type: str = element(default="")
    arch: GuestArch = element()


class Capabilities(LibvirtXml, tag="capabilities"):
    host: HostInfo = element(default_factory=HostInfo)
    guests: list[Guest] = element(default_factory=list)

    def domain_types(self, arch: str) -> set[str]:
        """Domain types ('qemu' = TCG, 'kvm') offered for full-virtualization guests of `arch`."""
        return {d.type for g in self.guests if g.os_type == "hvm" and g.arch.name == arch for d in g.arch.domains}

    def hvm_arches(self) -> list[str]:
        return sorted({g.arch.name for g in self.guests if g.os_type == "hvm"})


class EnumValue(LibvirtXml, tag="value"):
    text: str = ""


class Enum(LibvirtXml, tag="enum"):
    name: str = attr()
    values: list[EnumValue] = element(default_factory=list)


class LoaderCaps(LibvirtXml, tag="loader"):
    supported: str = attr(default="no")
    values: list[EnumValue] = element(default_factory=list)
    """Firmware images (OVMF_CODE*.fd) libvirt knows from the firmware descriptors."""
    enums: list[Enum] = element(default_factory=list)


class OsCaps(LibvirtXml, tag="os"):
    supported: str = attr(default="no")
    enums: list[Enum] = element(default_factory=list)
    loader: LoaderCaps | None = element(default=None)

    def firmwares(self) -> list[str]:
        return [v.text for e in self.enums if e.name == "firmware" for v in e.values]


class CpuModelCaps(LibvirtXml, tag="model"):
    name: str = ""
    usable: str | None = attr(default=None)
    """'yes', 'no' (the host lacks features: see <blockers>) or 'unknown'."""


class CpuBlockerFeature(LibvirtXml, tag="feature"):
    name: str = attr()


class CpuBlockers(LibvirtXml, tag="blockers"):
    model: str = attr()
    features: list[CpuBlockerFeature] = element(default_factory=list)


class CpuModeCaps(LibvirtXml, tag="mode"):
    name: str = attr()
    supported: str = attr(default="no")
    models: list[CpuModelCaps] = element(default_factory=list)
    blockers: list[CpuBlockers] = element(default_factory=list)


class CpuCaps(LibvirtXml, tag="cpu"):
    modes: list[CpuModeCaps] = element(default_factory=list)

    def mode(self, name: str) -> CpuModeCaps | None:
        return next((m for m in self.modes if m.name == name), None)


class DomainCapabilities(LibvirtXml, tag="domainCapabilities"):
    path: str = element(default="")
    domain: str = element(default="")
    machine: str = element(default="")
    arch: str = element(default="")
    os: OsCaps = element(default_factory=OsCaps)
    cpu: CpuCaps = element(default_factory=CpuCaps)
