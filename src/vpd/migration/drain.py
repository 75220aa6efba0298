"""`vpd host drain HOST`: every guest off a host, each to the host placement chooses, each by
`migrate_vm` - the same preflight, policy, validation and report as `vpd migrate` - several at
once.

Rules:
- the plan comes first (`host.gather.plan_drain`, the pure `host.placement.place`); `--dry-run`
  returns it, with how many migrations would run at once, and changes nothing;
- running guests move live, stopped ones (`--include-stopped`) offline; both keep a persistent
  definition on the destination and none on the source, so each VM is defined on exactly one host
  when it moved, and left as it was (running on the source) when it did not. After the last
  migration the drain looks for each VM on its source and destination and reports where it is
  (`on`); a VM found on both, or on neither, fails the drain whatever its migration said;
- one VM's refusal (no host for it, a preflight that fails, a failed job) is reported and the
  others go on; the drain fails (exit 1) when any VM did not move, with the report of each;
- `--parallel N` migration jobs at once on the link (default: `policy.drain_concurrency`, from the
  source's link and the guests' dirty rates, sampled once for all guests at once), each told the
  link share it may count on; up to N more migrations meanwhile run their own checks and guest
  probes in their worker threads, so the link does not wait for them. What is the same for every
  guest of a host pair (versions, name resolution, ports, shared storage, the SSH key) is checked
  once per drain (shared.py). Signals reach only the main thread: it holds one temporary SSH grant per destination
  (shared by that destination's migrations, revoked however the drain ends) and, on Ctrl-C or
  SIGTERM, sets an event on which every worker aborts its job (the guest stays on its source)
  and starts no other; it then waits for all of them before revoking and reporting."""
from __future__ import annotations

import contextvars
import math
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field

import libvirt

from ..connect.inventory import Host
from ..core.errors import VpdError
from ..core.held import timed_phase
from ..host.gather import plan_drain
from ..host.placement import Guest, Placement, Rules
from ..ops import Operation, Session
from ..ops.locks import host_key
from . import policy, preflight
from .migrate import DEFAULT_LINK_MBIT, MigrateOptions, Report
from .operations import migrate_vm
from .shared import SharedChecks

# How long each destination's shared grant lives at most (sshd enforces it where it can, should
# vpd die): one migration's allowance (as `vpd migrate` has) per round of `parallel` migrations.
GRANT_TTL_PER_ROUND_S = 900

# Migrations under way per job the link carries at once: one in its job, one in its checks.
CHECKING_PER_JOB = 2


@dataclass
class VmOutcome:
    vm: str
    destination: str | None
    moved: bool
    stage: str  # moved | placement | refused | error | preflight | migration | validation | interrupted | split
    error: str | None = None
    mode: str | None = None
    downtime_ms: int | None = None
    seconds: float | None = None
    report: dict | None = None
    on: dict[str, str] = field(default_factory=dict)  # host -> running|defined, looked up after the drain
    started_at: float | None = None  # epoch seconds: when its migration began and ended (runs overlap
    ended_at: float | None = None  # with --parallel above 1)


@dataclass
class DrainResult:
    host: str
    dry_run: bool
    plan: dict
    results: list[VmOutcome] = field(default_factory=list)
    seconds: float = 0.0
    parallel: int = 1
    parallel_reason: str = ""
    dirty_mib_s: dict[str, float | None] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)  # where the drain's time went

    def phase(self, name: str) -> AbstractContextManager[None]:
        return timed_phase(self.phase_seconds, name)

    @property
    def moved(self) -> list[str]:
        return [r.vm for r in self.results if r.moved]

    @property
    def not_moved(self) -> list[str]:
        return [r.vm for r in self.results if not r.moved]

    def to_dict(self) -> dict:
        return {"host": self.host, "dry_run": self.dry_run, "plan": self.plan,
                "results": [asdict(r) for r in self.results], "moved": self.moved, "not_moved": self.not_moved,
                "seconds": self.seconds, "parallel": self.parallel, "parallel_reason": self.parallel_reason,
                "dirty_mib_s": self.dirty_mib_s, "phase_seconds": self.phase_seconds}


