"""Create a VM, the virt-install equivalent: disks made as volumes in pools (new ones by libvirt,
imported images copied in by qemu-img), NICs on libvirt networks or host bridges, a domain
defined from typed XML. Everything is checked before anything is made; whatever fails
later, what was made is removed."""
from __future__ import annotations

import secrets
import string
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Literal

import libvirt

from .. import ops
from ..connect.hostfiles import HostFiles, require_host_path
from ..connect.inventory import Host
from ..connect.libvirt_conn import refresh_pool
from ..core import events
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..core.undo import Undo
from ..storage.room import PoolRoom
from ..storage.volumes import parse_vol_ref
from ..xml.domain import VNC_PASSWORD_MAX, cdrom_disk, file_disk, graphics_device, guest_domain, nic, video_device
from ..xml.edit import LAB_GUEST_MARKER, LAB_GUEST_NS, DomainEditor
from ..xml.volume import volume as volume_xml
from .accel import domain_type
from .clone import macs_in_use, new_mac
from .cloudinit import Seed, build_iso, upload_seed
from .console import serial_log_path, start_fresh_log
from .install_tree import Location, copy_out
from .install_tree import locate as locate_tree
from .inventory import disk_users, domain_exists, volume_by_path
from .platform import resolve as resolve_platform

GRAPHICS = ("none", "vnc", "spice")
VIDEO_MODELS = ("vga", "virtio", "qxl", "bochs", "cirrus", "ramfb", "none")
IMPORT_FORMATS = ("qcow2", "raw")
"""Formats a disk keeps when imported; any other image (vmdk, vdi, vhdx...) is converted to qcow2."""


@dataclass
class DiskSpec:
    size: int | None = None
    """Bytes of a new, empty disk; None when `import_image` gives the content."""
    pool: str = "default"
    format: str = "qcow2"
    bus: str = "ide"
    import_image: str | None = None
    """An image file on the host: used in place if it is already a pool volume, else copied into `pool`."""

    def __post_init__(self) -> None:
        check_name(self.pool, "pool name")
        if (self.size is None) == (self.import_image is None):
            raise UsageError("each disk needs either size=SIZE (a new disk) or an image to import")
        if self.format not in ("qcow2", "raw"):
            raise UsageError(f"disk format {self.format!r}: use qcow2 or raw")
        if self.bus not in ("ide", "virtio", "sata", "scsi"):
            raise UsageError(f"disk bus {self.bus!r}: use ide, virtio, sata or scsi")
        if self.import_image is not None:
            self.import_image = require_host_path(self.import_image, "image to import")


@dataclass
class NicSpec:
    kind: Literal["network", "bridge"]
    source: str
    mac: str | None = None
    model: str = "virtio"

    def __post_init__(self) -> None:
        if self.kind not in ("network", "bridge"):
            raise UsageError(f"NIC type {self.kind!r}: use network=NAME or bridge=NAME")
        check_name(self.source, f"{self.kind} name")
        check_name(self.model, "NIC model")


