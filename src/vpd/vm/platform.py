"""`vm create --arch/--cpu/--boot uefi`: what the host can run, asked of libvirt before anything
is made. The checks are pure, over the host's capabilities and domain capabilities (XML models
in xml/capabilities.py); `resolve` is the one place that asks libvirt for them."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import libvirt

from ..core.errors import UsageError, VpdError
from ..xml.capabilities import Capabilities, DomainCapabilities
from ..xml.domain import Cpu, cpu_element

CPU_MODES = ("host-model", "host-passthrough")
FIRMWARES = ("bios", "uefi")
_NOT_PLAIN_OVMF = ("secboot", ".ms.", "snakeoil")
"""OVMF builds with Secure Boot (they need SMM and q35) or Microsoft's keys enrolled: vpd picks
the plain build, which boots any OS on both the pc and q35 machines."""


def check_cpu_syntax(cpu: str) -> None:
    if not cpu or any(c.isspace() or c in "<>&'\"/" for c in cpu):
        raise UsageError(f"--cpu {cpu!r}: use host-model, host-passthrough or a CPU model name such as qemu64")


@dataclass(frozen=True)
class Platform:
    domain_type: str
    arch: str | None
    cpu: Cpu | None
    uefi_loader: str | None

    def summary(self) -> dict | None:
        """What the result shows: the arch, CPU and UEFI loader chosen (None when nothing was asked)."""
        if self.arch is None and self.cpu is None and self.uefi_loader is None:
            return None
        cpu = None if self.cpu is None else (self.cpu.model.name if self.cpu.model else self.cpu.mode)
        return {"arch": self.arch, "cpu": cpu, "uefi_loader": self.uefi_loader}


def domain_type_for(caps: Capabilities, arch: str, wanted: str, accel: str, host: str) -> str:
    """The domain type ('kvm' or 'qemu') for a guest of `arch`: `wanted` (what the host's own arch
    gets) when the host offers it for `arch`, else TCG unless KVM was asked for."""
    offered = caps.domain_types(arch)
    if not offered:
        known = caps.hvm_arches()
        raise UsageError(f"{host} cannot run {arch} guests: its libvirt offers {', '.join(known) or 'none'}",
                         hint=f"install qemu-system for {arch} on {host} (libvirt lists an arch once its "
                              "emulator is installed)" if arch not in known else None)
    if wanted in offered:
        return wanted
    if accel == "kvm" or "qemu" not in offered:
        raise UsageError(f"{host} has no {'KVM' if wanted == 'kvm' else wanted} for {arch} guests "
                         f"(only {', '.join(sorted(offered))})",
                         hint="--accel tcg emulates it (slow)" if "qemu" in offered else None)
    return "qemu"


def cpu_choice(domcaps: DomainCapabilities, cpu: str, host: str) -> Cpu:
    """The <cpu> for `cpu`: a mode the host supports, or a model usable on it (exit 2 naming why not)."""
    tcg = domcaps.domain == "qemu"
    if cpu in CPU_MODES:
        mode = domcaps.cpu.mode(cpu)
        if mode is None or mode.supported != "yes":
            if cpu == "host-passthrough" and tcg:
                raise UsageError(f"--cpu host-passthrough needs KVM: {host} runs this guest under TCG (emulation), "
                                 "which has no host CPU to pass through",
                                 hint="--cpu host-model (the host's model, emulated) or a model such as qemu64")
            raise UsageError(f"--cpu {cpu}: {host}'s libvirt does not support it for {domcaps.arch} "
                             f"{domcaps.domain} guests")
        return cpu_element(cpu)
    custom = domcaps.cpu.mode("custom")
    models = {m.name: m for m in custom.models} if custom is not None and custom.supported == "yes" else {}
    model = models.get(cpu)
    if model is None:
        close = difflib.get_close_matches(cpu, list(models), n=5, cutoff=0.5)
        raise UsageError(f"--cpu {cpu}: no such CPU model on {host} ({domcaps.arch}, {domcaps.domain})",
                         hint=f"closest: {', '.join(close)}" if close else
                         "use host-model, or a model `virsh domcapabilities` lists")
    if model.usable == "no":
        blockers = next((b for b in custom.blockers if b.model == cpu), None) if custom else None
        missing = ", ".join(f.name for f in blockers.features[:8]) if blockers else "some features"
        usable = [m.name for m in custom.models if m.usable == "yes"] if custom else []
        raise UsageError(f"--cpu {cpu}: {host} cannot give a guest that model: it lacks {missing}",
                         hint=f"usable here: {', '.join(usable[:10])}" + (" ..." if len(usable) > 10 else ""))
    return cpu_element("custom", cpu)


def uefi_loader(domcaps: DomainCapabilities, host: str) -> str:
    """The OVMF image to boot: one libvirt lists in the domain capabilities' loader values (it
    knows them from the firmware descriptors in /usr/share/qemu/firmware), plain before Secure Boot."""
    loader = domcaps.os.loader
    values = [v.text for v in loader.values] if loader is not None and loader.supported == "yes" else []
    if "efi" not in domcaps.os.firmwares() or not values:
        raise UsageError(f"--boot uefi: {host} has no UEFI firmware for {domcaps.arch} guests",
                         hint=f"install OVMF on {host} (Debian: ovmf, Fedora: edk2-ovmf)")
    plain = [v for v in values if not any(mark in v for mark in _NOT_PLAIN_OVMF)]
    return (plain or values)[0]


def resolve(conn: libvirt.virConnect, host: str, dtype: str, accel: str, arch: str | None, cpu: str | None,
            firmware: str | None) -> Platform:
    """Every check of --arch/--cpu/--boot uefi against the host, before anything is made."""
    if arch is None and cpu is None and firmware in (None, "bios"):
        return Platform(dtype, None, None, None)
    try:
        caps = Capabilities.from_xml(conn.getCapabilities().encode())
        guest_arch = arch or caps.host.cpu.arch
        dtype = domain_type_for(caps, guest_arch, dtype, accel, host) if arch else dtype
        domcaps = DomainCapabilities.from_xml(conn.getDomainCapabilities(None, guest_arch, None, dtype, 0).encode())
    except libvirt.libvirtError as exc:
        raise VpdError(f"{host}: cannot read libvirt's capabilities: {exc.get_error_message()}") from None
    return Platform(dtype, arch, cpu_choice(domcaps, cpu, host) if cpu else None,
                    uefi_loader(domcaps, host) if firmware == "uefi" else None)
