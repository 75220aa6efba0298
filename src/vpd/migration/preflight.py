"""Preflight: every condition a migration needs, each a named check with its fix.
The seed's failures (a missing /etc/hosts line, a closed port, a disk that is
not really shared) are found here in seconds instead of after a 137 s hang."""
from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Callable
from pathlib import PurePosixPath

import libvirt

from ..connect.inventory import Host
from ..connect.ssh import inner_ssh, runner_for
from ..core.checks import Check
from ..core.errors import UsageError
from ..host.facts import MIN_LIBVIRT, MIN_QEMU, version_text, version_tuple
from ..hostprep.ports import MIGRATION_PORTS, port_range_text
from ..storage.room import PoolRoom
from ..xml.domain import Domain
from ..xml.pool import StoragePool


def _check(name: str, ok: bool, detail: str = "", fix: str | None = None, blocking: bool = True) -> Check:
    return Check(name, ok, detail, None if ok else fix, blocking)


def version_checks(name: str, conn: libvirt.virConnect) -> list[Check]:
    lib, hyp = conn.getLibVersion(), conn.getVersion()
    ok = version_tuple(lib) >= MIN_LIBVIRT and version_tuple(hyp) >= MIN_QEMU
    return [_check(f"versions {name}", ok, f"libvirt {version_text(lib)}, QEMU {version_text(hyp)}",
                   "install libvirt >= 11 and QEMU >= 10 (QEMU 7.2 corrupts guests migrated under TCG); "
                   "scripts/setup.sh does it on Debian 12 from bookworm-backports")]


def clash_check(dst: Host, dst_conn: libvirt.virConnect, name: str, uuid: str) -> Check:
    """The destination may hold this very guest's inactive definition (a guest
    coming back); anything else by that name or UUID is a clash."""
    found = {}
    for lookup, key in ((dst_conn.lookupByName, name), (dst_conn.lookupByUUIDString, uuid)):
        try:
            found[key] = lookup(key)
        except libvirt.libvirtError:
            pass
    problems = []
    for key, dom in found.items():
        if dom.name() != name or dom.UUIDString() != uuid:
            problems.append(f"another domain {dom.name()} ({dom.UUIDString()}) matches {key}")
        elif dom.isActive():
            problems.append(f"{name} is already running there")
    detail = "; ".join(problems) or (f"{dst.name} holds {name}'s inactive definition (it will be replaced)"
                                     if found else f"{dst.name} has neither")
    return _check("no name/UUID clash on destination", not problems, f"{dst.name}: {detail}",
                  f"remove or rename the domain on {dst.name} (vpd vm undefine NAME --host {dst.name})")


def memory_check(dst: Host, dst_conn: libvirt.virConnect, need_kib: int) -> Check:
    free_kib = dst_conn.getFreeMemory() // 1024
    margin = 64 * 1024  # QEMU's own overhead
    return _check("free memory on destination", free_kib >= need_kib + margin,
                  f"{dst.name} has {free_kib // 1024} MiB free, the guest needs {need_kib // 1024} MiB + overhead",
                  "free memory on the destination or pick another host")


def host_arch(conn: libvirt.virConnect) -> str | None:
    from lxml import etree

    return etree.fromstring(conn.getCapabilities().encode()).findtext("host/cpu/arch")


def arch_cpu_check(src_conn: libvirt.virConnect, dst_conn: libvirt.virConnect, domain: Domain, dom_xml: str,
                   arches: tuple[str | None, str | None] | None = None) -> Check:
    """`arches`: the two hosts' (from host_arch), when the caller already knows them (a drain)."""
    src_arch, dst_arch = arches or (host_arch(src_conn), host_arch(dst_conn))
    if src_arch != dst_arch:
        return _check("arch and CPU", False, f"{src_arch} -> {dst_arch}", "migrate between hosts of the same arch")
    from ..xml.edit import DomainEditor

    cpu = DomainEditor.from_xml(dom_xml).cpu_xml  # <cpu> is not modelled: libvirt gets it as written
    if cpu is None or domain.type == "qemu":
        return _check("arch and CPU", True, f"{src_arch}; guest CPU is emulated (TCG) or default: portable")
    result = dst_conn.compareCPU(cpu, 0)
    ok = result in (libvirt.VIR_CPU_COMPARE_IDENTICAL, libvirt.VIR_CPU_COMPARE_SUPERSET)
    return _check("arch and CPU", ok, f"compareCPU={result}",
                  "give the guest a CPU model both hosts have (virsh hypervisor-cpu-baseline)")


def cache_checks(domain: Domain, live: bool) -> list[Check]:
    out = []
    for disk in domain.disks:
        if disk.device != "disk" or not live:
            continue
        cache = disk.driver.cache if disk.driver is not None else None
        ok = cache in ("none", "directsync")
        out.append(_check(f"disk cache {disk.target.dev if disk.target else '?'}", ok, f"cache={cache}",
                          "use cache='none' for disks on shared storage (host page caches would diverge)",
                          blocking=False))
    return out


def prove_shared(src: Host, dst: Host, directory: str) -> str | None:
    """Write a random token in `directory` on the source, read it on the destination: None when
    both see it (the same storage), else what went wrong."""
    src_run, dst_run = runner_for(src), runner_for(dst)
    token = secrets.token_hex(16)
    proof = f"{directory}/.vpd-shared-proof-{token[:8]}"
    written = src_run.run(["python3", "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", proof, token],
                          check=False)
    if not written.ok:
        return f"cannot write in {directory} on {src.name}: {written.stderr.strip()}"
    try:
        seen = dst_run.run(["cat", proof], check=False)
        if not seen.ok or seen.stdout.strip() != token:
            return f"{directory} on {dst.name} is not the same storage as on {src.name}"
    finally:
        src_run.run(["rm", "-f", proof], check=False)
    return None


