"""`vpd import`: an OVF directory or an OVA as a new VM on a host.

Three phases, so that bad input changes nothing and a failure leaves nothing behind:
1. check: the package (descriptor, manifest, members), the hardware it asks for (`plan_import`,
   pure) and the host (name free, pool, networks, volume names, capacities);
2. prepare locally: each disk is copied out and verified against the manifest, checked to be a
   self-contained image of the declared format, and converted to qcow2 with qemu-img; the pool's
   free space is then checked against the real sizes;
3. change the host: volumes are created and filled through libvirt streams, the pool refreshed,
   the domain defined from typed XML (and started when asked). Any failure removes every volume
   made and the definition.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import libvirt

from ..connect.inventory import Host
from ..connect.libvirt_conn import refresh_pool
from ..connect.ssh import exec_step
from ..core import events, paths, steps
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..core.undo import Undo
from ..storage.streams import upload_volume
from ..vm.accel import domain_type
from ..vm.clone import macs_in_use, new_mac
from ..vm.console import serial_log_path, start_fresh_log
from ..vm.inventory import domain_exists
from ..xml.devices import (
    CharLog,
    CharTarget,
    Console,
    Devices,
    Disk,
    DiskBus,
    DiskDriver,
    DiskSource,
    DiskTarget,
    Graphics,
    Interface,
    InterfaceModel,
    InterfaceSource,
    MacAddress,
    Serial,
)
from ..xml.domain import MAX_GUEST_MEMORY_MIB, MAX_VCPUS, Boot, Domain, DomainType, Features, Os
from ..xml.units import MemorySize
from ..xml.volume import MAX_VOLUME_BYTES, ImageFormat, StorageVolume
from ..xml.volume import volume as volume_xml
from . import envelope as ovf
from .images import check_standalone, convert
from .package import Package, read_package

OPERATION = "ovf.import"
NIC_MODELS = {"e1000": "e1000", "e1000e": "e1000e", "vmxnet3": "vmxnet3", "pcnet32": "pcnet", "pcnet": "pcnet",
              "virtio": "virtio", "virtio-net": "virtio", "rtl8139": "rtl8139"}
"""ResourceSubType (case-folded) -> libvirt NIC model. Unknown ones get e1000, which every OS drives."""
DEV_PREFIX = {"ide": "hd", "sata": "sd", "scsi": "sd", "virtio": "vd"}


@dataclass
class PlannedDisk:
    device: str  # "disk" or "cdrom"
    bus: DiskBus
    dev: str = ""
    disk_id: str | None = None
    file: ovf.File | None = None
    """None: a blank disk of `capacity` (DiskSection entry without fileRef)."""
    capacity: int = 0
    format: str | None = None  # vmdk | qcow2


@dataclass
class PlannedNic:
    network: str | None
    model: str


@dataclass
class ImportPlan:
    """What the descriptor asks for, in libvirt's terms; made without touching any host."""

    name: str
    vcpus: int
    memory_mib: int
    disks: list[PlannedDisk] = field(default_factory=list)
    nics: list[PlannedNic] = field(default_factory=list)
    serial_ports: list[int] = field(default_factory=list)
    graphics: bool = False
    kernel: ovf.File | None = None
    initrd: ovf.File | None = None
    cmdline: str | None = None
    notes: list[str] = field(default_factory=list)


def _disk_format(uri: str | None, disk_id: str) -> str:
    text = (uri or "").lower()
    if "vmdk" in text:
        return "vmdk"
    if "qcow" in text:
        return "qcow2"
    raise UsageError(f"disk {disk_id}: format {uri!r} is not supported", hint="vpd imports vmdk and qcow2 disks")


def _controller_bus(item: ovf.Item) -> DiskBus:
    subtype = (item.resource_sub_type or "").lower()
    if item.resource_type == ovf.IDE_CONTROLLER:
        return "ide"
    if item.resource_type == ovf.SCSI_CONTROLLER:
        return "scsi"
    return "virtio" if "virtio" in subtype else "sata"


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        return default