@dataclass
class VmSpec:
    name: str
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str = ""
    memory_mib: int = 128
    vcpus: int = 1
    disks: list[DiskSpec] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    accel: str = "auto"  # auto | kvm | tcg
    serial_log: str | None = None
    lab_guest: bool = False
    """It boots the lab's tiny guest: marked so in vpd's metadata (xml.edit.LAB_GUEST_NS)."""
    os_variant: str | None = None
    cdrom: str | None = None
    """An ISO to install from: a file on the host or a pool volume ('POOL/VOLUME'); boots first."""
    graphics: str = "none"
    """'vnc' or 'spice': a display on the host's loopback with a generated password; 'none': headless."""
    video: str | None = None
    """The video card model; None lets libvirt pick its default when there is a display."""
    seed: Seed | None = None
    """cloud-init NoCloud files: made into a `cidata` ISO volume next to the first disk, attached read-only."""
    notes: list[str] = field(default_factory=list)
    """What the OS variant chose or warns about, shown with the result."""
    location: str | None = None
    """An install tree (ISO or directory on the host): its kernel and initrd are booted directly."""
    extra_args: str | None = None
    """With `location`: the installer's kernel command line."""
    arch: str | None = None
    cpu: str | None = None
    """'host-model', 'host-passthrough' or a CPU model name; None: libvirt's default."""
    firmware: str | None = None
    """'uefi' (OVMF, its NVRAM per VM) or 'bios'/None."""

    def __post_init__(self) -> None:
        _check_install_options(self)
        check_name(self.name, "VM name")
        if not 16 <= self.memory_mib <= 1024 * 1024:
            raise UsageError(f"memory {self.memory_mib} MiB is out of range (16 MiB - 1 TiB)")
        if not 1 <= self.vcpus <= 512:
            raise UsageError(f"vcpus {self.vcpus} is out of range (1-512)")
        if self.accel not in ("auto", "kvm", "tcg"):
            raise UsageError(f"accel {self.accel!r}: use auto, kvm or tcg")
        if self.kernel is None and not self.disks and self.cdrom is None and self.location is None:
            raise UsageError("nothing to boot: give --boot kernel=..., --import IMAGE, --cdrom ISO or a --disk")
        if self.graphics not in GRAPHICS:
            raise UsageError(f"graphics {self.graphics!r}: use {', '.join(GRAPHICS)}")
        if self.video is not None and self.video not in VIDEO_MODELS:
            raise UsageError(f"video model {self.video!r}: use {', '.join(VIDEO_MODELS)}")
        if self.seed is not None and not self.disks:
            raise UsageError("--cloud-init needs a disk to boot (--import IMAGE or --disk): the seed goes next to it")
        if self.cdrom is not None and self.cdrom.startswith("/"):
            self.cdrom = require_host_path(self.cdrom, "ISO")
        elif self.cdrom is not None:
            parse_vol_ref(self.cdrom)
        if self.os_variant is not None:
            check_name(self.os_variant, "OS variant")
        macs = [n.mac for n in self.nics if n.mac]
        if len(set(macs)) != len(macs):
            raise UsageError("two NICs were given the same MAC")


def _check_install_options(spec: VmSpec) -> None:
    """--location/--extra-args/--arch/--cpu/--boot uefi: what can be checked without the host."""
    from .platform import FIRMWARES, check_cpu_syntax

    if spec.location is not None:
        spec.location = require_host_path(spec.location, "--location")
        if spec.kernel is not None:
            raise UsageError("--location boots the installer's kernel: it cannot go with --boot kernel=..., "
                             "--lab-guest or --debian-guest")
        if spec.cdrom is not None:
            raise UsageError("--location ISO is attached as the CD-ROM already: leave out --cdrom",
                             hint="a --location directory has no CD-ROM; give the ISO to --location instead")
    if spec.extra_args is not None:
        if spec.location is None:
            raise UsageError("--extra-args needs --location (they go on the installer's kernel command line)")
        if any(not c.isprintable() for c in spec.extra_args):
            raise UsageError("--extra-args contains control characters")
    if spec.arch is not None:
        check_name(spec.arch, "architecture")
    if spec.cpu is not None:
        check_cpu_syntax(spec.cpu)
    if spec.firmware is not None and spec.firmware not in FIRMWARES:
        raise UsageError(f"firmware {spec.firmware!r}: use {' or '.join(FIRMWARES)}")


@dataclass
class Created:
    host: str
    name: str
    uuid: str
    domain_type: str
    disk: str | None
    disks: list[str] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)
    started: bool = False
    notes: list[str] = field(default_factory=list)
    cdroms: list[str] = field(default_factory=list)
    seed: str | None = None
    """The cloud-init seed volume's path (also in `cdroms`)."""
    graphics: dict | None = None
    """{'type', 'listen', 'password'}: the password is shown once, in this result."""
    install: dict | None = None
    """--location: {'layout', 'kernel', 'initrd', 'cmdline'} as booted."""
    firmware: dict | None = None
    """{'arch', 'cpu', 'uefi_loader'} when --arch, --cpu or --boot uefi was given."""


@dataclass
class _PlannedDisk:
    spec: DiskSpec
    pool: libvirt.virStoragePool | None
    volume_name: str | None
    capacity: int
    in_place: str | None = None
    source_format: str | None = None


