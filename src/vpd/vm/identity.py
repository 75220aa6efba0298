"""What makes a VM itself across the whole inventory: its name, UUID, MACs and disk images.

VMs migrate and hosts share networks and pools, so a new VM's identity is checked against
every host vpd manages, not only the one it is made on: a MAC taken on hostb would clash
on the shared LAN, a UUID taken on hostb would block every later migration there, and an
image that is hostb's VM disk on a shared pool would be written by two guests at once.
Used by create, clone, restore, OVF import and NIC attach."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import libvirt
from lxml import etree

from ..connect.inventory import Host
from ..core.errors import UsageError, VpdError


@dataclass
class Identities:
    """Who uses what, per host: `where[name]`, `uuids[uuid]`, `macs[mac]`, `disks[path]` map to
    "host/vm". Hosts that did not answer are listed in `unreachable` (their VMs cannot be checked)."""

    names: dict[str, list[str]] = field(default_factory=dict)
    uuids: dict[str, str] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    disks: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    """Static IPv4 address (no prefix) -> "host/vm", from the seeds of vpd's customised clones."""
    unreachable: list[str] = field(default_factory=list)

    def taken_macs(self) -> set[str]:
        return set(self.macs)

    def require_new_name(self, name: str) -> None:
        if name in self.names:
            raise UsageError(f"a VM named {name!r} already exists on {', '.join(self.names[name])}",
                             hint="VM names are unique across the inventory (VMs migrate): pick another")

    def require_new_uuid(self, uuid: str) -> None:
        if uuid.lower() in self.uuids:
            raise UsageError(f"UUID {uuid} is already used by {self.uuids[uuid.lower()]}")

    def require_free_macs(self, macs: list[str] | tuple[str, ...]) -> None:
        for mac in macs:
            if mac.lower() in self.macs:
                raise UsageError(f"MAC {mac} is already in use by {self.macs[mac.lower()]}",
                                 hint="leave the MAC out and vpd picks a free one")

    def require_unused_images(self, images: list[str] | tuple[str, ...], on_host: str | None = None) -> None:
        """An image must not be another VM's disk anywhere (a shared pool's file is one disk for all hosts)."""
        for image in images:
            user = self.disks.get(image)
            if user is not None:
                raise UsageError(f"{image} is the disk of VM {user.split('/', 1)[1]} on {user.split('/', 1)[0]}",
                                 hint="clone that VM instead (vpd vm clone)")


def _host_identities(conn: libvirt.virConnect) -> list[tuple[str, str, list[str], list[str], list[str]]]:
    from .customize import ADDRESS_NS

    out = []
    for dom in conn.listAllDomains():
        try:
            tree = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        except libvirt.libvirtError:
            continue  # undefined while we looked
        macs = [m.lower() for m in tree.xpath("devices/interface/mac/@address")]
        disks = tree.xpath("devices/disk/source/@file | devices/disk/source/@dev")
        addresses = [a.split("/")[0] for a in tree.xpath("metadata/a:address/@ip", namespaces={"a": ADDRESS_NS})]
        out.append((dom.name(), dom.UUIDString().lower(), macs, disks, addresses))
    return out


def gather(session, hosts: list[Host] | None = None, exclude_vm: str | None = None) -> Identities:
    """Every host's VMs at once (one listing per host, in parallel). `exclude_vm`: leave out the
    VM of that name on every host (the VM being changed: its own MACs and disks are no clash,
    nor those of a definition it left behind on another host)."""
    hosts = hosts if hosts is not None else session.hosts()
    ids = Identities()

    def one(host: Host):
        try:
            return host, session.call(host, _host_identities), None
        except VpdError as exc:
            return host, [], exc

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        for host, vms, error in pool.map(one, hosts):
            if error is not None:
                ids.unreachable.append(host.name)
                continue
            for name, uuid, macs, disks, addresses in vms:
                if name == exclude_vm:
                    continue
                who = f"{host.name}/{name}"
                ids.names.setdefault(name, []).append(host.name)
                ids.uuids[uuid] = who
                for mac in macs:
                    ids.macs[mac] = who
                for disk in disks:
                    ids.disks[disk] = who
                for address in addresses:
                    ids.addresses[address] = who
    return ids
