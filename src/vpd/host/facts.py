"""What `vpd host list` shows: one fact sheet per host, read through libvirt."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import libvirt
from lxml import etree

from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections
from ..core.errors import VpdError
from ..vm.accel import domain_type

MIN_LIBVIRT = (11, 0, 0)
MIN_QEMU = (10, 0, 0)


def version_tuple(number: int) -> tuple[int, int, int]:
    """libvirt encodes versions as major * 1e6 + minor * 1e3 + release."""
    return number // 1_000_000, (number // 1000) % 1000, number % 1000


def version_text(number: int) -> str:
    return ".".join(str(p) for p in version_tuple(number))


@dataclass
class HostFacts:
    name: str
    uri: str
    reachable: bool
    error: str | None = None
    fqdn: str | None = None
    libvirt_version: str | None = None
    qemu_version: str | None = None
    versions_ok: bool | None = None
    arch: str | None = None
    cpu_model: str | None = None
    cpus: int | None = None
    memory_total_mib: int | None = None
    memory_free_mib: int | None = None
    vms_total: int | None = None
    vms_running: int | None = None
    accel: str | None = None  # how new guests run there: "kvm" or "tcg"

    def to_dict(self) -> dict:
        return asdict(self)


def read_facts(conns: Connections, host: Host) -> HostFacts:
    try:
        conn = conns.get(host)
        caps = etree.fromstring(conn.getCapabilities().encode())
        info = conn.getInfo()
        domains = conn.listAllDomains()
        lib = conn.getLibVersion()
        hyp = conn.getVersion()
        facts = HostFacts(
            name=host.name,
            uri=host.uri,
            reachable=True,
            fqdn=conn.getHostname(),
            libvirt_version=version_text(lib),
            qemu_version=version_text(hyp) if hyp else None,
            versions_ok=version_tuple(lib) >= MIN_LIBVIRT and (not hyp or version_tuple(hyp) >= MIN_QEMU)
            if conn.getType() == "QEMU" else None,
            arch=caps.findtext("host/cpu/arch"),
            cpu_model=caps.findtext("host/cpu/model"),
            cpus=info[2],
            memory_total_mib=info[1],
            memory_free_mib=conn.getFreeMemory() // (1024 * 1024),
            vms_total=len(domains),
            vms_running=sum(1 for d in domains if d.isActive()),
            accel="kvm" if domain_type(conn.getCapabilities(), host.lab) == "kvm" else "tcg",
        )
        return facts
    except VpdError as exc:
        return HostFacts(name=host.name, uri=host.uri, reachable=False, error=exc.message)
    except libvirt.libvirtError as exc:
        return HostFacts(name=host.name, uri=host.uri, reachable=False, error=exc.get_error_message())


def list_hosts(conns: Connections, hosts: list[Host]) -> list[HostFacts]:
    """Facts for every host, read in parallel so one dead host costs one timeout, not N."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return list(pool.map(lambda h: read_facts(conns, h), hosts))
