"""`vpd host drain HOST`: every guest off a host, each to the host placement chooses, each by
`migrate_vm` - the same preflight, temporary access, policy, validation and report as
`vpd migrate`.

Rules:
- the plan comes first (`host.gather.plan_drain`, the pure `host.placement.place`); `--dry-run`
  returns it and changes nothing;
- running guests move live, stopped ones (`--include-stopped`) offline; both keep a persistent
  definition on the destination and none on the source, so each VM is defined on exactly one host
  when it moved, and left as it was (running on the source) when it did not;
- one VM's refusal (no host for it, a preflight that fails, a failed job) is reported and the
  others go on; the drain fails (exit 1) when any VM did not move, with the report of each;
- one migration at a time: `temporary_access` revokes its grant from the main thread's signal
  handling (Ctrl-C, SIGTERM), which worker threads do not have. `--parallel` above 1 is refused
  until migrations run in processes of their own."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from ..core.errors import UsageError, VpdError
from ..host.gather import plan_drain
from ..host.placement import Rules
from ..ops import Operation, Session
from ..ops.locks import host_key
from .migrate import MigrateOptions, Report
from .operations import migrate_vm


@dataclass
class VmOutcome:
    vm: str
    destination: str | None
    moved: bool
    stage: str  # moved | placement | refused | error | preflight | migration | validation | interrupted
    error: str | None = None
    mode: str | None = None
    downtime_ms: int | None = None
    seconds: float | None = None
    report: dict | None = None


@dataclass
class DrainResult:
    host: str
    dry_run: bool
    plan: dict
    results: list[VmOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def moved(self) -> list[str]:
        return [r.vm for r in self.results if r.moved]

    @property
    def not_moved(self) -> list[str]:
        return [r.vm for r in self.results if not r.moved]

    def to_dict(self) -> dict:
        return {"host": self.host, "dry_run": self.dry_run, "plan": self.plan,
                "results": [asdict(r) for r in self.results], "moved": self.moved, "not_moved": self.not_moved,
                "seconds": self.seconds}


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


def drain(session: Session, host_ref: str, to: list[str] | None = None, parallel: int = 1,
          include_stopped: bool = False, dry_run: bool = False, rules: Rules | None = None,
          options: dict | None = None) -> DrainResult:
    """Move every guest of `host_ref` (its running ones; stopped ones too with `include_stopped`)
    to the hosts placement picks among `to` (default: every other host of the inventory).
    `options`: further MigrateOptions (max_downtime_ms, bandwidth_mib...) for every migration."""
    if parallel != 1:
        raise UsageError("--parallel above 1 is not supported yet: migrations run one at a time",
                         hint="a temporary SSH grant is revoked by the main thread's signal handling; "
                              "run several `vpd migrate` processes to move VMs at once")
    started = time.monotonic()
    source = session.host(host_ref)
    plan, guests = plan_drain(session, source.name, to, include_stopped, rules)
    result = DrainResult(source.name, dry_run, plan.to_dict())
    if dry_run:
        result.seconds = round(time.monotonic() - started, 3)
        return result
    with Operation(session, "host.drain", target=source.name, locks=[host_key(source.name)],
                   to=to, include_stopped=include_stopped) as op:
        try:
            for placement in plan.placements:
                if placement.host is None:
                    result.results.append(VmOutcome(placement.vm, None, False, "placement", placement.reason))
                    continue
                guest = guests[placement.vm]
                opts = MigrateOptions(live=guest.running, persistent=True, undefine_source=True, **(options or {}))
                try:
                    report = migrate_vm(session, placement.vm, placement.host, opts, source=source.name)
                    result.results.append(_outcome(placement.vm, placement.host, report))
                except KeyboardInterrupt as exc:
                    partial = getattr(exc, "report", None)
                    result.results.append(_outcome(placement.vm, placement.host, partial) if partial else
                                          VmOutcome(placement.vm, placement.host, False, "interrupted", "interrupted"))
                    raise
                except VpdError as exc:
                    partial = getattr(exc, "report", None)
                    result.results.append(_outcome(placement.vm, placement.host, partial) if partial else
                                          VmOutcome(placement.vm, placement.host, False, "refused", exc.message))
                except Exception as exc:  # noqa: BLE001 - one VM's unexpected failure must not strand the others
                    result.results.append(VmOutcome(placement.vm, placement.host, False, "error",
                                                    f"{type(exc).__name__}: {exc}"))
        except KeyboardInterrupt as exc:
            result.seconds = round(time.monotonic() - started, 3)
            op.result = result.to_dict()
            exc.report = result  # type: ignore[attr-defined]  # the front end shows what moved so far
            raise
        result.seconds = round(time.monotonic() - started, 3)
        op.result = {"moved": result.moved, "not_moved": result.not_moved, "seconds": result.seconds}
        if result.not_moved:
            error = VpdError(f"{len(result.not_moved)} of {len(result.results)} VM(s) did not move off "
                             f"{source.name}: {', '.join(result.not_moved)}",
                             hint="each VM's line says why; the ones that did not move run where they were")
            error.report = result
            raise error
    return result
