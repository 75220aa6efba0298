"""``<domain>``: a libvirt guest definition, and the builder for vpd's lab guests."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal, get_args
from uuid import UUID

from pydantic import PositiveInt
from pydantic_xml import attr, element

from ..core.errors import UsageError
from ..core.names import check_name
from .base import Flag, LibvirtXml
from .checks import (
    require_absolute_path,
    require_choice,
    require_count,
    require_text,
    require_unicast_mac,
    require_uuid,
)
from .devices import (
    CharLog,
    CharTarget,
    Console,
    Devices,
    Disk,
    DiskDriver,
    DiskSource,
    DiskTarget,
    Graphics,
    GraphicsListen,
    Interface,
    InterfaceModel,
    InterfaceSource,
    MacAddress,
    Serial,
    Video,
    VideoModel,
    VideoModelType,
    guest_agent_channel,
)
from .units import MemorySize

DomainType = Literal["qemu", "kvm", "test"]
"""'kvm' runs on hardware virtualization, 'qemu' emulates, 'test' is libvirt's test driver."""
LifecycleAction = Literal[
    "destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart",
]
BootDevice = Literal["hd", "fd", "cdrom", "network"]
ClockOffset = Literal["utc", "localtime", "timezone", "variable", "absolute"]
LabDiskFormat = Literal["qcow2", "raw"]

MAX_GUEST_MEMORY_MIB = 16 * 1024 * 1024
"""16 TiB: above any host vpd drives, so only gross unit mix-ups (bytes passed as MiB) trip it."""
MAX_VCPUS = 4096
"""KVM's highest per-guest limit on x86 (KVM_MAX_VCPUS); a host built lower refuses at start."""


class OsType(LibvirtXml, tag="type"):
    arch: str | None = attr(default=None)
    machine: str | None = attr(default=None)
    kind: str = "hvm"
    """The element's text: 'hvm' for every QEMU/KVM guest."""


class Boot(LibvirtXml, tag="boot"):
    dev: BootDevice = attr()


class Loader(LibvirtXml, tag="loader"):
    """The UEFI firmware image (OVMF_CODE*.fd), mapped read-only as pflash."""

    readonly: Literal["yes", "no"] | None = attr(default=None)
    type: Literal["rom", "pflash"] | None = attr(default=None)
    path: str = ""


class Nvram(LibvirtXml, tag="nvram"):
    """The VM's own copy of the UEFI variables; libvirt fills it in from the firmware descriptor
    (template OVMF_VARS*.fd, file /var/lib/libvirt/qemu/nvram/NAME_VARS.fd)."""

    template: str | None = attr(default=None)
    path: str = ""


class Os(LibvirtXml, tag="os"):
    """Firmware boot order, or direct kernel boot when `kernel` is set."""

    firmware: Literal["bios", "efi"] | None = attr(default=None)
    type: OsType = element(default_factory=OsType)
    loader: Loader | None = element(default=None)
    nvram: Nvram | None = element(default=None)
    kernel: str | None = element(default=None)
    initrd: str | None = element(default=None)
    cmdline: str | None = element(default=None)
    boot: list[Boot] = element(default_factory=list)


class Features(LibvirtXml, tag="features"):
    acpi: Flag = element(default=False)
    """Without ACPI the guest ignores libvirt's graceful shutdown request."""


CpuMode = Literal["host-model", "host-passthrough", "custom", "maximum"]


class CpuModel(LibvirtXml, tag="model"):
    fallback: Literal["allow", "forbid"] | None = attr(default=None)
    name: str = ""


class Cpu(LibvirtXml, tag="cpu"):
    """The guest's CPU: the host's model (host-model), the host's CPU as is (host-passthrough,
    KVM only) or a named model (custom); absent, libvirt's default model."""

    mode: CpuMode | None = attr(default=None)
    match: Literal["exact", "minimum", "strict"] | None = attr(default=None)
    model: CpuModel | None = element(default=None)


def cpu_element(mode: str, model: str | None = None) -> Cpu:
    """<cpu mode='host-model'/>, <cpu mode='host-passthrough'/> or a named model that must be
    exactly that (fallback forbid: no silent substitution)."""
    require_choice(mode, "CPU mode", get_args(CpuMode))
    if mode == "custom":
        return Cpu(mode="custom", match="exact",
                   model=CpuModel(fallback="forbid", name=require_text(model, "CPU model")))
    return Cpu(mode=mode)


def uefi_os(loader: str) -> tuple[Loader, str]:
    """The read-only pflash loader for `loader` (an OVMF_CODE image); libvirt's firmware
    autoselection ('efi') finds its NVRAM template."""
    return Loader(readonly="yes", type="pflash", path=require_absolute_path(loader, "UEFI loader")), "efi"


class Clock(LibvirtXml, tag="clock"):
    offset: ClockOffset = attr(default="utc")


