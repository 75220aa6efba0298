"""`vpd migrate`: preflight -> temporary access -> job -> validation -> report.

Safety rules: the guest never runs on two hosts (libvirt's own switchover, and
nothing is started by hand on the destination); a failed job leaves it running
on the source and nothing of it on the destination; access granted for the
migration is revoked whatever happens (vpd.access.temporary_access)."""
from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

import libvirt

from .. import ops
from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections, host_key_problem
from ..core.checks import Check, failed
from ..core.errors import UsageError, VpdError
from ..core.held import timed_phase
from ..vm.inventory import find_domain
from ..xml.domain import Domain
from . import cleanup, policy, preflight, validate
from .run import run_job
from .shared import SharedChecks, once

if TYPE_CHECKING:
    from ..access.grants import Grant


@dataclass
class MigrateOptions:
    live: bool | None = None  # None: live if running, offline if not
    persistent: bool = False
    undefine_source: bool = False
    copy_storage: bool = False
    max_downtime_ms: int = 300
    bandwidth_mib: int | None = None
    auto_converge: bool = False
    postcopy: bool = False
    compressed: bool = False  # libvirt's default method (xbzrle), as `virsh migrate --compressed`
    # zstd: pages compressed over multifd connections. Measured on the lab (docs/benchmarks.md): a lone
    # job at 1 Gbit/s in 0.68x the time with 2.2x fewer bytes but a less even pause; a drain's
    # parallel jobs on 2 cores slower, as compressing competes with the guests for the CPUs.
    compression: Literal["none", "zstd"] = "none"
    timeout_s: float | None = None
    timeout_action: Literal["abort", "postcopy", "suspend"] = "abort"
    stall_s: float = 30.0
    link_mib_s: float | None = None  # None: the hosts' link_mbit, else 1 Gbit/s
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.timeout_action not in ("abort", "postcopy", "suspend"):
            raise UsageError("--timeout-action must be abort, postcopy or suspend")
        if self.timeout_action == "postcopy" and not self.postcopy:
            raise UsageError("--timeout-action postcopy needs --postcopy")
        if not 1 <= self.max_downtime_ms <= 60_000:
            raise UsageError("--max-downtime must be 1-60000 ms")
        if self.bandwidth_mib is not None and self.bandwidth_mib <= 0:
            raise UsageError("--bandwidth must be positive (MiB/s)")
        if self.compression not in ("none", "zstd"):
            raise UsageError("--compression must be none or zstd")
        if self.compression == "zstd" and (self.postcopy or self.compressed):
            # QEMU 10 refuses multifd with post-copy, and xbzrle with multifd.
            raise UsageError("--compression zstd (multifd) cannot be combined with --postcopy or --compressed")


@dataclass
class Report:
    vm: str
    source: str
    destination: str
    mode: str  # live | offline
    preflight: list[Check] = field(default_factory=list)
    validation: list[Check] = field(default_factory=list)
    ok: bool = False
    dry_run: bool = False
    error: str | None = None
    total_seconds: float | None = None
    job_seconds: float | None = None
    downtime_ms: int | None = None
    bytes_sent: int | None = None
    iterations: int | None = None
    policy_steps: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    plan: str | None = None
    job_stats: dict = field(default_factory=dict)
    grant: str | None = None
    interrupted: bool = False  # Ctrl-C or SIGTERM aborted the job
    phase_seconds: dict[str, float] = field(default_factory=dict)  # where its time went, step by step

    def phase(self, name: str) -> AbstractContextManager[None]:
        return timed_phase(self.phase_seconds, name)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preflight"] = [c.to_dict() for c in self.preflight]
        data["validation"] = [c.to_dict() for c in self.validation]
        return data


# From libvirt's completed-job stats, for the report and the benchmarks.
JOB_STATS_KEPT = ("time_elapsed", "time_elapsed_net", "downtime", "downtime_net", "setup_time", "memory_processed",
                  "memory_total", "memory_bps", "memory_iteration", "memory_dirty_rate", "auto_converge_throttle",
                  "disk_processed")


# The link assumed when neither the options nor the inventory state one.
DEFAULT_LINK_MBIT = 1000


