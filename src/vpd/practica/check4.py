"""`vpd practica check 4`: grade, without changing anything, a migration set up by
hand between SRC and DST. Each goal of p4.PRACTICA becomes named checks with the
evidence and the exact fix. The only write is preflight's shared-storage token,
removed at once."""
from __future__ import annotations

import json
from collections.abc import Callable

import libvirt

from ..access import grants
from ..access.remote import AUTHORIZED_KEYS
from ..connect.inventory import Host
from ..connect.ssh import NOT_FOUND, runner_for
from ..core.checks import Check
from ..core.errors import VpdError
from ..hostprep import fqdn, fwzones, nfteval
from ..hostprep.firewall import FILTERED, probe_ports, reachable
from ..hostprep.ports import MIGRATION_PORTS, SSH_PORT, port_range_text
from ..migration.preflight import shared_storage_check
from . import keys
from .p4 import PRACTICA

LIBVIRT_PORT = 16509
# The ports graded: SSH, libvirt, and the migration range's ends.
PORTS = (SSH_PORT, LIBVIRT_PORT, MIGRATION_PORTS[0], MIGRATION_PORTS[1])
WORLD_CLOSED = (LIBVIRT_PORT, MIGRATION_PORTS[0], MIGRATION_PORTS[1])  # SSH may stay open to admins
NEEDED = [(SSH_PORT, SSH_PORT), (LIBVIRT_PORT, LIBVIRT_PORT), MIGRATION_PORTS]
PROBE_TIMEOUT = 1.0
VM_PREFIX = "mvp4"


def _run(host: Host, argv: list[str], check: bool = False):
    return runner_for(host).run(argv, check=check)


def _fail(name: str, exc: Exception) -> Check:
    return Check(name, False, f"could not check: {exc}", "make the host reachable (`vpd host list`) and check again")


def _ports_text(ports: list[int]) -> str:
    return ", ".join(f"{p}/tcp" for p in ports)


# --- fqdn ---------------------------------------------------------------------------

def fqdn_checks(src: Host, dst: Host) -> list[Check]:
    names: dict[str, str] = {}
    return fqdn.resolution_checks(src, [dst], names) + fqdn.resolution_checks(dst, [src], names)


# --- firewall -----------------------------------------------------------------------

def _interface_to(host: Host, address: str) -> str | None:
    route = _run(host, ["ip", "-j", "route", "get", address])
    try:
        return json.loads(route.stdout)[0]["dev"]
    except (ValueError, LookupError):
        return None


def _firewalld_checks(host: Host, peer: Host, peer_addr: str, dev: str | None) -> list[Check]:
    runtime = fwzones.parse_zones(_run(host, ["firewall-cmd", "--list-all-zones"], check=True).stdout)
    permanent = fwzones.parse_zones(_run(host, ["firewall-cmd", "--permanent", "--list-all-zones"],
                                         check=True).stdout)
    now = [fwzones.verdict(runtime, peer_addr, dev, p) for p in PORTS]
    saved = [fwzones.verdict(permanent, peer_addr, dev, p) for p in PORTS]
    zone = now[0].zone or "?"
    closed = [v for v in now if not v.open_to_peer]
    label = f"{host.name} admits {peer.name} (firewalld zone {zone})"
    fix = ("; ".join(fwzones.rich_rule_fix(zone, peer_addr, NEEDED))
           + f"  — or: vpd host prepare {peer.name} {host.name}")
    checks = []
    if closed:
        trap = [v for v in closed if v.elsewhere]
        detail = f"{now[0].why_zone}; closed there: {_ports_text([v.port for v in closed])}"
        if trap:
            detail += (f". ZONE TRAP: {_ports_text([v.port for v in trap])} open in zone "
                       f"{', '.join(sorted({z for v in trap for z in v.elsewhere}))}, which does not apply to "
                       f"{peer.name}'s packets (firewall-cmd without --zone= changes the default zone)")
        checks.append(Check(label, False, detail, fix))
    else:
        checks.append(Check(label, True, f"{now[0].why_zone}; " + "; ".join(f"{v.port}: {v.peer_by}" for v in now)))
    lost = [v.port for v, s in zip(now, saved, strict=True) if v.open_to_peer and not s.open_to_peer]
    unapplied = [v.port for v, s in zip(now, saved, strict=True) if s.open_to_peer and not v.open_to_peer]
    if lost:
        checks.append(Check(f"{host.name} permanent configuration", False,
                            f"{_ports_text(lost)} open now but not in the permanent configuration: "
                            "gone at the next reload or boot", "firewall-cmd --runtime-to-permanent"))
    elif unapplied:
        checks.append(Check(f"{host.name} permanent configuration", False,
                            f"{_ports_text(unapplied)} in the permanent configuration but not applied",
                            "firewall-cmd --reload"))
    else:
        checks.append(Check(f"{host.name} permanent configuration", True, "runtime and permanent agree"))
    world = [v for v in now if v.port in WORLD_CLOSED and v.open_to_world]
    checks.append(_world_check(host, [(v.port, v.world_by) for v in world],
                               f"firewall-cmd --permanent --zone={zone} --remove-port="
                               f"{port_range_text()}/tcp --remove-service=libvirt; firewall-cmd --reload "
                               "(after adding the peer's rich rules)"))
    return checks


