"""The facts placement needs, read from libvirt (every host at once), and the plans built on
them: `plan_drain` (every guest of one host) and `plan_one` (`vpd migrate VM --to auto`).

Per host: free memory (libvirt's; a driver that reports none, like the test driver, gets its
total less its running guests' memory), CPUs, the vCPUs of its running guests, arch and CPU
model, its active storage pools' directories, the anti-affinity groups of its running guests,
and vpd's maintenance flag. Per guest: memory, vCPUs, arch, disk paths, its anti-affinity group
(`<vpd:anti-affinity group=.../>` in its <metadata>), and whether it runs."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import libvirt
from lxml import etree

from ..connect.inventory import Host
from ..core.errors import UsageError, VpdError
from ..ops import Session
from ..xml.edit import anti_affinity_of
from . import maintenance
from .placement import Candidate, Guest, Plan, Rules, place


def _domain_guest(dom: libvirt.virDomain, source: str, host_cpu_model: str | None) -> Guest:
    """A libvirt domain as placement sees it (its running definition when it runs)."""
    xml = dom.XMLDesc(0)
    root = etree.fromstring(xml.encode())
    _, max_kib, cur_kib, vcpus, _ = dom.info()
    disks = tuple(s for s in root.xpath("devices/disk[@device='disk']/source/@file | "
                                        "devices/disk[@device='disk']/source/@dev") if s.startswith("/"))
    cpu_mode = root.xpath("string(cpu/@mode)")
    # host-passthrough exposes the host's own CPU: only a host of the same model can take it over.
    needs = host_cpu_model if cpu_mode == "host-passthrough" and root.get("type") == "kvm" else None
    return Guest(name=dom.name(), source=source, memory_mib=(cur_kib or max_kib) // 1024, vcpus=vcpus,
                 arch=root.xpath("string(os/type/@arch)") or None,
                 cpu_model=needs, disks=disks, anti_affinity=anti_affinity_of(xml), running=bool(dom.isActive()))


def _pool_dirs(conn: libvirt.virConnect) -> frozenset[str]:
    dirs = set()
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        try:
            path = etree.fromstring(pool.XMLDesc(0).encode()).findtext("target/path")
        except libvirt.libvirtError:
            continue
        if path:
            dirs.add(path.rstrip("/") or "/")
    return frozenset(dirs)


def _read(session: Session, host: Host) -> tuple[Candidate, list[Guest]]:
    def read(conn: libvirt.virConnect) -> tuple[Candidate, list[Guest]]:
        caps = etree.fromstring(conn.getCapabilities().encode())
        _, total_mib, cpus, *_ = conn.getInfo()
        model = caps.findtext("host/cpu/model")
        guests = [_domain_guest(d, host.name, model) for d in conn.listAllDomains()]
        running = [g for g in guests if g.running]
        free_mib = conn.getFreeMemory() // 2**20 or max(0, total_mib - sum(g.memory_mib for g in running))
        return Candidate(name=host.name, memory_free_mib=free_mib, cpus=cpus,
                         vcpus_committed=sum(g.vcpus for g in running), arch=caps.findtext("host/cpu/arch"),
                         cpu_model=model, maintenance=maintenance.is_marked(host.name), storage=_pool_dirs(conn),
                         groups=tuple(sorted(g.anti_affinity for g in running if g.anti_affinity))), guests

    try:
        return session.call(host, read)
    except VpdError as exc:
        return Candidate(name=host.name, memory_free_mib=0, cpus=0, reachable=False, error=exc.message), []
    except libvirt.libvirtError as exc:
        return (Candidate(name=host.name, memory_free_mib=0, cpus=0, reachable=False,
                          error=exc.get_error_message()), [])


def gather(session: Session, hosts: list[Host]) -> dict[str, tuple[Candidate, list[Guest]]]:
    """Host name -> (its facts, its guests), every host read at once (one dead host costs one
    timeout, not one per host)."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return {h.name: found for h, found in zip(hosts, pool.map(lambda h: _read(session, h), hosts), strict=True)}


def _targets(session: Session, source: Host, to: list[str] | None) -> list[Host]:
    """The candidate hosts: the ones named (`--to H1,H2`), else every other host of the inventory."""
    if to:
        named = [session.host(ref) for ref in to]
        if any(h.name == source.name for h in named):
            raise UsageError(f"--to names {source.name}, the host the VMs leave")
        return named
    others = [h for h in session.hosts() if h.name != source.name]
    if not others:
        raise UsageError(f"the inventory has no host but {source.name}: nowhere to move its VMs")
    return others


def plan_drain(session: Session, source_ref: str, to: list[str] | None = None, include_stopped: bool = False,
               rules: Rules | None = None) -> tuple[Plan, dict[str, Guest]]:
    """Where each guest of `source_ref` goes (its running ones; the stopped ones too with
    `include_stopped`; templates stay, they are moulds for that host's clones)."""
    source = session.host(source_ref)
    targets = _targets(session, source, to)
    facts = gather(session, [source, *targets])
    src_facts, src_guests = facts[source.name]
    if not src_facts.reachable:
        raise VpdError(f"cannot read {source.name}: {src_facts.error}")
    templates = _templates(session, source)
    guests = [g for g in src_guests if (g.running or include_stopped) and g.name not in templates]
    plan = place([facts[h.name][0] for h in targets], guests, rules)
    return plan, {g.name: g for g in guests}


def plan_one(session: Session, name: str, source: Host, rules: Rules | None = None) -> Plan:
    """Where `vpd migrate NAME --to auto` sends the VM: the same placement over every other host."""
    targets = _targets(session, source, None)
    facts = gather(session, [source, *targets])
    guest = next((g for g in facts[source.name][1] if g.name == name), None)
    if guest is None:
        raise VpdError(f"cannot read {name} on {source.name}: {facts[source.name][0].error}")
    return place([facts[h.name][0] for h in targets], [guest], rules)


def _templates(session: Session, host: Host) -> set[str]:
    from ..vm.inventory import is_template

    return session.call(host, lambda c: {d.name() for d in c.listAllDomains() if is_template(d)})
