"""Editing libvirt domain XML in place: typed properties over the live lxml document.

The pydantic-xml models (domain.py, devices.py) read libvirt's state and write vpd's own
definitions, but a parsed model drops every element it does not model (seclabel, cputune,
<qemu:commandline>, addresses...). Clone, restore, define and the template marker change a
*foreign* definition, so they go through this layer instead, in the spirit of virtinst's
XMLBuilder: each property reads and writes one spot of the live tree, and everything else in
the document is left exactly as it was.

    ed = DomainEditor.from_xml(dom.XMLDesc(flags))
    ed.name = "web2"
    ed.disk(target="vda").repoint("/pool/web2.qcow2", fmt="qcow2")
    conn.defineXML(ed.to_xml())
"""
from __future__ import annotations

import random
import uuid as uuidlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lxml import etree

from ..core.errors import VpdError

if TYPE_CHECKING:  # annotations only: the editor itself works on lxml alone
    from .base import LibvirtXml
    from .devices import Disk, Interface

VPD_NS_PREFIX = "https://vpd.example/ns/"
"""vpd's own <metadata> elements (template marker...) live in namespaces under this URI."""
TEMPLATE_NS = VPD_NS_PREFIX + "template"
TEMPLATE_MARKER = "<template/>"
"""The element vpd puts under <metadata> (namespace TEMPLATE_NS, prefix 'vpd') to mark a template."""
LAB_GUEST_NS = VPD_NS_PREFIX + "lab-guest"
LAB_GUEST_MARKER = "<lab-guest/>"
"""Under <metadata>: the VM runs the lab's tiny guest, which answers commands on its second serial
port (ttyS1). It describes the guest's software, so a clone keeps it (reset_identity)."""
ANTI_AFFINITY_NS = VPD_NS_PREFIX + "anti-affinity"
"""`<vpd:anti-affinity group="GROUP"/>` under <metadata>: placement keeps a group's VMs on different hosts."""


def anti_affinity_element(group: str) -> str:
    from xml.sax.saxutils import quoteattr

    return f"<anti-affinity group={quoteattr(group)}/>"

# Attributes and children of a disk's <source> that say *where* the data is: repointing replaces
# them. The rest (startupPolicy, <seclabel>, anything unknown) says how to treat the data and stays.
_LOCATION_ATTRS = ("file", "dev", "dir", "pool", "volume", "mode", "protocol", "name", "query", "tls", "index")
_LOCATION_CHILDREN = ("host", "auth", "initiator", "snapshot", "config", "slices", "ssl", "cookies",
                      "readahead", "timeout", "reconnect", "dataStore")

# Where libvirt writes <metadata> and <devices> among the domain's children.
_IDENTITY = ("name", "uuid", "genid", "title", "description")
_BEFORE_DEVICES = (*_IDENTITY, "metadata", "maxMemory", "memory", "currentMemory", "blkiotune", "memtune",
                   "memoryBacking", "vcpu", "vcpus", "iothreads", "iothreadids", "cputune", "numatune",
                   "resource", "sysinfo", "bootloader", "bootloader_args", "os", "idmap", "features", "cpu",
                   "clock", "on_poweroff", "on_reboot", "on_crash", "on_lockfailure", "pm", "perf")

# A domain from a backup or a user's file is not trusted: no entities, no network fetches.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def new_mac(taken: set[str], rng: random.Random | None = None) -> str:
    """A random MAC in the KVM/QEMU prefix 52:54:00, not among `taken`."""
    rng = rng or random.SystemRandom()
    while True:
        mac = "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
        if mac not in taken:
            return mac


def _child(parent: etree._Element, tag: str, after: tuple[str, ...] = (), **attrib: str) -> etree._Element:
    """`parent`'s first <tag>, made (with `attrib`) when there is none: right after the last
    child whose tag is in `after`, else first. libvirt accepts any order, but a new element
    where libvirt writes it keeps the document reading (and diffing) like libvirt's own."""
    found = parent.find(tag)
    if found is not None:
        return found
    node = etree.Element(tag, **attrib)
    before = [child for child in parent if child.tag in after]
    if before:
        before[-1].addnext(node)
    else:
        parent.insert(0, node)
    return node