def _world_check(host: Host, open_: list[tuple[int, str]], fix: str) -> Check:
    name = f"{host.name} not open to the world"
    if open_:
        return Check(name, False, "open to any source: " + "; ".join(f"{p}/tcp by {by}" for p, by in open_), fix)
    return Check(name, True, f"{_ports_text(list(WORLD_CLOSED))} admitted to peers only")


def _nft_checks(host: Host, peer: Host, peer_addr: str, dev: str | None, text: str) -> list[Check]:
    ruleset = nfteval.Ruleset(text)
    now = {p: ruleset.decide(nfteval.Packet(peer_addr, dev, p)) for p in PORTS}
    world_addr = fwzones.WORLD[4 if ":" not in peer_addr else 6]
    world = {p: ruleset.decide(nfteval.Packet(world_addr, dev, p)) for p in WORLD_CLOSED}
    unknown = sorted({u for a in [*now.values(), *world.values()] for u in a.unknown})
    note = f" (rules not modelled, skipped: {', '.join(unknown)})" if unknown else ""
    closed = [p for p, a in now.items() if not a.accepted]
    label = f"{host.name} admits {peer.name} (nftables, {dev or '?'})"
    fix = (f"vpd host prepare {peer.name} {host.name}  — or by hand, at the top of each input chain that drops: "
           f"nft insert rule inet <table> input ip saddr {peer_addr} tcp dport "
           f"'{{ {SSH_PORT}, {LIBVIRT_PORT}, {port_range_text()} }}' accept")
    checks = [Check(label, not closed,
                    ("closed: " + "; ".join(f"{p}/tcp by {now[p].by}" for p in closed) if closed
                     else "; ".join(f"{p}: {a.by}" for p, a in now.items())) + note, fix)]
    checks.append(_world_check(host, [(p, a.by) for p, a in world.items() if a.accepted],
                               f"delete the rules that admit any source to {LIBVIRT_PORT} or {port_range_text()} "
                               f"(nft -a list ruleset shows their handles) and admit {peer.name} only"))
    return checks


def _probe_check(host: Host, peer: Host) -> Check:
    """The truth the configuration must agree with: TCP connects from PEER."""
    target = host.address or host.hostname or host.name
    try:
        states = probe_ports(peer, target, list(PORTS), PROBE_TIMEOUT)
    except VpdError as exc:
        return _fail(f"reach {peer.name}->{host.name}", exc)
    bad = [p for p, s in states.items() if not reachable(s)]
    detail = ", ".join(f"{p} {s}" for p, s in sorted(states.items()))
    why = " (filtered: dropped on the way)" if any(states[p] == FILTERED for p in bad) else ""
    return Check(f"reach {peer.name}->{host.name}", not bad, detail + why,
                 f"open {_ports_text(bad)} on {host.name} to {peer.name} (see the checks above)")