class Domain(LibvirtXml, tag="domain"):
    type: DomainType = attr()
    name: str = element()
    uuid: str | None = element(default=None)
    memory: MemorySize = element(tag="memory")
    """The guest's maximum memory; libvirt reports it in KiB."""
    current_memory: MemorySize | None = element(tag="currentMemory", default=None)
    vcpu: PositiveInt = element()
    os: Os = element(default_factory=Os)
    features: Features | None = element(default=None)
    cpu: Cpu | None = element(default=None)
    clock: Clock | None = element(default=None)
    on_poweroff: LifecycleAction | None = element(default=None)
    on_reboot: LifecycleAction | None = element(default=None)
    on_crash: LifecycleAction | None = element(default=None)
    devices: Devices = element(default_factory=Devices)

    @property
    def disks(self) -> list[Disk]:
        return self.devices.disks

    @property
    def interfaces(self) -> list[Interface]:
        return self.devices.interfaces

    def disk_paths(self) -> list[str]:
        """Each disk's file or device path, or 'pool/volume'; disks without either are skipped."""
        references = (disk.source.reference for disk in self.disks if disk.source is not None)
        return [reference for reference in references if reference is not None]


DiskBusChoice = Literal["ide", "virtio", "sata", "scsi"]
_DEV_PREFIX = {"ide": "hd", "virtio": "vd", "sata": "sd", "scsi": "sd"}
NicSourceKind = Literal["network", "bridge"]


def disk_target(bus: str, index: int) -> DiskTarget:
    """The guest device name libvirt expects for the index-th disk on `bus` (hda, vdb, sdc...)."""
    require_choice(bus, "disk bus", get_args(DiskBusChoice))
    if not 0 <= index < 26:
        raise UsageError(f"at most 26 disks per bus, not {index + 1}")
    return DiskTarget(dev=_DEV_PREFIX[bus] + chr(ord("a") + index), bus=bus)


def file_disk(path: str | os.PathLike[str], fmt: str = "qcow2", *, bus: str = "ide", index: int = 0) -> Disk:
    """A disk backed by an image file. cache='none' puts guest writes straight on the image,
    which is also what libvirt requires before it live-migrates a disk without --unsafe."""
    return Disk(
        type="file",
        device="disk",
        driver=DiskDriver(name="qemu", type=require_choice(fmt, "disk format", get_args(LabDiskFormat)), cache="none"),
        source=DiskSource(file=require_absolute_path(path, "disk path")),
        target=disk_target(bus, index),
    )


def cdrom_disk(path: str | os.PathLike[str], *, bus: str = "sata", index: int = 0) -> Disk:
    """A read-only CD-ROM drive holding an ISO image (an installer, a cloud-init seed). SATA by
    default: libvirt adds the AHCI controller on both pc and q35 machines."""
    return Disk(
        type="file",
        device="cdrom",
        driver=DiskDriver(name="qemu", type="raw"),
        source=DiskSource(file=require_absolute_path(path, "ISO path")),
        target=disk_target(bus, index),
        readonly=True,
    )


GraphicsChoice = Literal["vnc", "spice"]
VNC_PASSWORD_MAX = 8
"""VNC authentication (a DES key) uses only a password's first 8 characters: longer ones only seem stronger."""


def graphics_device(kind: str, password: str | None = None, listen: str = "127.0.0.1") -> Graphics:
    """A VNC or SPICE display on a port libvirt picks, listening on `listen` (the host's loopback
    by default: reach it through an SSH tunnel)."""
    require_choice(kind, "graphics type", get_args(GraphicsChoice))
    if password is not None:
        require_text(password, "graphics password")
        if kind == "vnc" and len(password) > VNC_PASSWORD_MAX:
            raise UsageError(f"a VNC password has at most {VNC_PASSWORD_MAX} characters")
    listen = require_text(listen, "graphics listen address")
    return Graphics(type=kind, port=-1, autoport="yes", listen=listen, passwd=password,
                    listens=[GraphicsListen(type="address", address=listen)])


def video_device(model: str) -> Video:
    return Video(model=VideoModel(type=require_choice(model, "video model", get_args(VideoModelType))))


def nic(kind: str, source: str, mac: str, model: str = "virtio") -> Interface:
    """A NIC on a libvirt network (`kind` 'network') or a host bridge ('bridge')."""
    require_choice(kind, "interface type", get_args(NicSourceKind))
    name = check_name(source, f"{kind} name")
    return Interface(
        type=kind,
        mac=MacAddress(address=require_unicast_mac(mac, "MAC address")),
        source=InterfaceSource(network=name) if kind == "network" else InterfaceSource(bridge=name),
        model=InterfaceModel(type=check_name(model, "NIC model")),
    )