def _link_mib_s(src: Host, dst: Host, opts: MigrateOptions) -> float:
    """The link the migration stream crosses: given, else the slower of the two
    hosts' links the inventory states (a lab states its shaping), else 1 Gbit/s."""
    if opts.link_mib_s:
        return opts.link_mib_s
    stated = [h.link_mbit for h in (src, dst) if h.link_mbit]
    mbit = min(stated) if stated else DEFAULT_LINK_MBIT
    return mbit * 1_000_000 / 8 / 2**20


def _link_stated(src: Host, dst: Host, opts: MigrateOptions) -> bool:
    """Whether _link_mib_s knows the link (given or in the inventory) rather than assumes it."""
    return bool(opts.link_mib_s or any(h.link_mbit for h in (src, dst)))


def _flags(opts: MigrateOptions, live: bool, unsafe: bool, auto_converge: bool) -> tuple[int, list[str]]:
    chosen = [("PEER2PEER", True), ("LIVE", live), ("OFFLINE", not live),
              ("PERSIST_DEST", opts.persistent or not live), ("UNDEFINE_SOURCE", opts.undefine_source),
              ("NON_SHARED_DISK", opts.copy_storage and live), ("AUTO_CONVERGE", auto_converge and live),
              ("POSTCOPY", opts.postcopy and live), ("PARALLEL", opts.compression == "zstd" and live),
              ("COMPRESSED", (opts.compressed or opts.compression == "zstd") and live),
              ("UNSAFE", unsafe), ("ABORT_ON_ERROR", live)]
    names = [n for n, on in chosen if on]
    value = 0
    for n in names:
        value |= getattr(libvirt, f"VIR_MIGRATE_{n}")
    return value, names


