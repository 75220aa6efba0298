"""`vpd export`: a VM as an OVF directory or an OVA.

The VM's definition is read through libvirt and described in OVF terms (CPU, memory,
controllers, disks, NICs, serial ports, graphics). Each disk volume is streamed from its host
(a qcow2 overlay is first flattened into a temporary volume on the host, so the package never
depends on a backing image) and converted with qemu-img: streamOptimized vmdk by default, the
format VMware and VirtualBox exchange. A VM that boots a kernel directly carries its kernel and
initrd as ordinary files plus vpd's own extension section, marked not required.

Everything is built in a hidden staging directory beside the destination, which appears only
when complete (a rename); a failure leaves nothing where the package was asked for, and
removes any temporary volume made on the host.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import libvirt

from ..connect.hostfiles import HostFiles
from ..connect.inventory import Host
from ..connect.libvirt_conn import lookup
from ..core import events
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..storage.streams import download_volume
from ..xml.domain import Domain
from ..xml.volume import StorageVolume
from ..xml.volume import volume as volume_xml
from . import envelope as ovf
from .images import convert
from .package import check_file_name, manifest_bytes, sha256_file, write_ova

OPERATION = "ovf.export"
DISK_FORMAT_OPTIONS = {"vmdk": ["-o", "subformat=streamOptimized"], "qcow2": []}
NIC_SUBTYPES = {"virtio": "virtio", "e1000": "E1000", "e1000e": "E1000e", "rtl8139": "rtl8139",
                "vmxnet3": "VmxNet3", "pcnet": "PCNet32"}
"""libvirt NIC model -> the ResourceSubType other hypervisors use for it."""
CONTROLLERS = {"ide": (ovf.IDE_CONTROLLER, "PIIX4"), "sata": (ovf.OTHER_STORAGE, "AHCI"),
               "scsi": (ovf.SCSI_CONTROLLER, "lsilogic"), "virtio": (ovf.OTHER_STORAGE, "virtio")}
"""Disk bus -> controller ResourceType and ResourceSubType (VirtualBox's names where it has one)."""


@dataclass
class PackagedDisk:
    """A disk as it goes into the package: its file and where the guest sees it."""

    file_name: str
    size: int
    capacity: int
    format: str
    bus: str
    dev: str
    device: str = "disk"  # or "cdrom" (no file: media are not exported)


@dataclass
class Exported:
    host: str
    vm: str
    package: str
    kind: str
    disk_format: str
    files: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _unit(bus: str, dev: str) -> tuple[int, int]:
    """(controller index, unit on it): IDE has two controllers of two units (hda..hdd)."""
    index = ord(dev[-1]) - ord("a") if dev and dev[-1].isalpha() else 0
    return (index // 2, index % 2) if bus == "ide" else (0, index)


def build_envelope(domain: Domain, disks: list[PackagedDisk], boot_files: dict[str, tuple[str, int]],
                   name: str) -> ovf.Envelope:
    """The descriptor for `domain` whose disks were packaged as `disks`.

    `boot_files` maps 'kernel'/'initrd' to (file name, size) for a directly booted VM."""
    files: list[ovf.File] = []
    virtual_disks: list[ovf.VirtualDisk] = []
    items: list[ovf.Item] = []

    def add(**kwargs) -> ovf.Item:
        item = ovf.Item(instance_id=str(len(items) + 1), **kwargs)
        items.append(item)
        return item

    add(resource_type=ovf.PROCESSOR, virtual_quantity=domain.vcpu, allocation_units="hertz * 10^6",
        element_name=f"{domain.vcpu} virtual CPU(s)", description="Number of virtual CPUs")
    memory_mib = -(-domain.memory.in_bytes // 2**20)
    add(resource_type=ovf.MEMORY, virtual_quantity=memory_mib, allocation_units="byte * 2^20",
        element_name=f"{memory_mib} MB of memory", description="Memory size")
    controllers: dict[tuple[str, int], str] = {}
    for disk in disks:
        bus_index, unit = _unit(disk.bus, disk.dev)
        key = (disk.bus, bus_index)
        if key not in controllers:
            if disk.bus not in CONTROLLERS:
                raise UsageError(f"disk {disk.dev} is on bus {disk.bus!r}, which OVF cannot describe here",
                                 hint=f"use one of: {', '.join(CONTROLLERS)}")
            resource_type, subtype = CONTROLLERS[disk.bus]
            controllers[key] = add(resource_type=resource_type, resource_sub_type=subtype, address=str(bus_index),
                                   element_name=f"{disk.bus.upper()} controller {bus_index}").instance_id
        if disk.device == "cdrom":
            add(resource_type=ovf.CD_DRIVE, parent=controllers[key], address_on_parent=str(unit),
                automatic_allocation=False, element_name=f"CD-ROM {disk.dev}")
            continue
        n = len(virtual_disks) + 1
        file_id, disk_id = f"file{n}", f"vmdisk{n}"
        files.append(ovf.File(id=file_id, href=disk.file_name, size=disk.size))
        capacity, units = ovf.bytes_to_units(disk.capacity)
        virtual_disks.append(ovf.VirtualDisk(disk_id=disk_id, file_ref=file_id, capacity=str(capacity),
                                             capacity_units=units, format=ovf.DISK_FORMATS[disk.format]))
        add(resource_type=ovf.DISK_DRIVE, parent=controllers[key], address_on_parent=str(unit),
            host_resource=[f"ovf:/disk/{disk_id}"], element_name=f"Hard disk {n} ({disk.dev})")
    networks: list[str] = []
    for n, nic in enumerate(domain.interfaces, 1):
        source = nic.source
        network = (source.network or source.bridge or source.dev) if source else None
        network = network or nic.type
        if network not in networks:
            networks.append(network)
        model = nic.model.type if nic.model else "virtio"
        add(resource_type=ovf.ETHERNET, resource_sub_type=NIC_SUBTYPES.get(model, model), automatic_allocation=True,
            connection=[network], element_name=f"Network adapter {n}")
    for serial in domain.devices.serials:
        port = serial.target.port if serial.target and serial.target.port is not None else 0
        add(resource_type=ovf.SERIAL_PORT, address=str(port), element_name=f"Serial port {port}")
    for graphics in domain.devices.graphics:
        add(resource_type=ovf.GRAPHICS, resource_sub_type=graphics.type, element_name=f"Display ({graphics.type})")
    kernel_boot = None
    if "kernel" in boot_files:
        for role, (file_name, size) in boot_files.items():
            files.append(ovf.File(id=f"{role}1", href=file_name, size=size))
        kernel_boot = ovf.KernelBootSection(
            kernel=ovf.KernelFile(file_ref="kernel1"),
            initrd=ovf.InitrdFile(file_ref="initrd1") if "initrd" in boot_files else None,
            cmdline=domain.os.cmdline or None)
    return ovf.Envelope(
        references=ovf.References(files=files),
        disk_section=ovf.DiskSection(disks=virtual_disks),
        network_section=ovf.NetworkSection(networks=[ovf.Network(name=n, description=f"The {n} network")
                                                      for n in networks]) if networks else None,
        virtual_system=ovf.VirtualSystem(
            id=name, name=name,
            operating_system=ovf.OperatingSystemSection(id=1, description="Other"),
            hardware=[ovf.VirtualHardwareSection(
                system=ovf.System(virtual_system_identifier=name, virtual_system_type="vpd-1"), items=items)],
            kernel_boot=kernel_boot,
        ),
    )


def _destination(ovf_dir: Path | None, ova_file: Path | None) -> tuple[str, Path]:
    if (ovf_dir is None) == (ova_file is None):
        raise UsageError("give exactly one of --ovf DIR or --ova FILE")
    if ova_file is not None:
        check_file_name(ova_file.name, "OVA file name")
        if ova_file.suffix.lower() != ".ova":
            raise UsageError(f"{ova_file}: an OVA's name ends in .ova")
        if ova_file.exists() or ova_file.is_symlink():
            raise UsageError(f"{ova_file} already exists", hint="remove it or choose another name")
        if not ova_file.parent.is_dir():
            raise UsageError(f"directory {ova_file.parent} does not exist")
        return "ova", ova_file
    assert ovf_dir is not None
    if ovf_dir.is_symlink() or (ovf_dir.exists() and (not ovf_dir.is_dir() or any(ovf_dir.iterdir()))):
        raise UsageError(f"{ovf_dir} already exists and is not an empty directory")
    if not ovf_dir.parent.is_dir():
        raise UsageError(f"directory {ovf_dir.parent} does not exist")
    return "ovf", ovf_dir


def _download_progress(step: str, total: int, done: int) -> None:
    events.emit(OPERATION, step, min(done, total), total, "bytes")


def _fetch_host_file(conn: libvirt.virConnect, host: Host, path: str, target: Path) -> None:
    """A boot file from the host: a pool volume by stream, else read over the host's runner."""
    try:
        vol = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        vol = None
    if vol is not None:
        download_volume(vol, target)
        return
    target.write_bytes(HostFiles(host).read(path))


def export_vm(conn: libvirt.virConnect, host: Host, vm: str, *, ovf_dir: Path | None = None,
              ova_file: Path | None = None, disk_format: str = "vmdk", allow_running: bool = False) -> Exported:
    began = time.monotonic()
    check_name(vm, "VM name")
    if disk_format not in DISK_FORMAT_OPTIONS:
        raise UsageError(f"disk format {disk_format!r}: use vmdk or qcow2")
    kind, destination = _destination(ovf_dir, ova_file)
    dom = lookup(host, lambda: conn.lookupByName(vm), f"no VM named {vm!r} on {host.name}",
                 hint="`vpd vm list --all` lists them")
    if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING and not allow_running:
        raise UsageError(f"{vm} is running: a copy of a running guest's disk is only crash-consistent",
                         hint="shut it down or pause it first, or accept that with --allow-running")
    domain = Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    sources = []
    for disk in domain.disks:
        if disk.device == "cdrom":
            continue
        if disk.device != "disk" or disk.type != "file" or disk.source is None or not disk.source.file:
            raise UsageError(f"{vm}: disk {disk.target.dev} is not a file-backed disk; vpd exports volumes only")
        try:
            vol = conn.storageVolLookupByPath(disk.source.file)
        except libvirt.libvirtError:
            raise UsageError(f"{disk.source.file} is not in a storage pool of {host.name}",
                             hint="libvirt streams only pool volumes; put the disk in a pool") from None
        sources.append((disk, disk.source.file, vol, StorageVolume.from_xml(vol.XMLDesc(0).encode())))
    needed = 2 * sum(info.allocation.in_bytes if info.allocation else info.capacity.in_bytes
                     for _, _, _, info in sources)
    free = shutil.disk_usage(destination.parent).free
    if needed > free:
        raise UsageError(f"{destination.parent} has {free // 2**20} MiB free; exporting {vm} needs about "
                         f"{needed // 2**20} MiB (download + converted copy)")
    result = Exported(host.name, vm, str(destination), kind, disk_format)
    staging = Path(tempfile.mkdtemp(prefix=".vpd-export-", dir=destination.parent))
    temporary_volumes: list[libvirt.virStorageVol] = []
    try:
        packaged: list[PackagedDisk] = []
        for n, (disk, disk_file, vol, info) in enumerate(sources, 1):
            fmt = (disk.driver.type if disk.driver and disk.driver.type else None) or "raw"
            if info.backing_store is not None:
                # The package must not depend on a backing image: flatten on the host first.
                flat_name = f"{vm}-ovf-export-{n}.qcow2"
                events.emit(OPERATION, f"flattening {Path(disk_file).name} on {host.name}")
                pool = vol.storagePoolLookupByVolume()
                if flat_name in pool.listVolumes():
                    raise UsageError(f"volume {flat_name} already exists in pool {pool.name()} (a failed export?)")
                vol = pool.createXMLFrom(volume_xml(flat_name, info.capacity.in_bytes, fmt="qcow2").to_xml_string(),
                                         vol, 0)
                temporary_volumes.append(vol)
                fmt = "qcow2"
            downloaded = staging / f"disk{n}.download"
            total = vol.info()[2] or info.capacity.in_bytes
            download_volume(vol, downloaded, partial(_download_progress, f"downloading {Path(disk_file).name}", total))
            for temp in temporary_volumes:
                temp.delete(0)
            temporary_volumes.clear()
            file_name = f"{vm}-disk{n}.{disk_format}"
            convert(downloaded, fmt, staging / file_name, disk_format, operation=OPERATION,
                    step=f"converting to {file_name}", options=DISK_FORMAT_OPTIONS[disk_format])
            downloaded.unlink()
            packaged.append(PackagedDisk(file_name, (staging / file_name).stat().st_size, info.capacity.in_bytes,
                                         disk_format, disk.target.bus or "ide", disk.target.dev))
        for disk in domain.disks:
            if disk.device == "cdrom":
                packaged.append(PackagedDisk("", 0, 0, disk_format, disk.target.bus or "ide", disk.target.dev, "cdrom"))
                result.notes.append(f"CD-ROM {disk.target.dev}: the drive is described, its media are not exported")
        boot_files: dict[str, tuple[str, int]] = {}
        for role, path in (("kernel", domain.os.kernel), ("initrd", domain.os.initrd)):
            if path:
                events.emit(OPERATION, f"copying the {role} {path}")
                file_name = f"{vm}-{role}"
                _fetch_host_file(conn, host, path, staging / file_name)
                boot_files[role] = (file_name, (staging / file_name).stat().st_size)
        envelope = build_envelope(domain, packaged, boot_files, vm)
        descriptor_name = f"{vm}.ovf"
        (staging / descriptor_name).write_bytes(envelope.to_bytes())
        names = [descriptor_name] + [f.href for f in envelope.references.files]
        digests = {}
        for name in names:
            events.emit(OPERATION, f"checksum of {name}")
            digests[name] = sha256_file(staging / name)
        manifest_name = f"{vm}.mf"
        (staging / manifest_name).write_bytes(manifest_bytes(digests))
        result.files = [{"name": name, "size": (staging / name).stat().st_size, "sha256": digests.get(name)}
                        for name in [descriptor_name, manifest_name] + names[1:]]
        if kind == "ova":
            total = sum(f["size"] for f in result.files)
            write_ova(destination, [(f["name"], staging / f["name"]) for f in result.files],
                      lambda done: events.emit(OPERATION, f"writing {destination.name}", done, total, "bytes"))
        else:
            if destination.exists():
                destination.rmdir()  # checked empty above
            os.rename(staging, destination)
            destination.chmod(0o755)  # mkdtemp made it private
    except libvirt.libvirtError as exc:
        raise VpdError(f"exporting {vm} from {host.name} failed: {exc.get_error_message()}") from None
    finally:
        for temp in temporary_volumes:
            try:
                temp.delete(0)
            except libvirt.libvirtError:
                pass
        shutil.rmtree(staging, ignore_errors=True)
    result.seconds = round(time.monotonic() - began, 2)
    return result