def firewall_checks(host: Host, peer: Host) -> list[Check]:
    """Does HOST admit PEER to SSH, libvirt and the migration ports, and only PEER?"""
    peer_addr = peer.address
    if not peer_addr:
        return [Check(f"{host.name} admits {peer.name}", False, f"no address for {peer.name} in the inventory",
                      f'add address = "..." to {peer.name}\'s [[hosts]] entry')]
    dev = _interface_to(host, peer_addr)
    state = _run(host, ["firewall-cmd", "--state"])
    if state.ok and state.stdout.strip() == "running":
        checks = _firewalld_checks(host, peer, peer_addr, dev)
    else:
        listing = _run(host, ["nft", "-j", "list", "ruleset"])
        if listing.returncode == NOT_FOUND:
            checks = [_world_check(host, [(p, "no firewall runs") for p in WORLD_CLOSED],
                                   f"start firewalld on {host.name} and admit {peer.name} only: "
                                   f"vpd host prepare {peer.name} {host.name}")]
        elif not listing.ok:
            raise VpdError(f"{host.name}: nft list ruleset failed: {listing.stderr.strip()}")
        else:
            checks = _nft_checks(host, peer, peer_addr, dev, listing.stdout)
    return checks + [_probe_check(host, peer)]


# --- the VM -------------------------------------------------------------------------

def find_vm(conns: dict[str, libvirt.virConnect], name: str | None) -> tuple[str | None, str]:
    """The VM to grade: NAME, or the one domain named mvp4* on the pair."""
    if name:
        return name, f"--vm {name}"
    found = sorted({d.name() for c in conns.values() for d in c.listAllDomains() if d.name().startswith(VM_PREFIX)})
    if len(found) == 1:
        return found[0], f"the only {VM_PREFIX}* domain on the pair"
    return None, (f"several {VM_PREFIX}* domains: {', '.join(found)}" if found
                  else f"no {VM_PREFIX}* domain on either host")


def _domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def disk_paths(xml: str) -> list[str]:
    from lxml import etree

    root = etree.fromstring(xml.encode())
    out = []
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        if disk.get("device", "disk") == "disk" and source is not None:
            path = source.get("file") or source.get("dev")
            if path:
                out.append(path)
    return out


def migrated_checks(src: Host, dst: Host, s_conn, d_conn, name: str) -> list[Check]:
    on_dst, on_src = _domain(d_conn, name), _domain(s_conn, name)
    migrate = f"vpd migrate {name} --to {dst.name} --persistent --undefinesource"
    checks = [Check(f"{name} defined on {dst.name}", on_dst is not None,
                    f"{'defined' if on_dst else 'not defined'} on {dst.name}"
                    + (f"; still on {src.name}" if on_src and not on_dst else ""), migrate)]
    if on_dst is not None:
        checks.append(Check(f"{name} persistent on {dst.name}", bool(on_dst.isPersistent()),
                            "persistent" if on_dst.isPersistent() else "transient: gone when it stops "
                            "(virsh migrate without --persistent)",
                            f"vpd vm dumpxml {name} --host {dst.name} > {name}.xml && "
                            f"vpd vm define {name}.xml --host {dst.name}"))
        checks.append(Check(f"{name} running on {dst.name}", bool(on_dst.isActive()),
                            "running" if on_dst.isActive() else "not running", f"vpd vm start {name}"))
    checks.append(Check(f"{name} not defined on {src.name}", on_src is None,
                        "undefined" if on_src is None else
                        f"still defined on {src.name} ({'running' if on_src.isActive() else 'shut off'})",
                        f"vpd vm undefine {name} --host {src.name} (never --remove-storage: the disk is shared)"
                        if on_dst is not None and on_src is not None and not on_src.isActive() else migrate))
    return checks


def disk_checks(host: Host, paths: list[str]) -> list[Check]:
    if not paths:
        return [Check(f"disk readable on {host.name}", False, "the VM has no disk", None)]
    checks = []
    for path in paths:
        info = _run(host, ["qemu-img", "info", "-U", "--output=json", "--", path])
        head = _run(host, ["dd", f"if={path}", "of=/dev/null", "bs=64k", "count=1", "status=none"])
        fmt = ""
        if info.ok:
            try:
                fmt = json.loads(info.stdout).get("format", "")
            except ValueError:
                fmt = ""
        ok = info.ok and head.ok
        detail = (f"{path}: {fmt or 'unknown format'}, first block read" if ok
                  else f"{path}: {(info.stderr or head.stderr).strip() or 'unreadable'}")
        checks.append(Check(f"disk readable on {host.name}", ok, detail,
                            f"check that {path}'s storage (the shared pool) is mounted on {host.name}"))
    return checks