def migrate(conns: Connections, src: Host, dst: Host, name: str, opts: MigrateOptions, *,
            grant: Grant | None = None, cancel: threading.Event | None = None,
            shared: SharedChecks | None = None) -> Report:
    """`grant`: SSH access from src to dst the caller holds (a drain's, shared by its migrations
    to dst), else one is made and revoked around the job. `cancel`: see run.run_job. `shared`:
    the drain's host-level answers (shared.py), asked once for all its migrations."""
    if src.name == dst.name:
        raise UsageError(f"{name} is already on {src.name}: pick another destination")
    started = time.monotonic()
    src_conn, dst_conn = conns.get(src), conns.get(dst)
    dom = find_domain(src_conn, src, name)
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    domain = Domain.from_xml(xml)
    running = bool(dom.isActive())
    was_persistent = bool(dom.isPersistent())
    live = running if opts.live is None else opts.live
    if live and not running:
        raise UsageError(f"{name} is not running on {src.name}: a live migration needs a running guest",
                         hint="use --offline to move its definition")
    if running and not live:
        # libvirt would define it on the destination and leave it running here: one
        # start there and it would run on two hosts.
        raise UsageError(f"{name} is running on {src.name}: an offline migration moves only a stopped guest",
                         hint="migrate it live, or shut it down first")
    if opts.copy_storage and not live:
        # libvirt copies disks through the running QEMUs (an NBD server on the
        # destination, a block mirror on the source); offline there is no QEMU.
        raise UsageError("--copy-storage needs a live migration: libvirt copies disks only through "
                         "the running guest", hint="start the guest and migrate it live with --copy-storage, "
                         "or put its disks on storage both hosts share")
    report = Report(name, src.name, dst.name, "live" if live else "offline", dry_run=opts.dry_run)
    disk_paths = [p for p in domain.disk_paths() if p.startswith("/")]
    if opts.copy_storage:
        # A usage error, found before anything starts: the job would fail part way.
        room = preflight.copy_storage_check(dst, dst_conn, _disk_capacities(src_conn, src, disk_paths))
        if not room.ok:
            raise UsageError(f"--copy-storage cannot copy {name}'s disks to {dst.name}: {room.detail}",
                             hint=room.fix)

    checks: list[Check] = []
    # Host-level answers (versions, arch, name resolution, ports, shared storage, the SSH key) are
    # asked once per drain and shared by its migrations (shared.py); a lone migration asks each.
    with report.phase("preflight: hosts"):
        for host, conn in ((src, src_conn), (dst, dst_conn)):
            checks += once(shared, ("versions", host.name), lambda h=host, c=conn: preflight.version_checks(h.name, c))
        arches = (once(shared, ("arch", src.name), lambda: preflight.host_arch(src_conn)),
                  once(shared, ("arch", dst.name), lambda: preflight.host_arch(dst_conn)))
        if live:
            checks += once(shared, ("resolution", src.name, dst.name), lambda: preflight.resolution_checks(src, dst))
            checks.append(once(shared, ("port", src.name, dst.name), lambda: preflight.port_check(src, dst)))
    with report.phase("preflight: guest"):
        checks.append(preflight.clash_check(dst, dst_conn, name, dom.UUIDString()))
        defined_on_dst = cleanup.defined(dst_conn, dom.UUIDString())
        checks.append(preflight.arch_cpu_check(src_conn, dst_conn, domain, xml, arches))
        if live:
            checks.append(preflight.memory_check(dst, dst_conn, dom.info()[1]))
            checks += preflight.cache_checks(domain, live)
    link = _link_mib_s(src, dst, opts)
    if live and failed(checks):
        # Refused already: QEMU's 1 s sample would only delay the answer.
        plan, start_downtime = policy.StartPlan(False, reason="not measured: a check above refuses the migration"), 0
    elif live:
        with report.phase("dirty rate"):
            dirty = (shared.dirty_mib_s[name] if shared is not None and name in shared.dirty_mib_s
                     else preflight.dirty_rate_mib_s(dom))
        plan = policy.start_plan(dirty, link, opts.auto_converge)
        checks.append(Check("dirty rate vs link", True, plan.reason, blocking=False))
        start_downtime = policy.start_downtime_ms(dirty, link, domain.memory.in_bytes / 2**20, opts.max_downtime_ms)
    else:
        plan, start_downtime = policy.StartPlan(False), min(policy.LOW_START_MS, opts.max_downtime_ms)
    report.plan = plan.reason
    shared_check = None
    if not opts.copy_storage:
        with report.phase("preflight: shared storage"):
            shared_check = preflight.shared_storage_check(
                src, dst, disk_paths, lambda d: once(shared, ("shared storage", src.name, dst.name, d),
                                                     lambda: preflight.prove_shared(src, dst, d)))
        checks.append(shared_check)
    report.preflight = checks
    blocking = failed(checks)
    # libvirt trusts only cluster filesystems as shared; a directory vpd proved shared
    # is safe too, so only then is the unsafe flag passed.
    unsafe = bool(live and shared_check is not None and shared_check.ok and disk_paths)
    flags, report.flags = _flags(opts, live, unsafe, plan.auto_converge)
    if blocking or opts.dry_run:
        if blocking:
            report.error = "preflight failed: " + "; ".join(f"{c.name}: {c.detail}" for c in blocking)
        report.total_seconds = round(time.monotonic() - started, 3)
        return report

    from ..access import temporary_access

    if cancel is not None and cancel.is_set():
        report.error, report.interrupted = "interrupted before its job began", True
        report.total_seconds = round(time.monotonic() - started, 3)
        return report
    with report.phase("guest probe before"):
        before = validate.guest_probe(dom) if live else None
    dst_fqdn = once(shared, ("fqdn", dst.name), dst_conn.getHostname)
    outcome = None
    try:
        access = nullcontext(grant) if grant is not None else temporary_access(src, dst, ttl_seconds=900)
        with ExitStack() as held:
            with report.phase("temporary access"):
                grant = held.enter_context(access)
                report.grant = grant.id
                key_path = grant.src_key_path
                checks.append(once(shared, ("ssh key", src.name, dst_fqdn, key_path),
                                   lambda: preflight.ssh_key_check(src, dst, dst_fqdn, key_path)))
            if failed(checks[-1:]):
                report.error = "preflight failed: " + checks[-1].detail
                return report
            dconnuri = f"qemu+ssh://root@{dst_fqdn}/system?keyfile={grant.src_key_path}"
            params: dict = {}
            if opts.bandwidth_mib:
                params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = opts.bandwidth_mib
            switchover = policy.switchover_bandwidth_mib_s(link, _link_stated(src, dst, opts)) if live else None
            if switchover:
                params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_AVAIL_SWITCHOVER] = switchover
            if live:
                report.plan += (f"; downtime limit from {start_downtime} ms" +
                                (f", switchover at the link's {switchover} MiB/s" if switchover else ""))
            if live and opts.compression == "zstd":
                params[libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS] = policy.MULTIFD_CHANNELS
                params[libvirt.VIR_MIGRATE_PARAM_COMPRESSION] = "zstd"
                report.plan += f"; zstd over {policy.MULTIFD_CHANNELS} multifd connections"
            if plan.throttle_initial is not None:
                params[libvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL] = plan.throttle_initial
                params[libvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT] = plan.throttle_increment
            settings = policy.Settings(max_downtime_ms=opts.max_downtime_ms,
                                       start_downtime_ms=start_downtime,
                                       timeout_s=opts.timeout_s, timeout_action=opts.timeout_action,
                                       postcopy_allowed=opts.postcopy, stall_s=opts.stall_s)
            if shared is not None:
                with report.phase("waiting for the link"):
                    if not shared.job_slot(cancel):
                        report.error, report.interrupted = "interrupted before its job began", True
                        report.total_seconds = round(time.monotonic() - started, 3)
                        return report
                held.callback(shared.release_job_slot)  # once the job ended, before the validation
            # Journaled before it starts: libvirt drives a peer-to-peer job on if vpd is killed.
            ops.plan("migration-job", name, src.name, dst=dst.name)
            try:
                with report.phase("job"):
                    outcome = run_job(dom, dconnuri, params, flags, settings, operation=f"migrate {name}",
                                      cancel=cancel)
            except BaseException:
                cleanup.clean_destination(conns, dst, dom, defined_on_dst)
                raise
    except VpdError as exc:
        if outcome is None:
            raise
        # The job ran, then the grant could not be revoked (the destination unreachable):
        # the report still says where the guest is, and that the grant is pending.
        report.error = exc.message
    report.policy_steps = outcome.policy_steps
    report.job_seconds = round(outcome.seconds, 3)
    if not outcome.ok:
        report.validation = (validate.after_failure(src_conn, name, running)
                             + [cleanup.clean_destination(conns, dst, dom, defined_on_dst)])
        problems = [c.detail for c in failed(report.validation)]
        # libvirtd on the source opens the SSH hop to the destination: say which hop refused a key.
        hop = host_key_problem(src, outcome.error or "")
        job_error = f"{hop[0]} (fix: {hop[1]})" if hop else outcome.error
        report.error = "; ".join(filter(None, [
            f"migration failed{f' ({outcome.aborted_by})' if outcome.aborted_by else ''}: {job_error}",
            *problems, report.error]))
        report.interrupted = outcome.interrupted
        report.total_seconds = round(time.monotonic() - started, 3)
        return report
    stats = outcome.stats or validate.completed_stats(dst_conn, name)
    report.downtime_ms = stats.get("downtime")
    report.bytes_sent = stats.get("data_processed") or stats.get("memory_processed")
    report.iterations = stats.get("memory_iteration")
    report.job_stats = {k: stats[k] for k in JOB_STATS_KEPT if k in stats}
    after: dict = {}
    with report.phase("validation"):
        report.validation = validate.after_success(src_conn, dst_conn, domain, opts, live, before, was_persistent,
                                                   after)
    for when, probe in (("before", before), ("after", after)):
        if probe and "answer_s" in probe:
            report.phase_seconds[f"guest probe {when}: answer"] = probe["answer_s"]
    report.ok = not failed(report.validation)
    if not report.ok:
        failures = "validation failed: " + "; ".join(c.name for c in failed(report.validation))
        report.error = "; ".join(filter(None, [failures, report.error]))
    report.total_seconds = round(time.monotonic() - started, 3)
    return report


def _disk_capacities(conn: libvirt.virConnect, host: Host, paths: list[str]) -> list[tuple[str, int]]:
    out = []
    for path in paths:
        try:
            out.append((path, conn.storageVolLookupByPath(path).info()[1]))
        except libvirt.libvirtError:
            raise UsageError(f"{path} is not in a storage pool of {host.name}: --copy-storage cannot size its copy",
                             hint="put the disk in a pool (vpd pool ...)") from None
    return out


def raise_for(report: Report) -> None:
    """Fail the command (exit 1, journal 'failed'; 130 when interrupted) after its report was shown."""
    if report.interrupted:
        interrupted = KeyboardInterrupt()
        interrupted.report = report  # type: ignore[attr-defined]  # shown before "interrupted"
        raise interrupted
    if report.error:
        error = VpdError(report.error)
        error.report = report
        raise error
