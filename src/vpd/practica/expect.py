"""`vpd practica check N` for Prácticas 2, 3, 5 and 6: each goal is a list of expectations on
the libvirt (and iSCSI target) state of the hosts, read without changing anything. Names are
the seed's (mvp1, clon_virt_clone, Vol1_p3.img, Cluster, ...), with the VM and pool as given.

The graded result has the shape of Práctica 4's (check4.grade_pair), so front ends show both
the same way."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from ..cluster import pcs
from ..connect.inventory import Host
from ..core.checks import Check
from ..core.errors import VpdError
from ..ops import Session
from ..storage.iscsi_target import list_targets
from . import catalog

Values = dict[str, str]


@dataclass
class Ctx:
    session: Session
    hosts: dict[str, Host]  # "SRC" (and "DST")
    values: Values

    def conn(self, role: str = "SRC") -> libvirt.virConnect:
        return self.session.connection(self.hosts[role])

    def name(self, role: str = "SRC") -> str:
        return self.hosts[role].name


Expect = Callable[[Ctx], list[Check]]


def _domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def _identity(dom: libvirt.virDomain) -> tuple[str, set[str], set[str]]:
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    macs = {m.get("address", "") for m in root.findall("./devices/interface/mac")}
    disks = {s.get("file") or s.get("dev") or s.get("volume") or ""
             for s in root.findall("./devices/disk[@device='disk']/source")}
    return dom.UUIDString(), macs, disks


def domain(key: str, fix: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        name = c.values[key]
        dom = _domain(c.conn(), name)
        if dom is None:
            return [Check(f"{name} defined on {c.name()}", False, "not defined", fix.format(**c.values))]
        return [Check(f"{name} defined on {c.name()}", True, "persistent" if dom.isPersistent() else "transient")]
    return check


def distinct(a_key: str, b_key: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        a, b = _domain(c.conn(), c.values[a_key]), _domain(c.conn(), c.values[b_key])
        name = f"{c.values[b_key]} has its own UUID, MACs and disks"
        if a is None or b is None:
            return [Check(name, False, "one of the two VMs is missing", "make both first")]
        (ua, ma, da), (ub, mb, db) = _identity(a), _identity(b)
        shared = [w for w, same in (("UUID", ua == ub), ("MAC", bool(ma & mb)), ("disk", bool(da & db))) if same]
        return [Check(name, not shared, f"shares {', '.join(shared)} with {c.values[a_key]}" if shared
                      else f"{len(mb)} MAC(s), {len(db)} disk(s), none shared",
                      f"vpd vm clone {c.values[a_key]} {c.values[b_key]}  (virt-clone gives new ones too; a "
                      "copied XML keeps them)" if shared else None)]
    return check


def snapshot(vm_key: str, snap_key: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        vm, snap = c.values[vm_key], c.values[snap_key]
        dom = _domain(c.conn(), vm)
        names = dom.snapshotListNames() if dom is not None else []
        return [Check(f"snapshot {snap} of {vm}", snap in names,
                      f"snapshots: {', '.join(names) or 'none'}", f"vpd snapshot create {vm} {snap}")]
    return check


def _pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool | None:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return None


def volume(pool_key: str, vol_key: str, fmt: str | None = None) -> Expect:
    def check(c: Ctx) -> list[Check]:
        pool_name, vol = c.values[pool_key], c.values[vol_key]
        name = f"volume {vol} in {pool_name}"
        pool = _pool(c.conn(), pool_name)
        if pool is None:
            return [Check(name, False, f"no pool {pool_name}", f"vpd pool list --host {c.name()}")]
        if pool.isActive():
            pool.refresh(0)  # a volume made by hand (qemu-img) shows only after a refresh
        try:
            xml = ET.fromstring(pool.storageVolLookupByName(vol).XMLDesc(0))
        except libvirt.libvirtError:
            return [Check(name, False, "not there",
                          f"vpd vol create {pool_name} {vol} --size 1G --format {fmt or 'qcow2'} --host {c.name()}")]
        found = xml.find("./target/format")
        have = found.get("type") if found is not None else None
        capacity = int(xml.findtext("capacity") or 0)
        ok = fmt is None or have == fmt
        return [Check(name, ok, f"format {have}, {capacity / 2**20:g} MiB",
                      None if ok else f"the seed asks for a {fmt} volume")]
    return check


def disk_from(vm_key: str, pool_key: str, vol_key: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        vm, pool_name, vol = c.values[vm_key], c.values[pool_key], c.values[vol_key]
        dom, pool = _domain(c.conn(), vm), _pool(c.conn(), pool_name)
        name = f"{vm} has {pool_name}/{vol} as a disk (persistent)"
        if dom is None or pool is None:
            return [Check(name, False, f"{'VM ' + vm if dom is None else 'pool ' + pool_name} missing",
                          "make it first")]
        try:
            path = pool.storageVolLookupByName(vol).path()
        except libvirt.libvirtError:
            return [Check(name, False, "no such volume", "make it first")]
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        targets = []
        for disk in root.findall("./devices/disk"):
            source, target = disk.find("source"), disk.find("target")
            if source is not None and (source.get("file") == path or source.get("volume") == vol):
                targets.append(target.get("dev") if target is not None else None)
        return [Check(name, bool(targets), f"as {', '.join(t or '?' for t in targets)}" if targets else
                      "not in its persistent definition",
                      f"vpd vm disk attach {vm} --vol {pool_name}/{vol} --target vdb --config")]
    return check


def network(net_key: str, mode: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        net_name = c.values[net_key]
        try:
            net = c.conn().networkLookupByName(net_name)
        except libvirt.libvirtError:
            return [Check(f"network {net_name}", False, "not defined",
                          f"vpd net create {net_name} --host {c.name()} --mode {mode} --subnet ... --autostart")]
        root = ET.fromstring(net.XMLDesc(0))
        forward = root.find("forward")
        have = forward.get("mode", "nat") if forward is not None else "isolated"
        return [Check(f"network {net_name} active", bool(net.isActive()), "active" if net.isActive() else "inactive",
                      f"virsh net-start {net_name}"),
                Check(f"network {net_name} autostarts", bool(net.autostart()), "autostart" if net.autostart()
                      else "no autostart", f"virsh net-autostart {net_name}"),
                Check(f"network {net_name} is {mode}", have == mode, f"mode {have}",
                      f"the seed asks for {mode}: redefine it")]
    return check


def nic_on(vm_key: str, net_key: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        vm, net_name = c.values[vm_key], c.values[net_key]
        dom = _domain(c.conn(), vm)
        nets = []
        if dom is not None:
            root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            nets = [s.get("network") for s in root.findall("./devices/interface[@type='network']/source")]
        return [Check(f"{vm} has a NIC on {net_name}", net_name in nets,
                      f"NICs on: {', '.join(n or '?' for n in nets) or 'none'}",
                      f"vpd vm iface attach {vm} --network {net_name}")]
    return check


def iscsi_target(iqn_key: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        iqn = c.values[iqn_key]
        [listing] = list_targets([c.hosts["SRC"]])
        found = [t for t in listing["targets"] if t.get("iqn") == iqn]
        detail = "no such target"
        if found:
            detail = (f"{len(found[0].get('luns') or {})} LUN(s), ACL "
                      f"{', '.join(found[0].get('acl') or []) or 'none'}")
        detail = listing["error"] or detail
        return [Check(f"target {iqn} on {c.name()}", bool(found) and bool(found[0].get("luns")), detail,
                      f"vpd iscsi target create --host {c.name()} --iqn {iqn} --vol POOL/VOL --allow {c.name('DST')}")]
    return check


def iscsi_pool(pool_key: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        name = c.values[pool_key]
        pool = _pool(c.conn("DST"), name)
        label = f"iSCSI pool {name} on {c.name('DST')} logged in, with LUNs"
        if pool is None:
            return [Check(label, False, "no such pool", f"vpd pool create {name} --host {c.name('DST')} "
                          f"--type iscsi-direct --portal {c.name()} --target IQN")]
        kind = ET.fromstring(pool.XMLDesc(0)).get("type")
        luns = pool.numOfVolumes() if pool.isActive() else 0
        return [Check(label, kind in ("iscsi", "iscsi-direct") and luns > 0,
                      f"type {kind}, {'active' if pool.isActive() else 'inactive'}, {luns} LUN(s)",
                      f"virsh pool-start {name}")]
    return check


def _cluster(c: Ctx):
    errors = []
    for role in ("SRC", "DST"):
        try:
            return pcs.ask(c.hosts[role], c.values.get("CLUSTER", ""))
        except VpdError as exc:
            errors.append(f"{c.name(role)}: {exc.message}")
    raise VpdError("no member answers crm_mon: " + "; ".join(errors))


def _member(status, host: str):
    return next((m for m in status.members if m.name == host or m.name.split(".")[0] == host), None)


def cluster_up() -> Expect:
    def check(c: Ctx) -> list[Check]:
        status = _cluster(c)
        fix = (f"vpd cluster create {c.values['CLUSTER']} --hosts {c.name()},{c.name('DST')} --fence AGENT "
               f"(or `pcs cluster start --all`)")
        out = [Check("cluster has quorum and a DC", status.quorate and status.dc is not None,
                     f"quorate={status.quorate}, DC {status.dc}", fix)]
        for role in ("SRC", "DST"):
            m = _member(status, c.name(role))
            out.append(Check(f"{c.name(role)} online in the cluster", bool(m and m.online and not m.standby),
                             "not a member" if m is None else f"online={m.online}, standby={m.standby}",
                             f"vpd cluster start {c.name(role)}" if m else fix))
        return out
    return check


def fencing() -> Expect:
    def check(c: Ctx) -> list[Check]:
        devices = [r for r in _cluster(c).resources if r.agent.startswith("stonith:")]
        return [Check("a fence (stonith) device runs", any(r.running_on for r in devices),
                      ", ".join(f"{r.id} ({r.agent}) on {', '.join(r.running_on) or 'nowhere'}" for r in devices)
                      or "no stonith resource",
                      "pcs stonith create ... then pcs property set stonith-enabled=true "
                      "(vpd cluster create --fence AGENT does both)")]
    return check


def ha_resource(vm_key: str) -> Expect:
    def check(c: Ctx) -> list[Check]:
        vm = c.values[vm_key]
        res = next((r for r in _cluster(c).resources if r.id == vm), None)
        ok = res is not None and "VirtualDomain" in res.agent and res.role == "Started" and bool(res.running_on)
        detail = "no such resource" if res is None else f"{res.agent} {res.role} on {', '.join(res.running_on) or '-'}"
        return [Check(f"{vm} is a running VirtualDomain resource", ok, detail,
                      f"vpd ha enable {vm} --cluster {c.values.get('CLUSTER', 'CLUSTER')}")]
    return check


# Práctica -> goal id -> expectations; roles a Práctica grades (one host, or a pair).
EXPECT: dict[int, dict[str, list[Expect]]] = {
    2: {"clone": [domain("VM", "the seed's source VM: vpd vm create {VM} ..."),
                  domain("CLONE", "vpd vm clone {VM} {CLONE}"), distinct("VM", "CLONE")],
        "templates-snapshots": [snapshot("VM", "SNAP")]},
    3: {"volumes": [volume("POOL", "VOL", "raw")], "attach": [disk_from("VM", "POOL", "VOL")]},
    5: {"networks": [network("NET1", "nat"), network("NET2", "isolated")],
        "nics": [nic_on("VM", "NET1"), nic_on("VM", "NET2")]},
    6: {"target": [iscsi_target("IQN")], "initiators": [iscsi_pool("ISCSI_POOL")]},
    7: {"cluster": [cluster_up()], "fencing": [fencing()], "ha-vm": [ha_resource("VM")]},
}
PAIRED = {6, 7}
# The seed's names, what `check` grades by default.
DEFAULTS: dict[int, Values] = {
    2: {"VM": "mvp1", "CLONE": "clon_virt_clone", "SNAP": "t0"},
    3: {"VM": "mvp3", "POOL": "default", "VOL": "Vol1_p3.img"},
    5: {"VM": "mvp5", "NET1": "Cluster", "NET2": "Almacenamiento"},
    6: {"IQN": "iqn.2024-01.es.vpd:p6", "ISCSI_POOL": "iscsi1"},
    7: {"CLUSTER": "clustervpd", "VM": "mvp7"},
}


def grade(session: Session, number: int, src: Host, dst: Host | None, values: Values, lang: str) -> dict:
    """Each goal of Práctica `number` the expectations cover: pass/fail with evidence and fix;
    the others are listed as not graded."""
    practica = catalog.get(number)
    ctx = Ctx(session, {"SRC": src, **({"DST": dst} if dst else {})}, {**DEFAULTS[number], **values})
    out = []
    for goal in practica.goals:
        expects = EXPECT[number].get(goal.id)
        if expects is None:
            continue
        checks: list[Check] = []
        for expect in expects:
            try:
                checks += expect(ctx)
            except (VpdError, libvirt.libvirtError) as exc:
                checks.append(Check(goal.id, False, f"could not check: {exc}",
                                    "make the host reachable (`vpd host list`) and check again"))
        out.append({"id": goal.id, "title": goal.title(lang), "ok": not any(not c.ok and c.blocking for c in checks),
                    "checks": [c.to_dict() for c in checks]})
    return {"src": src.name, "dst": dst.name if dst else "", "vm": ctx.values.get("VM"), "vm_found_by": "",
            "ok": all(g["ok"] for g in out), "goals": out}