def _stage(report: Report) -> str:
    if report.interrupted:
        return "interrupted"
    if any(not c.ok and c.blocking for c in report.preflight):
        return "preflight"
    if report.validation and report.job_seconds is not None and not report.ok and \
            "validation failed" in (report.error or ""):
        return "validation"
    return "migration"


def _outcome(vm: str, dst: str, report: Report) -> VmOutcome:
    moved = report.ok and not report.error
    return VmOutcome(vm, dst, moved, "moved" if moved else _stage(report), report.error, report.mode,
                     report.downtime_ms, report.total_seconds, report.to_dict())


def _dirty_rates(session: Session, source: Host, guests: list[Guest]) -> dict[str, float | None]:
    """Each guest's dirty rate (MiB/s), measured at once for all (QEMU samples 1 s); 0 for a
    stopped one, which moves no memory."""
    conn = session.conns.get(source)

    def measure(guest: Guest) -> float | None:
        if not guest.running:
            return 0.0
        try:
            return preflight.dirty_rate_mib_s(conn.lookupByName(guest.name))
        except libvirt.libvirtError:
            return None

    running = [g for g in guests if g.running]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(running)))) as pool:
        rates = dict(zip([g.name for g in guests], pool.map(measure, guests), strict=True))
    return rates


def concurrency(session: Session, source: Host, guests: list[Guest], parallel: int | None,
                link_mib_s: float | None = None) -> tuple[policy.Concurrency, dict[str, float | None]]:
    """`parallel` when given, else policy.drain_concurrency on the measured dirty rates."""
    link = link_mib_s or (source.link_mbit or DEFAULT_LINK_MBIT) * 1_000_000 / 8 / 2**20
    if parallel is not None:
        n = max(1, min(parallel, len(guests) or 1))
        return policy.Concurrency(n, round(link / n, 1), f"{n} at once, as asked (--parallel {parallel})"), {}
    if len(guests) <= 1:
        return policy.drain_concurrency(link, [0.0] * len(guests), 1), {}
    rates = _dirty_rates(session, source, guests)
    cpus = session.call(source, lambda c: c.getInfo()[2])
    return policy.drain_concurrency(link, [rates[g.name] for g in guests], cpus), rates


def _whereabouts(session: Session, hosts: list[str], name: str) -> dict[str, str]:
    """host -> running|defined for each of `hosts` that has a domain `name` (unreadable: error)."""
    found: dict[str, str] = {}
    for host in hosts:
        try:
            dom = session.conns.get(session.host(host)).lookupByName(name)
            found[host] = "running" if dom.isActive() else "defined"
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                found[host] = f"unknown ({exc.get_error_message()})"
        except VpdError as exc:
            found[host] = f"unknown ({exc.message})"
    return found


def _settle(session: Session, source: str, outcome: VmOutcome) -> None:
    """Where the VM is now; a VM on two hosts (or none) is no move, whatever its report said."""
    hosts = [source] + ([outcome.destination] if outcome.destination else [])
    outcome.on = _whereabouts(session, hosts, outcome.vm)
    known = {h: s for h, s in outcome.on.items() if not s.startswith("unknown")}
    if len(outcome.on) == 1 and known:
        if outcome.moved and outcome.destination not in known:
            outcome.moved, outcome.stage = False, "validation"
            outcome.error = f"reported moved but found only on {', '.join(known)}"
        return
    if not outcome.on:
        problem = f"found on none of {', '.join(hosts)}"
    elif len(known) > 1:
        problem = f"found on {' and '.join(f'{h} ({s})' for h, s in known.items())}"
    else:
        return  # a host could not be read: `on` says so, the migration's report stands
    outcome.moved, outcome.stage = False, "split"
    outcome.error = "; ".join(filter(None, [outcome.error, problem]))


