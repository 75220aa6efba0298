"""The OVF descriptor (DMTF DSP0243), typed.

vpd writes OVF 2.0 and reads 1.x and 2.x. The parts that matter for a VM are the same in both
versions; they differ in the envelope's namespace and in 2.x's optional StorageItem /
EthernetPortItem, which carry the same properties as a RASD Item under other namespaces. So a
foreign descriptor is first brought to one canonical shape (`canonical_tree`), then parsed by
one set of models. Elements vpd does not model are skipped, except extension sections a
descriptor marks as required (the spec's rule: a consumer that does not understand a required
section must refuse the package).

Child elements are declared in the order the DMTF schemas list them (RASD and VSSD properties
are alphabetical), so what vpd writes validates against those schemas.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree
from pydantic import ValidationError
from pydantic_xml import attr, element

from ..core.errors import UsageError
from ..xml.base import LibvirtXml

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/2"
OVF1_NS = "http://schemas.dmtf.org/ovf/envelope/1"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
SASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData"
EPASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData"
VPD_OVF_NS = "https://vpd.example/ns/ovf"
"""vpd's own extension section (direct kernel boot) lives here; other consumers may ignore it."""

NSMAP = {"ovf": OVF_NS, "rasd": RASD_NS, "vssd": VSSD_NS, "vpd": VPD_OVF_NS}

MAX_DESCRIPTOR_BYTES = 16 * 1024 * 1024
"""Real descriptors are a few KiB; a huge one is a corrupt or hostile package."""

# CIM ResourceType values (CIM_ResourceAllocationSettingData) vpd maps.
PROCESSOR = 3
MEMORY = 4
IDE_CONTROLLER = 5
SCSI_CONTROLLER = 6
ETHERNET = 10
FLOPPY = 14
CD_DRIVE = 15
DVD_DRIVE = 16
DISK_DRIVE = 17
OTHER_STORAGE = 20
"""Used for SATA (VMware 'vmware.sata.ahci', VirtualBox 'AHCI') and by vpd for virtio-blk."""
SERIAL_PORT = 21
USB_CONTROLLER = 23
GRAPHICS = 24
SOUND = 35

DISK_FORMATS = {
    "vmdk": "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized",
    "qcow2": "http://www.gnome.org/~markmc/qcow-image-format.html",
}
"""The format URIs vpd writes; VMware's is what every OVF consumer knows."""


class OvfModel(LibvirtXml, nsmap=NSMAP):
    """Base of the descriptor's models. As for libvirt's XML: fields are found by tag wherever they
    sit, unknown elements are skipped, and an absent optional property is left out when written."""


# --- References and sections of the envelope ---------------------------------------------

class File(OvfModel, tag="File", ns="ovf"):
    id: str = attr(name="id", ns="ovf")
    href: str = attr(name="href", ns="ovf")
    size: int | None = attr(name="size", ns="ovf", default=None)
    compression: str | None = attr(name="compression", ns="ovf", default=None)
    """'gzip' when the file is stored compressed; vpd writes files uncompressed."""
    chunk_size: int | None = attr(name="chunkSize", ns="ovf", default=None)


class References(OvfModel, tag="References", ns="ovf"):
    files: list[File] = element(default_factory=list)


class VirtualDisk(OvfModel, tag="Disk", ns="ovf"):
    disk_id: str = attr(name="diskId", ns="ovf")
    file_ref: str | None = attr(name="fileRef", ns="ovf", default=None)
    """None: a blank disk of `capacity`, created by the importer."""
    capacity: str = attr(name="capacity", ns="ovf")
    """A number of `capacity_units`; the spec also allows ${property} references."""
    capacity_units: str | None = attr(name="capacityAllocationUnits", ns="ovf", default=None)
    format: str | None = attr(name="format", ns="ovf", default=None)
    populated_size: int | None = attr(name="populatedSize", ns="ovf", default=None)

    def capacity_bytes(self) -> int:
        if not re.fullmatch(r"\d{1,20}", self.capacity.strip()):
            raise UsageError(f"disk {self.disk_id}: capacity {self.capacity!r} is not a whole number",
                             hint="property references (${...}) in capacities are not supported")
        return int(self.capacity) * units_to_bytes(self.capacity_units or "byte", f"disk {self.disk_id}")


