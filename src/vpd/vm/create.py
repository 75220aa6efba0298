"""Create a VM: a disk volume in a pool (libvirt runs qemu-img), a domain defined
from typed XML, optionally started. Whatever fails, what was made is removed."""
from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field

import libvirt

from ..connect.inventory import Host
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from ..xml.domain import lab_guest_domain
from ..xml.volume import volume as volume_xml
from .accel import domain_type
from .inventory import domain_exists


@dataclass
class VmSpec:
    name: str
    kernel: str
    initrd: str
    cmdline: str
    memory_mib: int = 128
    vcpus: int = 1
    disk_size: int | None = None  # bytes; None = no disk
    disk_pool: str = "default"
    disk_format: str = "qcow2"
    accel: str = "auto"  # auto | kvm | tcg
    serial_log: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "VM name")
        check_name(self.disk_pool, "pool name")
        if not 16 <= self.memory_mib <= 1024 * 1024:
            raise UsageError(f"memory {self.memory_mib} MiB is out of range (16 MiB - 1 TiB)")
        if not 1 <= self.vcpus <= 512:
            raise UsageError(f"vcpus {self.vcpus} is out of range (1-512)")
        if self.disk_format not in ("qcow2", "raw"):
            raise UsageError(f"disk format {self.disk_format!r}: use qcow2 or raw")
        if self.accel not in ("auto", "kvm", "tcg"):
            raise UsageError(f"accel {self.accel!r}: use auto, kvm or tcg")


@dataclass
class Created:
    host: str
    name: str
    uuid: str
    domain_type: str
    disk: str | None
    started: bool = False
    notes: list[str] = field(default_factory=list)


def create_vm(conn: libvirt.virConnect, host: Host, spec: VmSpec) -> tuple[libvirt.virDomain, Created]:
    if domain_exists(conn, spec.name):
        raise UsageError(f"a VM named {spec.name!r} already exists on {host.name}")
    dtype = {"kvm": "kvm", "tcg": "qemu"}.get(spec.accel) or domain_type(conn.getCapabilities(), host.address)
    vol = None
    disk_path = None
    undo = []
    try:
        if spec.disk_size:
            try:
                pool = conn.storagePoolLookupByName(spec.disk_pool)
            except libvirt.libvirtError:
                raise UsageError(f"no storage pool {spec.disk_pool!r} on {host.name}") from None
            if not pool.isActive():
                raise VpdError(f"pool {spec.disk_pool} on {host.name} is not active", hint=f"vpd pool start {spec.disk_pool}")
            vol_name = f"{spec.name}.{spec.disk_format}"
            pool.refresh()
            if vol_name in pool.listVolumes():
                raise UsageError(f"volume {vol_name} already exists in pool {spec.disk_pool} on {host.name}")
            vol = pool.createXML(volume_xml(vol_name, spec.disk_size, fmt=spec.disk_format).to_xml_string(), 0)
            undo.append(vol.delete)
            disk_path = vol.path()
        xml = lab_guest_domain(
            spec.name, kernel=spec.kernel, initrd=spec.initrd, cmdline=spec.cmdline,
            disk_path=disk_path, disk_format=spec.disk_format, memory_mib=spec.memory_mib,
            vcpus=spec.vcpus, domain_type=dtype, serial_log=spec.serial_log, uuid=str(uuidlib.uuid4()),
        ).to_xml_string()
        dom = conn.defineXML(xml)
        undo.append(dom.undefine)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except libvirt.libvirtError:
                pass
        raise
    return dom, Created(host.name, spec.name, dom.UUIDString(), dtype, disk_path)
