"""The thin loop around libvirt's migration job: start it, watch its stats,
apply what the policy decides, abort on Ctrl-C, a stall or the timeout."""
from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field

import libvirt

from ..core import events
from . import policy

TICK_S = 0.1


@dataclass
class JobOutcome:
    ok: bool
    error: str | None
    seconds: float
    stats: dict  # libvirt's completed-job stats (downtime, bytes, iterations)
    policy_steps: list[str] = field(default_factory=list)
    aborted_by: str | None = None
    interrupted: bool = False  # by Ctrl-C or SIGTERM: the caller reports, then exits as interrupted


def _tick(stats: dict, elapsed: float, since_progress: float) -> policy.Tick:
    return policy.Tick(
        elapsed_s=elapsed,
        data_remaining=stats.get("data_remaining", 0),
        data_processed=stats.get("data_processed", 0),
        iteration=stats.get("memory_iteration", 0),
        dirty_rate_bps=stats.get("memory_dirty_rate", 0) * stats.get("memory_page_size", 4096),
        throughput_bps=stats.get("memory_bps", 0),
        seconds_since_progress=since_progress,
    )


def progress(stats: dict, elapsed: float) -> tuple[str, float, float | None, dict]:
    """One tick of libvirt's job stats as a progress event: (step text, MiB done, MiB total,
    structured fields) — bytes and bytes/s, for the web console's live plot."""
    remaining = stats.get("data_remaining")
    processed = stats.get("data_processed", 0)
    total = (processed + remaining) if remaining is not None else None
    dirty = stats.get("memory_dirty_rate", 0) * stats.get("memory_page_size", 4096)
    throughput = stats.get("memory_bps", 0)
    iteration = stats.get("memory_iteration", 0)
    data = {"elapsed_s": round(elapsed, 3), "data_remaining": remaining, "data_processed": processed,
            "data_total": total, "dirty_rate_bps": dirty, "throughput_bps": throughput, "iteration": iteration}
    step = f"iteration {iteration}, {throughput / 2**20:.0f} MiB/s, dirty {dirty / 2**20:.0f} MiB/s"
    return step, processed / 2**20, total / 2**20 if total else None, data


def _apply(dom: libvirt.virDomain, action: policy.Action) -> None:
    if action.kind == "set-downtime":
        dom.migrateSetMaxDowntime(action.value, 0)
    elif action.kind == "postcopy":
        dom.migrateStartPostCopy(0)
    elif action.kind == "suspend":
        dom.suspend()
    elif action.kind == "abort":
        dom.abortJob()


def run_job(dom: libvirt.virDomain, dconnuri: str, params: dict, flags: int,
            settings: policy.Settings, operation: str = "migrate",
            cancel: threading.Event | None = None) -> JobOutcome:
    """Run migrateToURI3 in a worker thread and steer it from here. `cancel` set (by a drain whose
    main thread got Ctrl-C or SIGTERM, which only it receives) aborts the job as Ctrl-C would."""
    state = policy.State(downtime_ms=policy.downtime_schedule(settings)[0])
    # The limit does not travel with the guest: set it on the source before each
    # migration. An offline one moves only the definition (and libvirt refuses it there).
    if flags & libvirt.VIR_MIGRATE_LIVE:
        dom.migrateSetMaxDowntime(state.downtime_ms, 0)
    result: dict = {}
    # Not Thread.join(): a Ctrl-C that interrupts it can leave it returning at
    # once afterwards, with the job still running; an Event's wait survives that.
    done = threading.Event()

    def worker() -> None:
        try:
            dom.migrateToURI3(dconnuri, params, flags)
        except libvirt.libvirtError as exc:
            result["error"] = exc.get_error_message()
        finally:
            done.set()

    started = time.monotonic()
    # In this thread's context: the running Operation records the migrateToURI3 call (--explain).
    thread = threading.Thread(target=contextvars.copy_context().run, args=(worker,), name="migration", daemon=True)
    thread.start()
    last_remaining, last_progress = None, started
    aborted_by = None
    interrupted = False
    cancel_sent = False
    try:
        while not done.wait(TICK_S):
            if cancel is not None and cancel.is_set():
                aborted_by, interrupted = "the drain was interrupted", True
                if not cancel_sent:
                    try:
                        dom.abortJob()
                        cancel_sent = True
                    except libvirt.libvirtError:
                        pass  # the job may not have begun yet: try again next tick
                continue
            try:
                stats = dom.jobStats(0)
            except libvirt.libvirtError:
                continue  # the job may just have ended
            if stats.get("type", 0) == libvirt.VIR_DOMAIN_JOB_NONE:
                continue
            now = time.monotonic()
            remaining = stats.get("data_remaining")
            if remaining is not None and (last_remaining is None or remaining != last_remaining):
                last_progress = now
                last_remaining = remaining
            step, done_mib, total_mib, data = progress(stats, now - started)
            events.emit(operation, step, done_mib, total_mib, "MiB", data=data)
            for action in policy.decide(_tick(stats, now - started, now - last_progress), settings, state):
                try:
                    _apply(dom, action)
                except libvirt.libvirtError as exc:
                    state.steps.append(f"{action.kind} refused by libvirt: {exc.get_error_message()}")
                    continue
                policy.apply(action, state)
                events.emit(operation, f"policy: {action.kind}", data={"policy": action.kind, "value": action.value,
                                                                         "reason": action.reason})
                if action.kind == "abort":
                    aborted_by = action.reason
    except KeyboardInterrupt:
        # Ctrl-C: abort the job; the guest keeps running on the source. The outcome
        # is returned, so the failure is cleaned up and reported like any other.
        aborted_by, interrupted = "interrupted by the user", True
        try:
            dom.abortJob()
        except libvirt.libvirtError:
            pass
    done.wait()
    seconds = time.monotonic() - started
    completed: dict = {}
    if "error" not in result:
        try:
            completed = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except libvirt.libvirtError:
            completed = {}
    return JobOutcome(ok="error" not in result, error=result.get("error"), seconds=seconds,
                      stats=completed, policy_steps=state.steps, aborted_by=aborted_by,
                      interrupted=interrupted)