# --- the key ------------------------------------------------------------------------

def key_checks(src: Host, dst: Host) -> list[Check]:
    name = f"no key of {src.name} left on {dst.name}"
    pubs = _run(src, ["find", "/root/.ssh", "-maxdepth", "1", "-type", "f", "-name", "*.pub",
                      "-exec", "cat", "--", "{}", "+"])
    source_keys = keys.public_keys(pubs.stdout if pubs.ok else "")
    own = fqdn.host_fqdn(src)
    names = sorted({own, fqdn.short(own), src.name})
    if not _run(dst, ["test", "-e", AUTHORIZED_KEYS]).ok:
        return [Check(name, True, f"{dst.name} has no {AUTHORIZED_KEYS}")]
    data = runner_for(dst).run_bytes(["cat", "--", AUTHORIZED_KEYS])
    active = {g.id for g in grants.list_grants() if g.status == grants.ACTIVE}
    left = keys.leftovers(data, source_keys, names, active)
    where = f"{len(source_keys)} public key(s) in {src.name}:/root/.ssh/*.pub, comment root@{'|'.join(names)}"
    if not left:
        return [Check(name, True, f"none in {dst.name}:{AUTHORIZED_KEYS} ({where})")]
    why = {keys.SOURCE_KEY: f"{src.name}'s own public key", keys.SOURCE_COMMENT: f"commented as {src.name}'s root",
           keys.VPD_GRANT: "a vpd grant that is over"}
    detail = "; ".join(f"line {x.line_no}: {x.short} ({why[x.why]}); {keys.seed_sed_outcome(x.blob)}" for x in left)
    return [Check(name, False, detail, " ; ".join(keys.removal_fix(dst.name, x) for x in left))]


# --- the whole pair -----------------------------------------------------------------

def _guarded(name: str, fn: Callable[[], list[Check]]) -> list[Check]:
    try:
        return fn()
    except (VpdError, libvirt.libvirtError, OSError) as exc:
        return [_fail(name, exc)]


def grade_pair(session, src: Host, dst: Host, vm: str | None, lang: str) -> dict:
    goals: dict[str, list[Check]] = {}
    goals["fqdn"] = _guarded("fqdn", lambda: fqdn_checks(src, dst))
    goals["firewall"] = _guarded("firewall", lambda: firewall_checks(dst, src) + firewall_checks(src, dst))
    vm_name, how = None, ""
    try:
        s_conn, d_conn = session.connection(src), session.connection(dst)
        vm_name, how = find_vm({src.name: s_conn, dst.name: d_conn}, vm)
    except (VpdError, libvirt.libvirtError) as exc:
        how = f"libvirt: {exc}"
    if vm_name is None:
        missing = Check("the VM", False, how, "pass --vm NAME (the seed's mvp4_<tag>)")
        for goal in ("shared-storage", "migrated", "disk-readable"):
            goals[goal] = [missing]
    else:
        name = vm_name
        goals["migrated"] = _guarded("migrated", lambda: migrated_checks(src, dst, s_conn, d_conn, name))
        dom = _domain(d_conn, name) or _domain(s_conn, name)
        where = dst if _domain(d_conn, name) is not None else src
        paths = disk_paths(dom.XMLDesc(0)) if dom is not None else []
        if dom is None:
            nowhere = Check(f"{name} on the pair", False, f"{name} is defined on neither host",
                            "pass the right --vm NAME")
            goals["shared-storage"] = goals["disk-readable"] = [nowhere]
        else:
            goals["shared-storage"] = _guarded("shared storage", lambda: [shared_storage_check(src, dst, paths)])
            goals["disk-readable"] = _guarded("disk", lambda: disk_checks(where, paths))
    goals["key-revoked"] = _guarded("key", lambda: key_checks(src, dst))
    out = []
    for g in PRACTICA.goals:
        checks = goals.get(g.id, [])
        out.append({"id": g.id, "title": g.title(lang),
                    "ok": bool(checks) and not any(not c.ok and c.blocking for c in checks),
                    "checks": [c.to_dict() for c in checks]})
    return {"src": src.name, "dst": dst.name, "vm": vm_name, "vm_found_by": how,
            "ok": all(g["ok"] for g in out), "goals": out}