def _move(session: Session, source: Host, placement: Placement, guest: Guest, options: dict,
          grants: dict, cancel: threading.Event, shared: SharedChecks) -> VmOutcome:
    """One VM's migration, in a worker thread, timed; never raises."""
    started = time.time()
    outcome = _migrate_one(session, source, placement, guest, options, grants, cancel, shared)
    outcome.started_at, outcome.ended_at = round(started, 3), round(time.time(), 3)
    return outcome


def _migrate_one(session: Session, source: Host, placement: Placement, guest: Guest, options: dict,
                 grants: dict, cancel: threading.Event, shared: SharedChecks) -> VmOutcome:
    vm, dst = placement.vm, placement.host
    assert dst is not None
    if cancel.is_set():
        return VmOutcome(vm, dst, False, "interrupted", "the drain was interrupted before its migration began")
    grant = grants.get(dst)
    if isinstance(grant, str):
        return VmOutcome(vm, dst, False, "refused", f"no temporary SSH access from {source.name} to {dst}: {grant}")
    opts = MigrateOptions(live=guest.running, persistent=True, undefine_source=True, **options)
    try:
        report = migrate_vm(session, vm, dst, opts, source=source.name, grant=grant, cancel=cancel, shared=shared)
        return _outcome(vm, dst, report)
    except KeyboardInterrupt as exc:  # raise_for's way of saying the job was interrupted
        partial = getattr(exc, "report", None)
        return (_outcome(vm, dst, partial) if partial else
                VmOutcome(vm, dst, False, "interrupted", "interrupted"))
    except VpdError as exc:
        partial = getattr(exc, "report", None)
        return _outcome(vm, dst, partial) if partial else VmOutcome(vm, dst, False, "refused", exc.message)
    except Exception as exc:  # noqa: BLE001 - one VM's unexpected failure must not strand the others
        return VmOutcome(vm, dst, False, "error", f"{type(exc).__name__}: {exc}")


def _grant_all(session: Session, stack: ExitStack, source: Host, moves: list[Placement],
               parallel: int) -> dict:
    """destination -> its Grant, or the error text when none could be made (its VMs are refused)."""
    from ..access import temporary_access

    grants: dict = {}
    for dst in sorted({p.host for p in moves if p.host}):
        rounds = math.ceil(sum(1 for p in moves if p.host == dst) / parallel)
        try:
            grants[dst] = stack.enter_context(
                temporary_access(source, session.host(dst), ttl_seconds=GRANT_TTL_PER_ROUND_S * rounds))
        except VpdError as exc:
            grants[dst] = exc.message
    return grants


def _run(session: Session, source: Host, moves: list[Placement], guests: dict[str, Guest], options: dict,
         parallel: int, grants: dict, shared: SharedChecks) -> tuple[dict[str, VmOutcome], BaseException | None]:
    """Every move, `parallel` at once; waits for all of them even after Ctrl-C or SIGTERM (which
    cancel the running jobs and the ones not begun) and returns the interrupt to re-raise."""
    cancel = threading.Event()
    outcomes: dict[str, VmOutcome] = {}
    interrupt: BaseException | None = None
    # `parallel` jobs share the link (shared.job_slot); as many migrations again run their checks
    # and guest probes meanwhile, so the link never waits for a guest's probe or validation.
    with ThreadPoolExecutor(max_workers=min(len(moves), CHECKING_PER_JOB * parallel) or 1,
                            thread_name_prefix="drain") as pool:
        # Each worker runs in a copy of this context: the web API's event scope reaches its progress.
        futures: dict[Future, Placement] = {
            pool.submit(contextvars.copy_context().run, _move, session, source, p, guests[p.vm], options, grants,
                        cancel, shared): p for p in moves}
        pending = set(futures)
        while pending:
            try:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt as exc:  # Terminated (SIGTERM) included
                cancel.set()
                interrupt = interrupt or exc
                continue
            for future in done:
                outcomes[futures[future].vm] = future.result()
    return outcomes, interrupt