def shared_storage_check(src: Host, dst: Host, paths: list[str],
                         prove: Callable[[str], str | None] | None = None) -> Check:
    """Prove that each disk's directory is the same storage on both hosts (prove_shared, or
    `prove(directory)` when the caller keeps the answers: a drain asks once per directory)."""
    if not paths:
        return _check("shared storage", True, "the guest has no disks")
    prove = prove or (lambda directory: prove_shared(src, dst, directory))
    problems = [p for d in sorted({str(PurePosixPath(p).parent) for p in paths}) if (p := prove(d))]
    return _check("shared storage (token proof)", not problems,
                  "; ".join(problems) or f"{len(paths)} disk(s) seen by both hosts",
                  "put the disks on storage both hosts mount at the same path (the CONT_VOL_COMP pool), "
                  "or use --copy-storage")


def copy_storage_check(dst: Host, dst_conn: libvirt.virConnect, disks: list[tuple[str, int]]) -> Check:
    """--copy-storage: libvirt makes each disk on the destination at the same path, in the
    active pool whose directory holds it (it fails mid-job when there is none). `disks`:
    (path, capacity) of each file disk on the source."""
    pools: dict[str, libvirt.virStoragePool] = {}
    for pool in dst_conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        model = StoragePool.from_xml(pool.XMLDesc(0))
        if model.target is not None and model.target.path:
            pools[model.target.path.rstrip("/")] = pool
    room = PoolRoom(dst.name)
    problems, fixes = [], []
    for path, capacity in disks:
        directory, file_name = str(PurePosixPath(path).parent), PurePosixPath(path).name
        pool = pools.get(directory)
        if pool is None:
            problems.append(f"{dst.name} has no active pool at {directory} (for {path})")
            fixes.append(f"vpd pool create NAME --host {dst.name} --type dir --path {directory}")
            continue
        if file_name in pool.listVolumes():
            # libvirt would copy over it: it may be another guest's disk.
            problems.append(f"{path} already exists on {dst.name} (pool {pool.name()})")
            fixes.append(f"remove or move {file_name} from pool {pool.name()} on {dst.name} if it is not in use")
            continue
        try:
            room.take(pool, capacity, f"the copy of {path}")
        except UsageError as exc:
            problems.append(exc.message)
            fixes.append(f"free space in pool {pool.name()} on {dst.name}")
    return _check("copy storage: destination pools", not problems,
                  "; ".join(problems) or f"{len(disks)} disk(s) have a pool with room on {dst.name}",
                  "; ".join(dict.fromkeys(fixes)) or None)


def port_check(src: Host, dst: Host, timeout: float = 2.0) -> Check:
    """Answer in about 2 s what `virsh migrate` only finds out after a 137 s hang."""
    from ..hostprep.firewall import probe_ports, reachable

    port = MIGRATION_PORTS[0]
    target = dst.address or dst.hostname
    try:
        ipaddress.ip_address(target or "")
    except ValueError:  # nothing to probe (e.g. a test:// host): a failed check, not a crash
        return _check(f"migration ports {src.name}->{dst.name}", False,
                      f"{dst.name} has no IP address in the inventory ({target or 'none'})",
                      f"give {dst.name} an `address` in the inventory")
    state = probe_ports(src, target, [port], timeout)[port]
    return _check(f"migration ports {src.name}->{dst.name}", reachable(state), f"{target}:{port} {state}",
                  f"open {port_range_text(MIGRATION_PORTS)}/tcp on {dst.name} to {src.name}: "
                  f"vpd host prepare {src.name} {dst.name}")


def resolution_checks(src: Host, dst: Host) -> list[Check]:
    from ..hostprep.fqdn import resolution_checks as checks

    return checks(src, [dst]) + checks(dst, [src])


def ssh_key_check(src: Host, dst: Host, dst_fqdn: str, key_path: str) -> Check:
    """The seed's ssh-copy-id step, verified: the source logs in to the destination by key."""
    probe = runner_for(src).run(inner_ssh(["-i", key_path, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                                           "-o", "IdentitiesOnly=yes", f"root@{dst_fqdn}", "true"]), check=False)
    if not probe.ok and "host key verification failed" in probe.stderr.lower():
        # The hop that failed is src -> dst as root (libvirtd's), not vpd's own connection.
        return _check(f"SSH host key {src.name}->{dst_fqdn}", False,
                      f"root on {src.name} does not trust {dst_fqdn}'s host key: {probe.stderr.strip()}",
                      f"add {dst_fqdn}'s host key to root's known_hosts on {src.name}; after a rename, "
                      f"`vpd host prepare {dst.name} --set-fqdn {dst_fqdn}` adds it on every peer")
    return _check(f"SSH key authentication {src.name}->{dst_fqdn}", probe.ok,
                  "key accepted" if probe.ok else probe.stderr.strip(),
                  f"check sshd on {dst_fqdn} and that {src.name} knows its host key")


def dirty_rate_mib_s(dom: libvirt.virDomain, seconds: int = 1) -> float | None:
    """How fast the guest rewrites its memory (QEMU's page sampling, works under TCG).
    None when the hypervisor cannot tell."""
    conn = dom.connect()
    try:
        dom.startDirtyRateCalc(seconds, 0)
        deadline = time.monotonic() + seconds + 3
        while time.monotonic() < deadline:
            stats = conn.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_DIRTYRATE)[0][1]
            if stats.get("dirtyrate.calc_status") == libvirt.VIR_DOMAIN_DIRTYRATE_MEASURED:
                return float(stats.get("dirtyrate.megabytes_per_second", 0))
            time.sleep(0.1)
    except libvirt.libvirtError:
        pass
    return None