class _Node:
    """A typed view of one live element; edits go straight into the document."""

    def __init__(self, element: etree._Element):
        self.element = element

    def _attr(self, path: str, name: str) -> str | None:
        node = self.element.find(path) if path else self.element
        return None if node is None else node.get(name)


class DiskEditor(_Node):
    """One <disk> of the document."""

    @property
    def type(self) -> str | None:
        return self.element.get("type")

    @property
    def device(self) -> str:
        return self.element.get("device", "disk")

    @property
    def target(self) -> str | None:
        return self._attr("target", "dev")

    @property
    def format(self) -> str | None:
        """The image format (<driver type>): 'qcow2', 'raw'..."""
        return self._attr("driver", "type")

    @format.setter
    def format(self, fmt: str) -> None:
        # A disk without <driver> gets QEMU's, the only driver name libvirt's QEMU accepts.
        _child(self.element, "driver", name="qemu").set("type", fmt)

    @property
    def source_file(self) -> str | None:
        return self._attr("source", "file")

    @property
    def path(self) -> str | None:
        """The file or block device the disk reads, or None (network, pool volume, empty CD-ROM)."""
        return self._attr("source", "file") or self._attr("source", "dev")

    def repoint(self, path: str | None = None, *, fmt: str | None = None, pool: str | None = None,
                volume: str | None = None, keep_backing_store: bool = False) -> None:
        """Make the disk read another image: a file `path`, or `volume` of storage `pool`.

        The old location (attributes and children such as <host> or <auth>) goes; how the
        data is treated (startupPolicy, <seclabel>, unknown content) stays. `fmt` sets the
        driver's format. The <backingStore> chain described the old image, so it goes too
        unless `keep_backing_store` (a full copy keeps its backing file)."""
        if (path is None) == (pool is None or volume is None):
            raise ValueError("repoint takes a path, or a pool and a volume")
        source = _child(self.element, "source", after=("driver",))
        for name in _LOCATION_ATTRS:
            source.attrib.pop(name, None)
        if self.element.get("type") != ("file" if path is not None else "volume"):
            # Another disk type: its location-specific children mean nothing for the new one.
            for child in [c for c in source if c.tag in _LOCATION_CHILDREN]:
                source.remove(child)
        if path is not None:
            self.element.set("type", "file")
            source.set("file", path)
        else:
            self.element.set("type", "volume")
            source.set("pool", pool)
            source.set("volume", volume)
        if fmt is not None:
            self.format = fmt
        if not keep_backing_store:
            for backing in self.element.findall("backingStore"):
                self.element.remove(backing)


class InterfaceEditor(_Node):
    """One <interface> of the document."""

    @property
    def type(self) -> str | None:
        return self.element.get("type")

    @property
    def mac(self) -> str | None:
        return self._attr("mac", "address")

    @mac.setter
    def mac(self, address: str) -> None:
        _child(self.element, "mac").set("address", address)

    @property
    def target(self) -> str | None:
        """The host-side device (tap, vnet0...) of a running VM's NIC."""
        return self._attr("target", "dev")

    @property
    def link_state(self) -> str:
        """'up' or 'down': the virtual cable (libvirt's <link state=.../>; none means up)."""
        return self._attr("link", "state") or "up"

    @link_state.setter
    def link_state(self, state: str) -> None:
        _child(self.element, "link", after=("mac", "source", "target", "model")).set("state", state)

    def to_xml(self) -> str:
        """This <interface> alone, with everything libvirt reported (what updateDevice wants)."""
        return etree.tostring(self.element, encoding="unicode", with_tail=False)