def plan_import(envelope: ovf.Envelope, name: str) -> ImportPlan:
    """Map the descriptor's hardware to a libvirt guest; UsageError for what cannot be mapped."""
    hw = envelope.hardware
    cpus = hw.of_type(ovf.PROCESSOR)
    vcpus = cpus[0].virtual_quantity if cpus and cpus[0].virtual_quantity else 1
    if not 1 <= vcpus <= MAX_VCPUS:
        raise UsageError(f"the package asks for {vcpus} vCPUs (1-{MAX_VCPUS} possible)")
    memory = hw.of_type(ovf.MEMORY)
    if not memory:
        raise UsageError("the package's hardware has no memory item (ResourceType 4)")
    memory_mib = -(-memory[0].quantity_bytes("byte * 2^20") // 2**20)
    if not 16 <= memory_mib <= MAX_GUEST_MEMORY_MIB:
        raise UsageError(f"the package asks for {memory_mib} MiB of memory (16 MiB - 16 TiB possible)")
    plan = ImportPlan(name=name, vcpus=vcpus, memory_mib=memory_mib)
    if not cpus:
        plan.notes.append("no CPU item: 1 vCPU")

    controllers: dict[str, tuple[int, DiskBus, int]] = {}  # InstanceID -> (order, bus, Address)
    for order, item in enumerate(hw.of_type(ovf.IDE_CONTROLLER, ovf.SCSI_CONTROLLER, ovf.OTHER_STORAGE)):
        controllers[item.instance_id] = (order, _controller_bus(item), _int(item.address))
    drives = []
    used_disks: set[str] = set()
    for position, item in enumerate(hw.of_type(ovf.DISK_DRIVE, ovf.CD_DRIVE, ovf.DVD_DRIVE)):
        order, bus, address = controllers.get(item.parent or "", (len(controllers), "sata", 0))
        if item.parent and item.parent not in controllers:
            raise UsageError(f"{item.element_name or 'drive ' + item.instance_id}: parent controller "
                             f"{item.parent} is not in the hardware section")
        planned = PlannedDisk(device="disk" if item.resource_type == ovf.DISK_DRIVE else "cdrom", bus=bus)
        if planned.device == "cdrom" and any(r.strip() for r in item.host_resource):
            plan.notes.append(f"{item.element_name or 'CD drive ' + item.instance_id}: the drive is made empty, "
                              "its media are not imported")
        if planned.device == "disk":
            disk_id = item.disk_id()
            if disk_id is None:
                raise UsageError(f"disk drive {item.instance_id} names no disk (HostResource ovf:/disk/ID)")
            if disk_id in used_disks:
                raise UsageError(f"disk {disk_id} is attached twice")
            used_disks.add(disk_id)
            vdisk = envelope.disk(disk_id)
            planned.disk_id = disk_id
            planned.capacity = vdisk.capacity_bytes()
            if not 0 < planned.capacity <= MAX_VOLUME_BYTES:
                raise UsageError(f"disk {disk_id}: capacity {planned.capacity} bytes is out of range")
            if vdisk.file_ref:
                planned.file = envelope.file(vdisk.file_ref)
                planned.format = _disk_format(vdisk.format, disk_id)
        # Per bus, in controller order then unit number: the package's first disk stays the first.
        drives.append(((order, address, _int(item.address_on_parent), position), planned))
    taken: dict[str, set[int]] = {}
    for (_, address, unit, _), planned in sorted(drives, key=lambda d: d[0]):
        prefix = DEV_PREFIX[planned.bus]
        used = taken.setdefault(prefix, set())
        # IDE positions are fixed (hdc is the secondary master); other buses number in order.
        wanted = address * 2 + unit if planned.bus == "ide" and 0 <= address <= 1 and 0 <= unit <= 1 else 0
        index = wanted if wanted not in used else 0
        while index in used:
            index += 1
        if planned.bus == "ide" and index >= 4:
            raise UsageError("the package has more than 4 IDE drives")
        used.add(index)
        planned.dev = prefix + _letters(index)
        plan.disks.append(planned)
    unused = [d.disk_id for d in (envelope.disk_section.disks if envelope.disk_section else [])
              if d.disk_id not in used_disks]
    if unused:
        plan.notes.append(f"disks not attached to any drive were skipped: {', '.join(unused)}")

    for item in hw.of_type(ovf.ETHERNET):
        subtype = (item.resource_sub_type or "").strip().lower()
        model = NIC_MODELS.get(subtype)
        if model is None:
            model = "e1000"
            plan.notes.append(f"NIC {item.element_name or item.instance_id}: type {item.resource_sub_type!r} -> e1000")
        plan.nics.append(PlannedNic(network=item.connection[0].strip() if item.connection else None, model=model))
    plan.serial_ports = sorted({_int(item.address, n) for n, item in enumerate(hw.of_type(ovf.SERIAL_PORT))})
    plan.graphics = bool(hw.of_type(ovf.GRAPHICS))
    mapped = {ovf.PROCESSOR, ovf.MEMORY, ovf.IDE_CONTROLLER, ovf.SCSI_CONTROLLER, ovf.OTHER_STORAGE, ovf.DISK_DRIVE,
              ovf.CD_DRIVE, ovf.DVD_DRIVE, ovf.ETHERNET, ovf.SERIAL_PORT, ovf.GRAPHICS}
    skipped = sorted({item.element_name or f"type {item.resource_type}" for item in hw.items
                      if item.resource_type not in mapped})
    if skipped:
        plan.notes.append(f"devices without a libvirt counterpart here were skipped: {', '.join(skipped)}")
    boot = envelope.virtual_system.kernel_boot
    if boot is not None:
        plan.kernel = envelope.file(boot.kernel.file_ref)
        plan.initrd = envelope.file(boot.initrd.file_ref) if boot.initrd else None
        plan.cmdline = boot.cmdline
    if not plan.serial_ports:
        plan.serial_ports = [0]
        plan.notes.append("a serial console was added (ttyS0), so `vpd vm console` reaches the guest")
    return plan


def _letters(index: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'aa': libvirt's disk name suffixes."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


def build_domain(plan: ImportPlan, dtype: DomainType, disk_paths: dict[int, str], macs: list[str], networks: list[str],
                 kernel: str | None, initrd: str | None) -> Domain:
    """The guest definition: `disk_paths` maps positions in plan.disks to volume paths."""
    disks = []
    for n, planned in enumerate(plan.disks):
        if planned.device == "cdrom":
            disks.append(Disk(type="file", device="cdrom", driver=DiskDriver(name="qemu", type="raw"),
                              target=DiskTarget(dev=planned.dev, bus=planned.bus), readonly=True))
        else:
            disks.append(Disk(type="file", device="disk",
                              driver=DiskDriver(name="qemu", type="qcow2", cache="none"),
                              source=DiskSource(file=disk_paths[n]),
                              target=DiskTarget(dev=planned.dev, bus=planned.bus)))
    interfaces = [Interface(type="network", mac=MacAddress(address=mac), source=InterfaceSource(network=network),
                            model=InterfaceModel(type=nic.model))
                  for nic, mac, network in zip(plan.nics, macs, networks, strict=True)]
    # serial0 keeps a log on the host (as every vpd-made VM), so `vpd vm console --log` has the history.
    serials = [Serial(type="pty", target=CharTarget(port=port),
                      log=CharLog(file=serial_log_path(plan.name), append="on") if port == 0 else None)
               for port in plan.serial_ports]
    if kernel:
        os_ = Os(kernel=kernel, initrd=initrd, cmdline=plan.cmdline)
    else:
        os_ = Os(boot=[Boot(dev="hd"), Boot(dev="cdrom")])
    return Domain(
        type=dtype, name=check_name(plan.name, "VM name"), uuid=str(uuidlib.uuid4()),
        memory=MemorySize(value=plan.memory_mib * 1024, unit="KiB"), vcpu=plan.vcpus, os=os_,
        features=Features(acpi=True),
        devices=Devices(
            disks=disks, interfaces=interfaces, serials=serials,
            consoles=[Console(type="pty", target=CharTarget(type="serial", port=plan.serial_ports[0]))],
            graphics=[Graphics(type="vnc", port=-1, autoport="yes", listen="127.0.0.1")] if plan.graphics else [],
        ),
    )


@dataclass
class Imported:
    host: str
    name: str
    uuid: str = ""
    pool: str = ""
    volumes: list[str] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _pool(conn: libvirt.virConnect, host: Host, pool_name: str | None) -> libvirt.virStoragePool:
    if pool_name is None:
        active = conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
        names = [p.name() for p in active]
        if "default" in names or len(names) != 1:
            pool_name = "default"
        else:
            pool_name = names[0]
    check_name(pool_name, "pool name")
    try:
        pool = conn.storagePoolLookupByName(pool_name)
    except libvirt.libvirtError:
        raise UsageError(f"no storage pool {pool_name!r} on {host.name}", hint="choose one with --pool") from None
    if not pool.isActive():
        raise UsageError(f"pool {pool_name} on {host.name} is not active")
    return pool


def _networks(conn: libvirt.virConnect, host: Host, plan: ImportPlan, mapping: dict[str, str]) -> list[str]:
    """The libvirt network of each NIC: --network OVFNET=NET, else --network NET for all, else its own name."""
    existing = {n.name() for n in conn.listAllNetworks()}
    chosen = []
    for nic in plan.nics:
        network = mapping.get(nic.network or "", mapping.get("*", nic.network))
        if not network or network not in existing:
            raise UsageError(f"the package's network {nic.network!r} does not exist on {host.name}",
                             hint=f"map it with --network {nic.network or 'NAME'}=NET or --network NET "
                                  f"(networks there: {', '.join(sorted(existing)) or 'none'})")
        chosen.append(check_name(network, "network name"))
    return chosen


def import_package(conn: libvirt.virConnect, host: Host, path: Path, *, name: str | None = None,
                   pool_name: str | None = None,
                   networks: dict[str, str] | None = None) -> tuple[libvirt.virDomain, Imported]:
    """Import the package at `path` as a new VM; a failure removes whatever was made."""
    if name is not None:
        check_name(name, "VM name")
    package = read_package(path)
    try:
        vm = vm_name(package, name)
        with Undo() as undo:
            return import_read(conn, host, package, vm, pool_name=pool_name, networks=networks, undo=undo)
    finally:
        package.close()


def vm_name(package: Package, name: str | None = None) -> str:
    """The new VM's name: `name` if given, else the package's own (which must be a valid vpd name)."""
    if name is not None:
        return check_name(name, "VM name")
    vs = package.envelope.virtual_system
    name = vs.name or vs.id
    try:
        return check_name(name, "VM name")
    except UsageError:
        raise UsageError(f"the package names its VM {name!r}, which is not a valid vpd name",
                         hint="give one with --name") from None


def import_read(conn: libvirt.virConnect, host: Host, package: Package, name: str, *, pool_name: str | None = None,
                networks: dict[str, str] | None = None, undo: Undo, taken_macs: set[str] | None = None,
                announce: Callable[[str, str], None] | None = None) -> tuple[libvirt.virDomain, Imported]:
    """Import an opened package as VM `name` (see vm_name). Each volume and the domain are
    announced to `announce(kind, name)` before they are made and get an undo step on `undo`
    right after; the new MACs avoid `taken_macs` (every host's) as well as this host's."""
    began = time.monotonic()
    announce = announce or (lambda _kind, _name: None)
    plan = plan_import(package.envelope, name)
    result = Imported(host.name, name, notes=package.notes + plan.notes)
    # 1. The host, before anything is made.
    if domain_exists(conn, name):
        raise UsageError(f"a VM named {name!r} already exists on {host.name}")
    pool = _pool(conn, host, pool_name)
    result.pool = pool.name()
    chosen_networks = _networks(conn, host, plan, networks or {})
    refresh_pool(pool)
    existing = set(pool.listVolumes())
    volume_names = {n: f"{name}-disk{n + 1}.qcow2" for n, d in enumerate(plan.disks) if d.device == "disk"}
    boot_names = {"kernel": f"{name}-kernel", "initrd": f"{name}-initrd"}
    wanted = list(volume_names.values()) + [boot_names[r] for r in ("kernel", "initrd") if getattr(plan, r)]
    clash = [v for v in wanted if v in existing]
    if clash:
        raise UsageError(f"pool {pool.name()} on {host.name} already has {', '.join(clash)}")
    _, pool_capacity, _, pool_available = pool.info()
    for planned in plan.disks:
        if planned.device == "disk" and planned.capacity > pool_capacity:
            raise UsageError(f"disk {planned.disk_id} ({planned.capacity // 2**20} MiB) is larger than the whole "
                             f"pool {pool.name()} on {host.name} ({pool_capacity // 2**20} MiB)",
                             hint="import into a larger pool with --pool")
    # 2. Local preparation: verify and convert every file the VM needs.
    work_root = paths.state_dir() / "tmp"
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ovf-import-", dir=work_root) as work_dir:
        work = Path(work_dir)
        uploads: dict[str, Path] = {}  # volume name -> local file
        for n, planned in enumerate(plan.disks):
            if planned.device != "disk" or planned.file is None:
                continue
            assert planned.format is not None  # plan_import sets it with planned.file
            staged = _stage(package, planned.file, work)
            info = check_standalone(staged, planned.format)
            if info["virtual-size"] > planned.capacity:
                raise UsageError(f"{planned.file.href} holds {info['virtual-size']} bytes, more than disk "
                                 f"{planned.disk_id}'s declared capacity ({planned.capacity})")
            converted = work / volume_names[n]
            convert(staged, planned.format, converted, "qcow2", operation=OPERATION,
                    step=f"converting {planned.file.href}")
            if staged.parent == work:
                staged.unlink()
            if planned.capacity > info["virtual-size"]:
                _grow(converted, planned.capacity)
            uploads[volume_names[n]] = converted
        for role in ("kernel", "initrd"):
            file = getattr(plan, role)
            if file is not None:
                uploads[boot_names[role]] = _stage(package, file, work)
        needed = sum(p.stat().st_size for p in uploads.values())
        if needed > pool_available:
            raise UsageError(f"pool {pool.name()} on {host.name} has {pool_available // 2**20} MiB free; the import "
                             f"needs {needed // 2**20} MiB", hint="free space or choose another pool with --pool")
        # 3. The host: each thing made gets its undo step at once (a later failure removes it).
        disk_paths: dict[int, str] = {}
        boot_paths: dict[str, str] = {}
        for n, planned in enumerate(plan.disks):
            if planned.device != "disk":
                continue
            vol_name = volume_names[n]
            announce("volume", vol_name)
            if vol_name in uploads:
                vol = _upload(pool, vol_name, uploads[vol_name], undo)
            else:  # a blank disk the package only sizes
                vol = pool.createXML(volume_xml(vol_name, planned.capacity, fmt="qcow2").to_xml_string(), 0)
                _undo_volume(undo, vol, vol_name)
            disk_paths[n] = vol.path()
            result.volumes.append(vol.path())
        for role, vol_name in boot_names.items():
            if vol_name in uploads:
                announce("volume", vol_name)
                boot_paths[role] = _upload(pool, vol_name, uploads[vol_name], undo, fmt="raw").path()
                result.volumes.append(boot_paths[role])
        refresh_pool(pool)
        for vol_path in disk_paths.values():
            fmt = StorageVolume.from_xml(conn.storageVolLookupByPath(vol_path).XMLDesc(0).encode())
            if fmt.target is None or fmt.target.format is None or fmt.target.format.type != "qcow2":
                raise VpdError(f"{vol_path}: libvirt does not see the uploaded image as qcow2")
        taken = macs_in_use(conn) | set(taken_macs or ())
        macs = []
        for _ in plan.nics:
            macs.append(new_mac(taken))
            taken.add(macs[-1])
        dtype = cast(DomainType, "test" if conn.getType() == "Test"  # domain_type: "kvm" or "qemu"
                     else domain_type(conn.getCapabilities(), host.lab))
        events.emit(OPERATION, f"defining {name}")
        domain = build_domain(plan, dtype, disk_paths, macs, chosen_networks, boot_paths.get("kernel"),
                              boot_paths.get("initrd"))
        announce("domain", name)
        start_fresh_log(conn, host, name)
        dom = conn.defineXML(domain.to_xml_string())
        undo.push(dom.undefine, f"undefine {name}")
        result.uuid = dom.UUIDString()
        result.macs = macs
    result.seconds = round(time.monotonic() - began, 2)
    return dom, result


def _stage(package: Package, file: ovf.File, work: Path) -> Path:
    step = f"verifying {file.href}"
    total = package.source.size(file.href)
    return package.stage(file, work, lambda done: events.emit(OPERATION, step, done, total, "bytes"))


def _grow(image: Path, capacity: int) -> None:
    proc = subprocess.run(["qemu-img", "resize", "-f", "qcow2", str(image), str(capacity)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise VpdError(f"qemu-img resize {image.name} failed: {proc.stderr.strip()}")
    if steps.active():  # run here, on vpd's machine (for --explain)
        steps.record(exec_step("local", None, ["qemu-img", "resize", "-f", "qcow2", str(image), str(capacity)],
                               returncode=0))


def _undo_volume(undo: Undo, vol: libvirt.virStorageVol, vol_name: str) -> None:
    undo.push(lambda: vol.delete(0), f"delete volume {vol_name}")


def _upload(pool: libvirt.virStoragePool, vol_name: str, source: Path, undo: Undo,
            fmt: ImageFormat = "raw") -> libvirt.virStorageVol:
    """A volume holding exactly `source`'s bytes. Made raw, so libvirt writes no header of its
    own; the pool refresh afterwards reads the real format (qcow2) from the file itself."""
    size = source.stat().st_size
    vol = pool.createXML(volume_xml(vol_name, max(size, 1), fmt=fmt).to_xml_string(), 0)
    _undo_volume(undo, vol, vol_name)
    step = f"uploading {vol_name}"
    upload_volume(vol, source, lambda done: events.emit(OPERATION, step, done, size, "bytes"))
    return vol
