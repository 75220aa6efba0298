"""`vpd ha enable|disable|move`: VMs as Pacemaker VirtualDomain resources.

The decisions are small pure functions over plain data (where a VM is
defined, how much memory each member has free, what the cluster reports), in
the spirit of Proxmox's pve-ha-manager and its environment interface, so they
are tested without a cluster; the procedures below only gather that data, ask,
and act through libvirt and pcs."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

import libvirt

from ..connect.inventory import Host, Inventory
from ..connect.libvirt_conn import Connections
from ..connect.ssh import runner_for
from ..core.errors import NotFound, UsageError, VpdError
from ..core.names import check_name
from ..migration.preflight import shared_storage_check
from ..ops.session import Session
from ..vm.inventory import locate_vm
from ..xml.domain import Domain
from . import pcs, store
from . import status as st

AGENT = "ocf:heartbeat:VirtualDomain"
# Pacemaker resource ids: a letter or '_' first (VM names may start with a digit).
_RESOURCE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")
MEMORY_MARGIN_KIB = 64 * 1024  # QEMU's own overhead beyond the guest's RAM
CONFIG_DIR = ".vpd-ha"  # next to the VM's disks, on the storage every member sees
OP_TIMEOUT_S = 120


# --- pure decisions ---------------------------------------------------------------

def resource_id(vm: str) -> str:
    check_name(vm, "VM name")
    if not _RESOURCE_ID.match(vm):
        raise UsageError(f"{vm!r} cannot name a Pacemaker resource", hint="a VM name starting with a letter")
    return vm


def memory_problems(need_kib: int, free_kib: dict[str, int], home: str) -> list[str]:
    """Every member but its current one must have room for the VM to fail over to."""
    return [f"{h} has {free // 1024} MiB free, the VM needs {need_kib // 1024} MiB + {MEMORY_MARGIN_KIB // 1024} MiB"
            for h, free in sorted(free_kib.items()) if h != home and free < need_kib + MEMORY_MARGIN_KIB]


def config_path(disk_files: list[str], vm: str) -> str:
    if not disk_files:
        raise UsageError(f"{vm} has no disk file on shared storage to keep its definition next to",
                         hint="give it a disk in the shared pool (CONT_VOL_COMP on the lab)")
    return str(PurePosixPath(disk_files[0]).parent / CONFIG_DIR / f"{vm}.xml")


def migration_transport(uri: str) -> str:
    """How Pacemaker's VirtualDomain reaches the peer's libvirt: as vpd does."""
    return "tcp" if uri.startswith("qemu+tcp") else "ssh"


def resource_argv(rid: str, config: str, transport: str, stickiness: int = pcs.STICKINESS) -> list[str]:
    """`pcs resource create` for a VM: live migration allowed; a forced stop when a
    graceful one times out (busybox guests without acpid ignore ACPI for ~85 s);
    --unsafe because libvirt trusts only cluster filesystems as shared, while vpd
    proved the directory shared itself."""
    return ["resource", "create", rid, AGENT, f"config={config}", "hypervisor=qemu:///system",
            f"migration_transport={transport}", "migrate_options=--unsafe", "force_stop=true",
            "meta", "allow-migrate=true", f"resource-stickiness={stickiness}",
            "op", "start", f"timeout={OP_TIMEOUT_S}", "op", "stop", f"timeout={OP_TIMEOUT_S}",
            "op", "migrate_to", f"timeout={OP_TIMEOUT_S}", "op", "migrate_from", f"timeout={OP_TIMEOUT_S}",
            "op", "monitor", "interval=10", "timeout=30"]


def vm_resources(status: st.ClusterStatus) -> list[st.Resource]:
    return [r for r in status.resources if r.agent == AGENT]


def move_target_problem(status: st.ClusterStatus, rid: str, target: str) -> str | None:
    m = status.member(target)
    if m is None:
        return f"{target} is not a member of cluster {status.name}"
    if not m.online or m.standby:
        return f"{target} is {m.state}: it cannot take the VM"
    if status.resource(rid) is None:
        return f"{rid} is not highly available in cluster {status.name}"
    return None


# --- procedures -------------------------------------------------------------------

@dataclass
class HaReport:
    vm: str
    cluster: str
    running_on: list[str]
    config: str | None = None
    checks: list[dict] | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def enable(inv: Inventory, conns: Connections, vm: str, cluster: str, timeout: float = 180.0) -> HaReport:
    started = time.monotonic()
    rid = resource_id(vm)
    rec = store.load(check_name(cluster, "cluster name"))
    members = [inv.get(h) for h in rec.hosts]
    member, s = pcs.online_member(rec, inv)
    if s.resource(rid) is not None:
        raise UsageError(f"{vm} is already highly available in cluster {rec.name}")
    # The same rule as every VM command: its one definition, else where it runs.
    try:
        located = locate_vm(Session(inv, conns), vm, hosts=members)
    except NotFound:
        raise NotFound(f"no member of cluster {rec.name} defines a VM named {vm!r}",
                       hint="`vpd vm list --all` lists them") from None
    home, home_name, dom = located.host, located.host.name, located.domain
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    domain = Domain.from_xml(xml.encode())
    disk_files = [d.source.file for d in domain.disks if d.source is not None and d.source.file]
    if len(disk_files) != len([d for d in domain.disks if d.source is not None and d.source.reference]):
        raise UsageError(f"{vm} has disks that are not files; vpd proves only file disks shared")
    config = config_path(disk_files, vm)
    checks = []
    for other in members:
        if other.name == home_name:
            continue
        proof = shared_storage_check(home, other, disk_files)
        checks.append(proof.to_dict())
        if not proof.ok:
            raise UsageError(f"{vm}'s disks are not on storage every member sees: {proof.detail}", hint=proof.fix)
    need_kib = dom.maxMemory()
    free = {h.name: conns.get(h).getFreeMemory() // 1024 for h in members}
    problems = memory_problems(need_kib, free, home_name)
    checks.append({"name": "memory fits on every member", "ok": not problems, "detail": "; ".join(problems)})
    if problems:
        raise UsageError(f"{vm} would not fit: " + "; ".join(problems))
    # Act: definition onto the shared storage, out of libvirt, into pacemaker.
    run = runner_for(home)
    run.run(["mkdir", "-p", str(PurePosixPath(config).parent)])
    run.run(["tee", config], input=xml)
    dom.undefine()  # a running guest keeps running, now transient: pacemaker finds it where it is
    try:
        pcs.run(member, *resource_argv(rid, config, migration_transport(home.uri)))
        final = pcs.wait_for(rec, inv, lambda x: bool(st.running_on(x, rid)), timeout, f"{vm} running")
    except BaseException:
        try:
            pcs.run(member, "resource", "delete", rid, "--force", check=False)
        finally:
            conns.get(home).defineXML(xml)
            run.run(["rm", "-f", config], check=False)
        raise
    return HaReport(vm, rec.name, st.running_on(final, rid), config, checks, round(time.monotonic() - started, 2))


def _cluster_with(inv: Inventory, rid: str) -> tuple[store.ClusterRecord, Host, st.ClusterStatus]:
    for rec in store.all_records():
        try:
            member, s = pcs.online_member(rec, inv)
        except VpdError:
            continue
        if s.resource(rid) is not None:
            return rec, member, s
    raise NotFound(f"{rid} is not highly available in any cluster", hint="`vpd cluster status`")


def _config_of(member: Host, rid: str) -> str:
    out = pcs.run(member, "resource", "config", rid).stdout
    found = re.search(r"\bconfig=(\S+)", out)
    if not found:
        raise VpdError(f"cannot find {rid}'s config= in `pcs resource config`")
    return found.group(1)


def _release(rec: store.ClusterRecord, inv: Inventory, conns: Connections | None, member: Host, rid: str,
             where: list[str], keep_running: bool) -> str | None:
    """Give the VM back to libvirt: defined from its shared config on the host
    where it runs (or the first member), then out of pacemaker's hands."""
    config = _config_of(member, rid)
    host = inv.get(where[0]) if where else member
    xml = runner_for(host).run(["cat", config]).stdout
    if conns is not None:
        conns.get(host).defineXML(xml)
    else:
        runner_for(host).run(["virsh", "define", config])
    if keep_running:
        # A deleted resource whose history remains is an orphan, and pacemaker stops
        # orphans (unmanaged or not). In maintenance mode nothing is stopped; the
        # refresh then forgets the history before pacemaker manages again.
        pcs.run(member, "property", "set", "maintenance-mode=true")
        try:
            pcs.run(member, "resource", "delete", rid, "--force")
            pcs.run(member, "resource", "refresh", "--force")
            pcs.wait_for(rec, inv, lambda x: x.resource(rid) is None, 60, f"{rid} forgotten")
        finally:
            pcs.run(member, "property", "set", "maintenance-mode=false")
    runner_for(host).run(["rm", "-f", config], check=False)  # libvirt holds the definition again
    return host.name


