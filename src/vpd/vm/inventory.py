"""Finding VMs: one by name on a host, whether it is a template, what uses a disk,
and `vpd vm list` (every VM of every host from one bulk-stats call per host)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import libvirt

from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections
from ..core.errors import VpdError
from ..core.names import check_name
from ..xml.edit import TEMPLATE_NS, nvram_path

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}


def volume_by_path(conn: libvirt.virConnect, path: str) -> libvirt.virStorageVol | None:
    """The pool volume at `path`, or None. A shared pool's listing on this host may predate a
    volume another host made (or a guest that migrated here): refresh the pools once and retry."""
    try:
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        pass
    from lxml import etree

    directory = path.rsplit("/", 1)[0]
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        try:
            # Only the pool that holds that directory: refreshing a remote (iSCSI) pool costs a login.
            if etree.fromstring(pool.XMLDesc(0).encode()).findtext("target/path") == directory:
                pool.refresh(0)
        except libvirt.libvirtError:
            continue
    try:
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        return None


def disk_users(conn: libvirt.virConnect) -> dict[str, str]:
    """Disk path -> name of the VM on this host that uses it."""
    from ..xml.domain import Domain

    return {path: dom.name() for dom in conn.listAllDomains() for path in Domain.from_xml(dom.XMLDesc(0)).disk_paths()}


def domain_exists(conn: libvirt.virConnect, name: str) -> bool:
    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False


def find_domain(conn: libvirt.virConnect, host: Host, name: str) -> libvirt.virDomain:
    """The VM `name` on `host` (NotFound only when libvirt says there is none)."""
    from ..connect.libvirt_conn import lookup

    check_name(name, "VM name")
    return lookup(host, lambda: conn.lookupByName(name), f"no VM named {name!r} on {host.name}",
                  hint="`vpd vm list --all` lists them")


def is_template(dom: libvirt.virDomain) -> bool:
    """Whether the VM carries vpd's template mark (vm/template.py sets and clears it)."""
    try:
        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, TEMPLATE_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        return True
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return False
        raise


@dataclass
class VmSummary:
    host: str
    name: str
    uuid: str
    state: str
    vcpus: int | None
    memory_mib: int | None
    persistent: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HostVms:
    host: str
    vms: list[VmSummary]
    error: str | None = None


def _summaries(host: Host, conn: libvirt.virConnect, include_inactive: bool) -> list[VmSummary]:
    flags = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
    if include_inactive:
        flags |= libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE
    stats = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON
    # One call for the (usually none) transient domains, not an isPersistent round trip per VM:
    # a listing of 500 VMs was 500 RPCs (bench/web).
    transient = {d.UUIDString() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
    out = []
    for dom, record in conn.getAllDomainStats(stats, flags):
        vcpus = record.get("vcpu.current")
        mem_kib = record.get("balloon.current") or record.get("balloon.maximum")
        if vcpus is None or mem_kib is None:
            # Drivers without these stats groups (e.g. test:///) still answer info().
            _, max_kib, cur_kib, info_vcpus, _ = dom.info()
            vcpus = vcpus if vcpus is not None else info_vcpus
            mem_kib = mem_kib or cur_kib or max_kib
        out.append(
            VmSummary(
                host=host.name,
                name=dom.name(),
                uuid=dom.UUIDString(),
                state=STATE_NAMES.get(record.get("state.state"), "unknown"),
                vcpus=vcpus,
                memory_mib=mem_kib // 1024 if mem_kib else None,
                persistent=dom.UUIDString() not in transient,
            )
        )
    return sorted(out, key=lambda v: v.name)


def list_vms(conns: Connections, hosts: list[Host], include_inactive: bool = True) -> list[HostVms]:
    def one(host: Host) -> HostVms:
        try:
            return HostVms(host.name, conns.call(host, lambda c: _summaries(host, c, include_inactive)))
        except VpdError as exc:
            return HostVms(host.name, [], exc.message)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


@dataclass
class LocatedVm:
    host: Host
    domain: libvirt.virDomain
    found_by_search: bool  # the user did not name the host: front ends say where it was found


def pick_host(name: str, found: dict[str, bool], prefer_running: bool = True,
              unreachable: list[str] | tuple[str, ...] = ()) -> str:
    """Which host holds the VM `name`, from `found` (host -> the VM is active there).

    The rule: one host defines it -> that host. It runs on several -> refused (a guest must
    never run twice: the user must stop one). Several define it (a migration that kept the
    source's definition) -> the one where it runs when `prefer_running`, otherwise the request
    is ambiguous (exit 2, naming the hosts). None -> NotFound, naming the hosts that did not
    answer, since the VM may be there."""
    from ..core.errors import NotFound, UsageError

    running = sorted(h for h, active in found.items() if active)
    if len(found) == 1:
        return next(iter(found))
    if len(running) > 1:
        raise VpdError(f"VM {name} runs on {', '.join(running)} at once",
                       hint="stop the copy that should not run (vpd vm destroy NAME --host H)")
    if found and prefer_running and running:
        return running[0]
    if found:
        raise UsageError(f"VM {name} is defined on {', '.join(sorted(found))}", hint="say which one with --host")
    raise NotFound(f"no VM named {name!r} on any host" + (f" that answered ({', '.join(unreachable)} did not)"
                                                           if unreachable else ""),
                   hint="`vpd vm list --all` lists them")


def locate_vm(session, name: str, host_ref: str | None = None, prefer_running: bool = True,
              hosts: list[Host] | None = None) -> LocatedVm:
    """The VM called `name`: on `host_ref` if given, else wherever the inventory (or `hosts`)
    has it, by the rule of `pick_host`. Every host is asked at once."""
    from ..connect.libvirt_conn import explain, is_not_found, lookup

    check_name(name, "VM name")
    if host_ref is not None:
        host = session.host(host_ref)
        conn = session.connection(host)
        dom = lookup(host, lambda: conn.lookupByName(name), f"no VM named {name!r} on {host.name}",
                     hint="`vpd vm list --all` lists them")
        return LocatedVm(host, dom, found_by_search=False)

    candidates = hosts if hosts is not None else session.hosts()

    def probe(host: Host):
        try:
            dom = session.connection(host).lookupByName(name)
            return host, dom, dom.isActive() == 1, None
        except libvirt.libvirtError as exc:
            return host, None, False, None if is_not_found(exc) else explain(host, exc)
        except VpdError as exc:
            return host, None, False, exc

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(candidates)))) as pool:
        answers = list(pool.map(probe, candidates))
    domains = {h.name: (h, d) for h, d, _, _ in answers if d is not None}
    chosen = pick_host(name, {h.name: active for h, d, active, _ in answers if d is not None}, prefer_running,
                       [h.name for h, _, _, err in answers if err is not None])
    host, dom = domains[chosen]
    if len(candidates) > 1:
        session.notice(f"{name} is on {host.name}")
    return LocatedVm(host, dom, found_by_search=True)


def undefine_flags(dom: libvirt.virDomain) -> int:
    """The flags that let libvirt undefine this VM with what it carries: its NVRAM file (a UEFI VM),
    its snapshots' and checkpoints' metadata. Only those it has: a driver that keeps none of them
    (libvirt's test driver) refuses the flags themselves."""
    flags = 0
    if nvram_path(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) is not None:
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    try:
        if dom.snapshotNum(0):
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    except libvirt.libvirtError:
        pass  # a driver without snapshots has none to keep
    try:
        if dom.listAllCheckpoints(0):
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    except libvirt.libvirtError:
        pass  # a driver without checkpoints has none to keep
    return flags