def drain(session: Session, host_ref: str, to: list[str] | None = None, parallel: int | None = None,
          include_stopped: bool = False, dry_run: bool = False, rules: Rules | None = None,
          options: dict | None = None) -> DrainResult:
    """Move every guest of `host_ref` (its running ones; stopped ones too with `include_stopped`)
    to the hosts placement picks among `to` (default: every other host of the inventory),
    `parallel` at once (None: chosen from the link and the guests' dirty rates).
    `options`: further MigrateOptions (max_downtime_ms, bandwidth_mib, compression...) for every
    migration."""
    started = time.monotonic()
    source = session.host(host_ref)
    planning = time.monotonic()
    plan, guests = plan_drain(session, source.name, to, include_stopped, rules)
    result = DrainResult(source.name, dry_run, plan.to_dict())
    result.phase_seconds["placement"] = round(time.monotonic() - planning, 3)
    options = dict(options or {})
    moves = plan.moves
    with result.phase("dirty rates"):
        chosen, result.dirty_mib_s = concurrency(session, source, [guests[p.vm] for p in moves], parallel,
                                                 options.get("link_mib_s"))
    result.parallel, result.parallel_reason = chosen.parallel, chosen.reason
    # Each migration's start plan (auto-converge or not) weighs its guest against its share of the link.
    options.setdefault("link_mib_s", chosen.link_share_mib_s)
    if dry_run:
        result.seconds = round(time.monotonic() - started, 3)
        return result
    with Operation(session, "host.drain", target=source.name, locks=[host_key(source.name)],
                   to=to, include_stopped=include_stopped, parallel=chosen.parallel) as op:
        outcomes: dict[str, VmOutcome] = {}
        interrupt: BaseException | None = None
        try:
            # Every connection opened here first: workers then only share them (libvirt's are thread-safe).
            session.conns.get(source)
            for dst in {p.host for p in moves if p.host}:
                try:
                    session.conns.get(session.host(dst))
                except VpdError:
                    pass  # its migrations report it
            if not result.dirty_mib_s and any(guests[p.vm].running for p in moves):
                with result.phase("dirty rates"):
                    result.dirty_mib_s = _dirty_rates(session, source, [guests[p.vm] for p in moves])
            # Host-level checks once for the whole drain; each guest's rate from the one sampling above.
            shared = SharedChecks({vm: rate for vm, rate in result.dirty_mib_s.items() if rate is not None},
                                  jobs_at_once=chosen.parallel)
            with ExitStack() as stack:
                with result.phase("temporary access"):
                    grants = _grant_all(session, stack, source, moves, chosen.parallel) if moves else {}
                with result.phase("migrations"):
                    outcomes, interrupt = _run(session, source, moves, guests, options, chosen.parallel, grants,
                                               shared)
                revoking = time.monotonic()
            result.phase_seconds["revoking access"] = round(time.monotonic() - revoking, 3)
        except KeyboardInterrupt as exc:  # while granting or revoking
            interrupt = exc
        settling = time.monotonic()
        for placement in plan.placements:
            if placement.host is None:
                outcome = VmOutcome(placement.vm, None, False, "placement", placement.reason)
            else:
                outcome = outcomes.get(placement.vm) or VmOutcome(placement.vm, placement.host, False,
                                                                  "interrupted", "interrupted before it began")
            _settle(session, source.name, outcome)
            result.results.append(outcome)
        result.phase_seconds["where each VM is"] = round(time.monotonic() - settling, 3)
        result.seconds = round(time.monotonic() - started, 3)
        op.result = {"moved": result.moved, "not_moved": result.not_moved, "seconds": result.seconds,
                     "parallel": result.parallel}
        if interrupt is not None:
            op.result = result.to_dict()
            interrupt.report = result  # type: ignore[attr-defined]  # the front end shows what moved so far
            raise interrupt
        if result.not_moved:
            error = VpdError(f"{len(result.not_moved)} of {len(result.results)} VM(s) did not move off "
                             f"{source.name}: {', '.join(result.not_moved)}",
                             hint="each VM's line says why and where it is now")
            error.report = result
            raise error
    return result