class DiskSection(OvfModel, tag="DiskSection", ns="ovf"):
    info: str = element(tag="Info", ns="ovf", default="Virtual disks")
    disks: list[VirtualDisk] = element(default_factory=list)


class Network(OvfModel, tag="Network", ns="ovf"):
    name: str = attr(name="name", ns="ovf")
    description: str | None = element(tag="Description", ns="ovf", default=None)


class NetworkSection(OvfModel, tag="NetworkSection", ns="ovf"):
    info: str = element(tag="Info", ns="ovf", default="Logical networks")
    networks: list[Network] = element(default_factory=list)


# --- The virtual hardware -----------------------------------------------------------------

class System(OvfModel, tag="System", ns="ovf"):
    """CIM_VirtualSystemSettingData: which kind of virtual hardware the section describes."""

    element_name: str = element(tag="ElementName", ns="vssd", default="Virtual Hardware Family")
    instance_id: str = element(tag="InstanceID", ns="vssd", default="0")
    virtual_system_identifier: str | None = element(tag="VirtualSystemIdentifier", ns="vssd", default=None)
    virtual_system_type: str | None = element(tag="VirtualSystemType", ns="vssd", default=None)


class Item(OvfModel, tag="Item", ns="ovf"):
    """CIM_ResourceAllocationSettingData: one virtual device (CPU, memory, controller, disk, NIC...)."""

    required: bool | None = attr(name="required", ns="ovf", default=None)
    address: str | None = element(tag="Address", ns="rasd", default=None)
    address_on_parent: str | None = element(tag="AddressOnParent", ns="rasd", default=None)
    allocation_units: str | None = element(tag="AllocationUnits", ns="rasd", default=None)
    automatic_allocation: bool | None = element(tag="AutomaticAllocation", ns="rasd", default=None)
    connection: list[str] = element(tag="Connection", ns="rasd", default_factory=list)
    description: str | None = element(tag="Description", ns="rasd", default=None)
    element_name: str = element(tag="ElementName", ns="rasd", default="")
    host_resource: list[str] = element(tag="HostResource", ns="rasd", default_factory=list)
    instance_id: str = element(tag="InstanceID", ns="rasd")
    parent: str | None = element(tag="Parent", ns="rasd", default=None)
    resource_sub_type: str | None = element(tag="ResourceSubType", ns="rasd", default=None)
    resource_type: int = element(tag="ResourceType", ns="rasd")
    virtual_quantity: int | None = element(tag="VirtualQuantity", ns="rasd", default=None)

    def disk_id(self) -> str | None:
        """The DiskSection id a disk drive's HostResource names ('ovf:/disk/ID'; '/disk/ID' in old files)."""
        for resource in self.host_resource:
            m = re.fullmatch(r"\s*(?:ovf:)?/disk/(.+?)\s*", resource)
            if m:
                return m.group(1)
        return None

    def quantity_bytes(self, default_units: str) -> int:
        """VirtualQuantity scaled by AllocationUnits, e.g. memory 2048 'byte * 2^20'."""
        if self.virtual_quantity is None or self.virtual_quantity <= 0:
            raise UsageError(f"hardware item {self.instance_id} ({self.element_name}) has no positive quantity")
        return self.virtual_quantity * units_to_bytes(self.allocation_units or default_units,
                                                      f"hardware item {self.instance_id}")


class VirtualHardwareSection(OvfModel, tag="VirtualHardwareSection", ns="ovf"):
    info: str = element(tag="Info", ns="ovf", default="Virtual hardware requirements")
    system: System | None = element(default=None)
    items: list[Item] = element(default_factory=list)

    def of_type(self, *resource_types: int) -> list[Item]:
        return [item for item in self.items if item.resource_type in resource_types]