class DomainEditor(_Node):
    """A <domain> document, edited in place; `to_xml()` gives it back with everything it had."""

    @classmethod
    def from_xml(cls, xml: str | bytes) -> DomainEditor:
        root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml, _PARSER)
        if root.tag != "domain":
            raise VpdError(f"not a domain definition: the root element is <{root.tag}>")
        return cls(root)

    def to_xml(self) -> str:
        return etree.tostring(self.element, encoding="unicode")

    # --- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self.element.findtext("name")

    @name.setter
    def name(self, value: str) -> None:
        _child(self.element, "name").text = value

    @property
    def uuid(self) -> str | None:
        return self.element.findtext("uuid")

    @uuid.setter
    def uuid(self, value: str | None) -> None:
        # None removes it: libvirt then gives the definition a new one.
        if value is None:
            node = self.element.find("uuid")
            if node is not None:
                self.element.remove(node)
        else:
            _child(self.element, "uuid", after=("name",)).text = value

    def new_uuid(self, factory: Callable[[], Any] = uuidlib.uuid4) -> str:
        """Give the domain a fresh random UUID and return it."""
        self.uuid = str(factory())
        return self.uuid

    def reset_identity(self, name: str, *, taken_macs: set[str], serial_log: str | None,
                       first_mac: str | None = None, drop_vpd_metadata: bool = True,
                       uuid_factory: Callable[[], Any] = uuidlib.uuid4,
                       mac_factory: Callable[[set[str]], str] = new_mac) -> list[str]:
        """Make this definition a new VM beside its source: new name, UUID and MACs, its own
        serial log, and (unless told otherwise) none of vpd's bookkeeping about the source (what
        it says about the guest's software, the lab-guest marker, stays true of the copy).
        Returns the new MACs, in interface order."""
        self.name = name
        self.new_uuid(uuid_factory)
        if drop_vpd_metadata:
            self._remove_metadata(lambda ns: ns.startswith(VPD_NS_PREFIX) and ns != LAB_GUEST_NS)
        macs = self.reset_macs(taken_macs, first=first_mac, factory=mac_factory)
        if serial_log is not None:
            self.give_own_serial_log(serial_log)
        return macs

    # --- devices --------------------------------------------------------------------------

    @property
    def devices(self) -> etree._Element:
        return _child(self.element, "devices", after=_BEFORE_DEVICES)

    def disks(self, device: str | None = None) -> list[DiskEditor]:
        """The <disk>s, in document order; only those of `device` ('disk', 'cdrom'...) when given."""
        return [DiskEditor(d) for d in self.element.findall("devices/disk")
                if device is None or d.get("device", "disk") == device]

    def disk(self, *, target: str | None = None, path: str | None = None) -> DiskEditor:
        """The disk with target dev `target`, or reading `path`. Raises VpdError if none."""
        for disk in self.disks():
            if (target is not None and disk.target == target) or (path is not None and disk.path == path):
                return disk
        raise VpdError(f"{self.name} has no disk {target or path}")

    def interfaces(self) -> list[InterfaceEditor]:
        return [InterfaceEditor(i) for i in self.element.findall("devices/interface")]

    @property
    def macs(self) -> list[str]:
        """The MACs given in the definition, lower case, in interface order."""
        return [mac.lower() for mac in self.element.xpath("devices/interface/mac/@address")]

    def reset_macs(self, taken: set[str], *, first: str | None = None,
                   factory: Callable[[set[str]], str] = new_mac) -> list[str]:
        """Fresh MACs, none in `taken`, for every interface that names one (`first`, when
        given, for the first). `taken` grows by each MAC handed out; returns them in order."""
        out = []
        for n, iface in enumerate(i for i in self.interfaces() if i.mac is not None):
            address = first if (n == 0 and first is not None) else factory(taken)
            taken.add(address)
            iface.mac = address
            out.append(address)
        return out

    def add_device(self, device: LibvirtXml) -> etree._Element:
        """Append a device built from the typed models (Disk, Interface, Serial...), next to
        the devices of its kind so the document reads as libvirt writes it."""
        node = device.to_xml_tree()
        same = self.devices.findall(node.tag)
        if same:
            same[-1].addnext(node)
        else:
            self.devices.append(node)
        return node

    def remove_device(self, device: Disk | Interface) -> None:
        """Remove the device a typed model names: a disk by its target, a NIC by its MAC."""
        from .devices import Disk, Interface  # noqa: F811  (at run time; the module-level one is for types)

        if isinstance(device, Disk) and device.target is not None:
            self.remove_disk(device.target.dev)
        elif isinstance(device, Interface) and device.mac is not None:
            self.remove_interface(device.mac.address)
        else:
            raise ValueError(f"cannot tell which <{device.__xml_tag__}> to remove")

    def remove_disk(self, target: str) -> None:
        disk = self.disk(target=target)
        disk.element.getparent().remove(disk.element)

    def remove_interface(self, mac: str) -> None:
        for iface in self.interfaces():
            if (iface.mac or "").lower() == mac.lower():
                iface.element.getparent().remove(iface.element)
                return
        raise VpdError(f"{self.name} has no interface with MAC {mac}")

    # --- serial log -----------------------------------------------------------------------

    @staticmethod
    def _is_serial0(char: etree._Element) -> bool:
        target = char.find("target")
        return char.tag == "serial" and (target is None or target.get("port") in (None, "0"))

    @property
    def serial_log(self) -> str | None:
        """The host file that keeps serial0's output, if the domain has one."""
        for serial in self.element.findall("devices/serial"):
            log = serial.find("log")
            if log is not None and self._is_serial0(serial):
                return log.get("file")
        return None

    def give_own_serial_log(self, path: str) -> None:
        """Point serial0's log (if any) at `path` and drop the logs of other char devices:
        a clone or restored copy that kept its source's files would interleave both guests'
        output in one file (virt-clone does that)."""
        for log in self.element.findall("devices/serial/log") + self.element.findall("devices/console/log"):
            char = log.getparent()
            if self._is_serial0(char):
                log.set("file", path)
            else:
                char.remove(log)

    # --- metadata -------------------------------------------------------------------------

    def metadata(self, namespace: str) -> etree._Element | None:
        """vpd's (or anyone's) element in namespace `namespace` under <metadata>, if any."""
        for node in self.element.findall("metadata/*"):
            if etree.QName(node).namespace == namespace:
                return node
        return None

    def set_metadata(self, namespace: str, prefix: str, xml: str) -> None:
        """Put `xml` under <metadata> in `namespace`, replacing what was there, as libvirt's
        virDomainSetMetadata does (so a definition edited here reads like one edited live)."""
        self.remove_metadata(namespace)
        given = etree.fromstring(xml, _PARSER)
        metadata = _child(self.element, "metadata", after=_IDENTITY)
        node = etree.SubElement(metadata, f"{{{namespace}}}{etree.QName(given).localname}", nsmap={prefix: namespace})
        node.attrib.update(given.attrib)
        node.text = given.text
        node.extend(list(given))

    def remove_metadata(self, namespace: str) -> None:
        self._remove_metadata(lambda ns: ns == namespace)

    def remove_metadata_under(self, prefix: str) -> None:
        """Drop every <metadata> element whose namespace starts with `prefix` (all of vpd's)."""
        self._remove_metadata(lambda ns: ns.startswith(prefix))

    def _remove_metadata(self, match: Callable[[str], bool]) -> None:
        for node in self.element.findall("metadata/*"):
            namespace = etree.QName(node).namespace
            if namespace and match(namespace):
                node.getparent().remove(node)

    # --- read-only views of unmodelled parts ----------------------------------------------

    @property
    def cpu_xml(self) -> str | None:
        """The <cpu> element as text (what virConnectCompareCPU takes), or None."""
        cpu = self.element.find("cpu")
        return None if cpu is None else etree.tostring(cpu, encoding="unicode", with_tail=False)


def disk_files(xml: str | bytes, device: str | None = None) -> list[str]:
    """The file paths of a domain's disks (of `device` only, when given), in document order."""
    return [d.source_file for d in DomainEditor.from_xml(xml).disks(device) if d.source_file]


def nvram_path(xml: str | bytes) -> str | None:
    """The path of a UEFI domain's own NVRAM file (<os><nvram>), if it names one."""
    node = DomainEditor.from_xml(xml).element.find("os/nvram")
    return ((node.text or "").strip() or None) if node is not None else None


def anti_affinity_of(xml: str | bytes) -> str | None:
    """The VM's anti-affinity group (vpd's metadata element), or None."""
    node = DomainEditor.from_xml(xml).metadata(ANTI_AFFINITY_NS)
    return (node.get("group") or None) if node is not None else None


def macs_of(xml: str | bytes) -> list[str]:
    """The MACs a domain's interfaces name, lower case."""
    return DomainEditor.from_xml(xml).macs