def guest_domain(
    name: str,
    *,
    memory_mib: int = 128,
    vcpus: int = 1,
    domain_type: DomainType = "qemu",
    uuid: str | UUID | None = None,
    kernel: str | os.PathLike[str] | None = None,
    initrd: str | os.PathLike[str] | None = None,
    cmdline: str = "",
    disks: Sequence[Disk] = (),
    interfaces: Sequence[Interface] = (),
    serial_log: str | os.PathLike[str] | None = None,
    cdroms: Sequence[Disk] = (),
    boot: Sequence[BootDevice] | None = None,
    graphics: Sequence[Graphics] = (),
    videos: Sequence[Video] = (),
    arch: str | None = None,
    cpu: Cpu | None = None,
    uefi_loader: str | None = None,
) -> Domain:
    """A guest, headless unless `graphics` are given: direct kernel boot when `kernel` is given,
    else the firmware boots the devices of `boot` in order (default: the first disk; with
    `cdroms` and no `boot`, a CD-ROM first, then the disk, as an ISO install wants).
    serial0 (ttyS0) is the console, copied to `serial_log` when given; serial1 (ttyS1) is a second
    port (the lab guest takes commands there). Every guest gets the QEMU guest agent's channel
    (`vpd vm ip/exec/fs`, quiesced snapshots and backups). Without `cpu`, no <cpu> element:
    libvirt's default model works under both TCG and KVM. `arch` (x86_64, i686...) and
    `uefi_loader` (an OVMF_CODE image: UEFI firmware with its own NVRAM) are checked against the
    host by vm/platform.py.
    Raises UsageError for arguments libvirt would reject or that are surely a mistake."""
    if kernel is not None:
        os_el = Os(kernel=require_absolute_path(kernel, "kernel"),
                   initrd=require_absolute_path(initrd, "initrd") if initrd else None,
                   cmdline=require_text(cmdline, "kernel command line"))
    else:
        if initrd or cmdline:
            raise UsageError("initrd and cmdline need a kernel (direct kernel boot)")
        if not disks and not cdroms:
            raise UsageError("nothing to boot: give a kernel, a disk or a CD-ROM")
        if boot is None:
            boot = (["cdrom"] if cdroms else []) + (["hd"] if disks else [])
        for dev in boot:
            require_choice(dev, "boot device", get_args(BootDevice))
        os_el = Os(boot=[Boot(dev=dev) for dev in boot])
    if arch is not None:
        os_el.type = OsType(arch=check_name(arch, "architecture"))
    if uefi_loader is not None:
        os_el.loader, os_el.firmware = uefi_os(uefi_loader)
    console_log = None
    if serial_log is not None:
        console_log = CharLog(file=require_absolute_path(serial_log, "serial log"), append="on")
    targets = [d.target.dev for d in [*disks, *cdroms]]
    if len(set(targets)) != len(targets):
        raise UsageError(f"two disks share a target device: {', '.join(targets)}")
    return Domain(
        type=require_choice(domain_type, "domain type", get_args(DomainType)),
        name=check_name(name, "domain name"),
        uuid=None if uuid is None else require_uuid(uuid, "domain UUID"),
        memory=MemorySize(
            value=require_count(memory_mib, "memory (MiB)", maximum=MAX_GUEST_MEMORY_MIB) * 1024,
            unit="KiB",
        ),
        vcpu=require_count(vcpus, "vCPU count", maximum=MAX_VCPUS),
        os=os_el,
        features=Features(acpi=True),
        cpu=cpu,
        devices=Devices(
            disks=[*disks, *cdroms],
            interfaces=list(interfaces),
            serials=[
                Serial(type="pty", target=CharTarget(port=0), log=console_log),
                Serial(type="pty", target=CharTarget(port=1)),
            ],
            consoles=[Console(type="pty", target=CharTarget(type="serial", port=0))],
            channels=[guest_agent_channel()],
            graphics=list(graphics),
            videos=list(videos),
        ),
    )


def lab_guest_domain(
    name: str,
    *,
    kernel: str | os.PathLike[str],
    initrd: str | os.PathLike[str],
    cmdline: str,
    disk_path: str | os.PathLike[str] | None = None,
    disk_format: LabDiskFormat = "qcow2",
    memory_mib: int = 128,
    vcpus: int = 1,
    domain_type: DomainType = "qemu",
    serial_log: str | os.PathLike[str] | None = None,
    uuid: str | UUID | None = None,
    macs: Mapping[str, str] | None = None,
    nic_model: str = "virtio",
) -> Domain:
    """A lab guest booting `kernel` directly, driven over its serial ports.

    `disk_path` becomes IDE disk hda, which any kernel can drive without virtio modules. `macs`
    maps each NIC's MAC address to the libvirt network it joins; without it the guest has no
    network. No graphics: lab guests are headless.
    """
    return guest_domain(
        name, memory_mib=memory_mib, vcpus=vcpus, domain_type=domain_type, uuid=uuid,
        kernel=kernel, initrd=require_absolute_path(initrd, "initrd"),
        cmdline=require_text(cmdline, "kernel command line"),
        disks=[file_disk(disk_path, disk_format)] if disk_path is not None else [],
        interfaces=[nic("network", network, mac, nic_model) for mac, network in (macs or {}).items()],
        serial_log=serial_log,
    )