class OperatingSystemSection(OvfModel, tag="OperatingSystemSection", ns="ovf"):
    id: int = attr(name="id", ns="ovf", default=1)
    """A CIM_OperatingSystem OsType; 1 is 'Other'."""
    info: str = element(tag="Info", ns="ovf", default="The kind of installed guest operating system")
    description: str | None = element(tag="Description", ns="ovf", default=None)


class FileReference(OvfModel, ns="vpd"):
    file_ref: str = attr(name="fileRef", ns="ovf")


class KernelFile(FileReference, tag="Kernel", ns="vpd"):
    pass


class InitrdFile(FileReference, tag="Initrd", ns="vpd"):
    pass


class KernelBootSection(OvfModel, tag="KernelBootSection", ns="vpd"):
    """vpd's extension: the VM boots a kernel directly (no boot loader on its disks).

    Marked not required, as the spec asks of extensions: another consumer still gets the disks
    and hardware, and only misses the boot files, which travel in the package as ordinary files."""

    required: bool = attr(name="required", ns="ovf", default=False)
    info: str = element(tag="Info", ns="ovf", default="Direct kernel boot (vpd)")
    kernel: KernelFile = element()
    initrd: InitrdFile | None = element(default=None)
    cmdline: str | None = element(tag="Cmdline", ns="vpd", default=None)


class VirtualSystem(OvfModel, tag="VirtualSystem", ns="ovf"):
    id: str = attr(name="id", ns="ovf")
    info: str = element(tag="Info", ns="ovf", default="A virtual machine")
    name: str | None = element(tag="Name", ns="ovf", default=None)
    operating_system: OperatingSystemSection | None = element(default=None)
    hardware: list[VirtualHardwareSection] = element(default_factory=list)
    kernel_boot: KernelBootSection | None = element(default=None)


class Envelope(OvfModel, tag="Envelope", ns="ovf"):
    version: str | None = attr(name="version", ns="ovf", default="2.0")
    references: References = element(default_factory=References)
    disk_section: DiskSection | None = element(default=None)
    network_section: NetworkSection | None = element(default=None)
    virtual_system: VirtualSystem = element()

    def file(self, file_id: str) -> File:
        for f in self.references.files:
            if f.id == file_id:
                return f
        raise UsageError(f"the descriptor refers to file {file_id!r}, which its References do not list")

    def disk(self, disk_id: str) -> VirtualDisk:
        for d in self.disk_section.disks if self.disk_section else []:
            if d.disk_id == disk_id:
                return d
        raise UsageError(f"the descriptor refers to disk {disk_id!r}, which its DiskSection does not list")

    @property
    def hardware(self) -> VirtualHardwareSection:
        """The first hardware section (VMware may list one per virtual hardware version)."""
        if not self.virtual_system.hardware:
            raise UsageError("the descriptor's VirtualSystem has no VirtualHardwareSection")
        return self.virtual_system.hardware[0]

    def to_bytes(self) -> bytes:
        data = self.to_xml(pretty_print=True, xml_declaration=True, encoding="UTF-8")
        assert isinstance(data, bytes)  # with an encoding, lxml serialises to bytes
        return data


# --- Units --------------------------------------------------------------------------------

_PROGRAMMATIC_UNIT = re.compile(r"byte(?:\*(\d+)\^(\d+))?(?:\*(\d+))?", re.IGNORECASE)
_NAMED_UNITS = {"bytes": 1, "kilobytes": 2**10, "megabytes": 2**20, "gigabytes": 2**30, "terabytes": 2**40}
"""Older VirtualBox files name units instead of using DSP0004's programmatic form; binary powers."""


def units_to_bytes(units: str, what: str = "size") -> int:
    """Bytes per unit of a DSP0004 programmatic unit such as 'byte * 2^20' (or 'MegaBytes')."""
    compact = re.sub(r"\s+", "", units or "")
    named = _NAMED_UNITS.get(compact.lower())
    if named:
        return named
    m = _PROGRAMMATIC_UNIT.fullmatch(compact)
    if m:
        base, exponent, factor = m.groups()
        if base is None or (int(base) in (2, 10) and int(exponent) <= 60):
            scale = int(base) ** int(exponent) if base else 1
            return scale * (int(factor) if factor else 1)
    raise UsageError(f"{what}: unknown allocation units {units!r}", hint="expected e.g. 'byte * 2^20'")