def disable(inv: Inventory, conns: Connections, vm: str) -> HaReport:
    started = time.monotonic()
    rid = resource_id(vm)
    rec, member, s = _cluster_with(inv, rid)
    where = st.running_on(s, rid)
    host = _release(rec, inv, conns, member, rid, where, keep_running=True)
    final = pcs.query(rec, inv)
    if final.resource(rid) is not None:
        raise VpdError(f"{rid} is still a cluster resource")
    return HaReport(vm, rec.name, [host] if where else [], None, None, round(time.monotonic() - started, 2))


def move(inv: Inventory, vm: str, target: str, timeout: float = 180.0) -> HaReport:
    """Live-migrate through pacemaker (never behind its back): a move constraint,
    wait until the VM runs there, then drop the constraint (stickiness keeps it)."""
    started = time.monotonic()
    rid = resource_id(vm)
    check_name(target, "host name")
    rec, member, s = _cluster_with(inv, rid)
    problem = move_target_problem(s, rid, target)
    if problem:
        raise UsageError(problem)
    if st.settled_on(s, rid, target):
        return HaReport(vm, rec.name, [target], None, None, 0.0)
    pcs.run(member, "resource", "move", rid, target)
    try:
        final = pcs.wait_for(rec, inv, lambda x: st.settled_on(x, rid, target), timeout, f"{vm} running on {target}",
                            interval=0.5)
    finally:
        # pcs 0.11's move leaves a location constraint behind unless cleared.
        pcs.run(member, "resource", "clear", rid, check=False)
    return HaReport(vm, rec.name, st.running_on(final, rid), None, None, round(time.monotonic() - started, 2))


def release_all(rec: store.ClusterRecord, inv: Inventory, member: Host, s: st.ClusterStatus,
                timeout: float) -> list[str]:
    """For `cluster destroy`: every resource disabled (stopped) and, for VMs,
    defined again (stopped) in libvirt on the host where it ran."""
    given_back = []
    vms = {r.id: list(r.running_on) for r in vm_resources(s)}
    for r in s.resources:
        if not r.disabled:
            kind = "stonith" if r.agent.startswith("stonith:") else "resource"
            pcs.run(member, kind, "disable", r.id, check=False)
    pcs.wait_for(rec, inv, lambda x: not any(r.running_on for r in x.resources if not r.agent.startswith("stonith:")),
                timeout, "every resource stopped")
    for rid, where in vms.items():
        given_back.append(f"{rid}@{_release(rec, inv, None, member, rid, where, keep_running=False)}")
    return given_back