def _active_pool(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virStoragePool:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        raise UsageError(f"no storage pool {name!r} on {host.name}") from None
    if not pool.isActive():
        raise VpdError(f"pool {name} on {host.name} is not active", hint=f"vpd pool start {name}")
    return pool


def _plan_disks(conn: libvirt.virConnect, host: Host, spec: VmSpec, files: HostFiles) -> list[_PlannedDisk]:
    """Every check on the disks, before anything is made: pools, names, room, images to import."""
    planned = []
    room = PoolRoom(host.name)
    for i, d in enumerate(spec.disks):
        vol_name_base = spec.name if i == 0 else f"{spec.name}-{i}"
        if d.import_image is not None:
            vol = volume_by_path(conn, d.import_image)
            if vol is not None:
                user = disk_users(conn).get(d.import_image)
                if user:
                    raise UsageError(f"{d.import_image} is the disk of VM {user} on {host.name}",
                                     hint="clone that VM instead (vpd vm clone)")
                fmt = files.image_info(d.import_image).get("format", "raw")
                planned.append(_PlannedDisk(d, None, None, vol.info()[1], in_place=d.import_image,
                                            source_format=fmt))
                continue
            if not files.exists(d.import_image):
                raise UsageError(f"no image {d.import_image} on {host.name}")
            info = files.image_info(d.import_image)
            fmt = info.get("format", "raw")
            target_fmt = fmt if fmt in IMPORT_FORMATS else "qcow2"
            pool = _active_pool(conn, host, d.pool)
            name = f"{vol_name_base}.{target_fmt}"
            need, capacity = int(info.get("actual-size") or info["virtual-size"]), int(info["virtual-size"])
            planned_disk = _PlannedDisk(DiskSpec(size=None, pool=d.pool, format=target_fmt, bus=d.bus,
                                                 import_image=d.import_image), pool, name, capacity,
                                        source_format=fmt)
        else:
            pool = _active_pool(conn, host, d.pool)
            name = f"{vol_name_base}.{d.format}"
            need = capacity = d.size
            planned_disk = _PlannedDisk(d, pool, name, capacity)
        refresh_pool(pool)
        if name in pool.listVolumes():
            raise UsageError(f"volume {name} already exists in pool {d.pool} on {host.name}")
        room.take(pool, need, f"disk {name}", hint="a smaller size, or another pool")
        planned.append(planned_disk)
    return planned


def _resolve_cdrom(conn: libvirt.virConnect, host: Host, ref: str, files: HostFiles) -> str:
    """The host path of the ISO: a file on the host, or a pool volume given as POOL/VOLUME."""
    if ref.startswith("/"):
        if not files.exists(ref):
            raise UsageError(f"no ISO {ref} on {host.name}")
        return ref
    pool_name, vol_name = parse_vol_ref(ref)
    pool = _active_pool(conn, host, pool_name)
    refresh_pool(pool)
    try:
        return pool.storageVolLookupByName(vol_name).path()
    except libvirt.libvirtError:
        raise UsageError(f"no volume {vol_name!r} in pool {pool_name} on {host.name}",
                         hint=f"vpd vol list {pool_name} --host {host.name}") from None


def _seed_pool(conn: libvirt.virConnect, host: Host, first: _PlannedDisk, name: str) -> libvirt.virStoragePool:
    """The pool of the VM's first disk, where its seed volume goes; checked to have no volume `name`."""
    if first.pool is not None:
        pool = first.pool
    else:
        vol = volume_by_path(conn, first.in_place or "")
        if vol is None:
            raise UsageError(f"{first.in_place} is in no pool on {host.name}: cannot put the seed next to it")
        pool = vol.storagePoolLookupByVolume()
    refresh_pool(pool)
    if name in pool.listVolumes():
        raise UsageError(f"volume {name} already exists in pool {pool.name()} on {host.name}",
                         hint=f"a seed of an earlier VM? vpd vol delete {pool.name()}/{name} --host {host.name}")
    return pool


def new_password(kind: str) -> str:
    """A random display password: 8 characters for VNC (its limit), 16 for SPICE."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(VNC_PASSWORD_MAX if kind == "vnc" else 16))


def _check_nics(conn: libvirt.virConnect, host: Host, nics: list[NicSpec], files: HostFiles) -> None:
    for n in nics:
        if n.kind == "network":
            try:
                net = conn.networkLookupByName(n.source)
            except libvirt.libvirtError:
                raise UsageError(f"no network {n.source!r} on {host.name}", hint="vpd net list") from None
            if not net.isActive():
                raise VpdError(f"network {n.source} on {host.name} is not active", hint=f"vpd net start {n.source}")
        elif not files.runner.run(["test", "-d", f"/sys/class/net/{n.source}/bridge"], check=False).ok:
            raise UsageError(f"{n.source} is not a bridge on {host.name}", hint="vpd host bridge create ...")


@dataclass
class _PlannedInstall:
    vm: str
    location: Location
    pool: libvirt.virStoragePool | None
    """Where the ISO's kernel and initrd are copied (the first disk's pool); None for a directory,
    whose files are booted in place."""


def _boot_volume_names(vm: str) -> tuple[str, str]:
    return f"{vm}-vmlinuz", f"{vm}-initrd"


def _plan_install(conn: libvirt.virConnect, host: Host, spec: VmSpec, planned: list[_PlannedDisk],
                  files: HostFiles) -> _PlannedInstall:
    location = locate_tree(files, spec.location or "", host.name)
    if not location.is_iso:
        return _PlannedInstall(spec.name, location, None)
    if not planned:
        raise UsageError("--location ISO needs a disk (--disk size=...): the installer's kernel and initrd "
                         "are copied next to it, and it is what the installer installs onto")
    pool = None
    for name in _boot_volume_names(spec.name):
        pool = _seed_pool(conn, host, planned[0], name)
    return _PlannedInstall(spec.name, location, pool)


def _install_boot_files(files: HostFiles, host: Host, install: _PlannedInstall, undo: Undo) -> tuple[str, str]:
    """The kernel and initrd to boot: in place for a directory; for an ISO, copied out of it into
    volumes next to the disk (removed with the VM's storage): QEMU boots only files, not files
    inside an ISO. The copy runs on the host (dd of the file's extent), the bytes never travel."""
    boot = install.location.boot
    if install.pool is None:
        root = install.location.source.rstrip("/")
        return f"{root}/{boot.kernel}", f"{root}/{boot.initrd}"
    out = []
    for extent, name in zip(install.location.extents or (), _boot_volume_names(install.vm), strict=True):
        events.emit("vm.create", f"{name} from {install.location.source}", len(out), 2, "files")
        ops.plan("volume", name, host.name, pool=install.pool.name(), owner=install.vm)
        vol = install.pool.createXML(volume_xml(name, extent[1], fmt="raw").to_xml_string(), 0)
        undo.push(lambda vol=vol: vol.delete(0))
        copy_out(files, install.location.source, extent, vol.path())
        out.append(vol.path())
    return out[0], out[1]


def create_vm(conn: libvirt.virConnect, host: Host, spec: VmSpec, files: HostFiles | None = None,
              taken_macs: set[str] | None = None) -> tuple[libvirt.virDomain, Created]:
    """Define the VM of `spec` on `host`. `taken_macs`: MACs in use on every host (the caller's
    inventory-wide view); without it only this host's are avoided."""
    if domain_exists(conn, spec.name):
        raise UsageError(f"a VM named {spec.name!r} already exists on {host.name}")
    files = files or HostFiles(host)
    planned = _plan_disks(conn, host, spec, files)
    iso = _resolve_cdrom(conn, host, spec.cdrom, files) if spec.cdrom is not None else None
    seed_name = f"{spec.name}-cidata.iso"
    seed_pool = _seed_pool(conn, host, planned[0], seed_name) if spec.seed is not None else None
    _check_nics(conn, host, spec.nics, files)
    taken = macs_in_use(conn) | (taken_macs or set())
    for n in spec.nics:
        if n.mac and n.mac.lower() in taken:
            raise UsageError(f"MAC {n.mac} is already in use on {host.name}")
    dtype = {"kvm": "kvm", "tcg": "qemu"}.get(spec.accel) or domain_type(conn.getCapabilities(), host.lab)
    platform = resolve_platform(conn, host.name, dtype, spec.accel, spec.arch, spec.cpu, spec.firmware)
    dtype = platform.domain_type
    install = _plan_install(conn, host, spec, planned, files) if spec.location is not None else None
    if install is not None and install.location.is_iso:
        iso = install.location.source
    with Undo() as undo:
        disks, paths, per_bus = [], [], {}
        for i, p in enumerate(planned):
            if p.in_place is not None:
                path, fmt = p.in_place, p.source_format if p.source_format in IMPORT_FORMATS else "raw"
            else:
                events.emit("vm.create", f"disk {p.volume_name}", i, len(planned), "disks")
                ops.plan("volume", p.volume_name, host.name, pool=p.pool.name(), owner=spec.name)
                vol = p.pool.createXML(volume_xml(p.volume_name, p.capacity, fmt=p.spec.format).to_xml_string(), 0)
                undo.push(lambda vol=vol: vol.delete(0))
                path, fmt = vol.path(), p.spec.format
                if p.spec.import_image is not None:
                    files.qemu_img(["convert", "-f", p.source_format, "-O", fmt, "-n", "--",
                                    p.spec.import_image, path])
            index = per_bus.get(p.spec.bus, 0)
            per_bus[p.spec.bus] = index + 1
            disks.append(file_disk(path, fmt, bus=p.spec.bus, index=index))
            paths.append(path)
        cdroms, seed_path = [], None
        if iso is not None:
            cdroms.append(cdrom_disk(iso, bus="sata", index=per_bus.get("sata", 0)))
            per_bus["sata"] = per_bus.get("sata", 0) + 1
        if spec.seed is not None and seed_pool is not None:
            events.emit("vm.create", f"cloud-init seed {seed_name}", len(planned), len(planned), "disks")
            ops.plan("volume", seed_name, host.name, pool=seed_pool.name(), owner=spec.name)
            seed_path = upload_seed(seed_pool, seed_name, build_iso(spec.seed), undo)
            cdroms.append(cdrom_disk(seed_path, bus="sata", index=per_bus.get("sata", 0)))
            per_bus["sata"] = per_bus.get("sata", 0) + 1
        kernel, initrd, cmdline = spec.kernel, spec.initrd or None, spec.cmdline if spec.kernel else ""
        if install is not None:
            kernel, initrd = _install_boot_files(files, host, install, undo)
            cmdline = spec.extra_args or ""
        graphics, shown = [], None
        if spec.graphics != "none":
            password = new_password(spec.graphics)
            graphics.append(graphics_device(spec.graphics, password))
            shown = {"type": spec.graphics, "listen": "127.0.0.1", "password": password}
        macs = []
        for n in spec.nics:
            mac = n.mac.lower() if n.mac else new_mac(taken)
            taken.add(mac)
            macs.append(mac)
        xml = guest_domain(
            spec.name, memory_mib=spec.memory_mib, vcpus=spec.vcpus, domain_type=dtype, uuid=str(uuidlib.uuid4()),
            kernel=kernel, initrd=initrd, cmdline=cmdline,
            arch=platform.arch, cpu=platform.cpu, uefi_loader=platform.uefi_loader,
            disks=disks, interfaces=[nic(n.kind, n.source, m, n.model) for n, m in zip(spec.nics, macs, strict=True)],
            serial_log=spec.serial_log or serial_log_path(spec.name),
            cdroms=cdroms, boot=(["cdrom"] if iso else []) + (["hd"] if disks else []) or None,
            graphics=graphics, videos=[video_device(spec.video)] if spec.video else [],
        ).to_xml_string()
        if spec.seed is not None and (spec.seed.user or spec.seed.ssh_keys):
            # What cloud-init was given, for `vpd vm ssh` (kept in the VM's own <metadata>).
            from .guest_ssh import with_access

            xml = with_access(xml, spec.seed.user, spec.seed.ssh_keys, spec.seed.ssh_key_file)
        if spec.lab_guest:
            editor = DomainEditor.from_xml(xml)
            editor.set_metadata(LAB_GUEST_NS, "vpd", LAB_GUEST_MARKER)
            xml = editor.to_xml()
        if not spec.serial_log:
            start_fresh_log(conn, host, spec.name, files)
        dom = conn.defineXML(xml)
    events.emit("vm.create", "defined", len(planned), len(planned), "disks")
    return dom, Created(host.name, spec.name, dom.UUIDString(), dtype, paths[0] if paths else None, paths, macs,
                        notes=list(spec.notes), cdroms=[c.source.file for c in cdroms if c.source and c.source.file],
                        seed=seed_path, graphics=shown,
                        install={"layout": install.location.boot.layout, "kernel": kernel, "initrd": initrd,
                                 "cmdline": cmdline} if install is not None else None,
                        firmware=platform.summary())