def bytes_to_units(value: int) -> tuple[int, str]:
    """The largest binary unit that holds `value` exactly: (2, 'byte * 2^30') for 2 GiB."""
    for exponent in (40, 30, 20, 10):
        if value and value % 2**exponent == 0:
            return value // 2**exponent, f"byte * 2^{exponent}"
    return value, "byte"


# --- Reading a descriptor -----------------------------------------------------------------

def _safe_parser() -> etree.XMLParser:
    # No entities, DTDs or network: a descriptor comes from a package someone else made.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=True)


def _rename(name: str, namespaces: dict[str, str]) -> str:
    q = etree.QName(name)
    return etree.QName(namespaces.get(q.namespace, q.namespace), q.localname).text if q.namespace else name


def canonical_tree(root: etree._Element) -> etree._Element:
    """The descriptor in OVF 2.x form: 1.x's namespace renamed, Storage/EthernetPortItems as Items."""
    namespaces = {OVF1_NS: OVF_NS}
    item_namespaces = {SASD_NS: RASD_NS, SASD_NS + ".xsd": RASD_NS, EPASD_NS: RASD_NS, EPASD_NS + ".xsd": RASD_NS}
    for el in root.iter(etree.Element):
        el.tag = _rename(el.tag, namespaces)
        if el.tag in (f"{{{OVF_NS}}}StorageItem", f"{{{OVF_NS}}}EthernetPortItem"):
            el.tag = f"{{{OVF_NS}}}Item"
            for child in el:
                if isinstance(child.tag, str):
                    child.tag = _rename(child.tag, item_namespaces)
        for key in list(el.attrib):
            renamed = _rename(key, namespaces)
            if renamed != key:
                el.attrib[renamed] = el.attrib.pop(key)
    return root


def _required_unknown(elements: Iterable[etree._Element]) -> list[str]:
    """Extension sections (not OVF's own) that do not say ovf:required='false'."""
    unknown = []
    for el in elements:
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        if q.namespace in (OVF_NS, VPD_OVF_NS):
            continue
        if el.get(f"{{{OVF_NS}}}required", "true").strip().lower() not in ("false", "0"):
            unknown.append(q.localname if not q.namespace else f"{{{q.namespace}}}{q.localname}")
    return unknown


def parse_envelope(data: bytes) -> Envelope:
    """Parse and check a descriptor; every problem is a UsageError saying what is wrong."""
    if len(data) > MAX_DESCRIPTOR_BYTES:
        raise UsageError(f"the OVF descriptor is {len(data)} bytes: too large to be a real one")
    try:
        root = etree.fromstring(data, _safe_parser())
    except etree.XMLSyntaxError as exc:
        raise UsageError(f"the OVF descriptor is not well-formed XML: {exc}") from None
    q = etree.QName(root)
    if q.localname != "Envelope" or q.namespace not in (OVF_NS, OVF1_NS):
        raise UsageError(f"not an OVF 1.x/2.x descriptor (root element {q.text})",
                         hint=f"the root must be Envelope in {OVF1_NS} or {OVF_NS}")
    root = canonical_tree(root)
    if root.find(f"{{{OVF_NS}}}VirtualSystemCollection") is not None:
        raise UsageError("the package holds a VirtualSystemCollection: vpd imports one virtual machine per package")
    systems = root.findall(f"{{{OVF_NS}}}VirtualSystem")
    if len(systems) != 1:
        raise UsageError(f"the descriptor has {len(systems)} VirtualSystem elements; vpd imports exactly one")
    unknown = _required_unknown(list(root) + list(systems[0]))
    if unknown:
        raise UsageError(f"the descriptor requires sections vpd does not understand: {', '.join(unknown)}",
                         hint="OVF consumers must refuse required sections they cannot honour")
    try:
        return Envelope.from_xml_tree(root)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"the OVF descriptor is invalid at {where}: {first['msg']}") from None
