"""Migration policy: small pure functions, each stating one rule.

The loop in run.py feeds them a snapshot of the job every tick and applies
what they return; nothing here talks to libvirt, so every rule is unit-tested
without a hypervisor (in the spirit of Nova's libvirt/migration.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    max_downtime_ms: int = 300  # the most downtime the user accepts
    start_downtime_ms: int = 10  # where the policy starts (an idle guest converges at this)
    downtime_steps: int = 5  # raises from start to max
    step_every_iterations: int = 2  # RAM passes between raises
    timeout_s: float | None = None
    timeout_action: str = "abort"  # abort | postcopy | suspend
    postcopy_allowed: bool = False
    stall_s: float = 30.0  # no progress for this long: abort (libvirt never times out itself)


@dataclass(frozen=True)
class Tick:
    """What the job looks like now (from virDomainGetJobStats)."""
    elapsed_s: float
    data_remaining: int
    data_processed: int
    iteration: int
    dirty_rate_bps: float  # bytes/s the guest dirties
    throughput_bps: float  # bytes/s the link carries
    seconds_since_progress: float


@dataclass
class State:
    """What the policy already did during this migration."""
    downtime_ms: int
    raises: int = 0
    postcopy: bool = False
    suspended: bool = False
    aborted: bool = False
    steps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Action:
    kind: str  # set-downtime | postcopy | suspend | abort
    value: int | None = None
    reason: str = ""


def downtime_schedule(settings: Settings) -> list[int]:
    """Downtime limits to try, low to high: start low (a short pause if the guest
    allows it), rise geometrically to the user's maximum."""
    start = min(settings.start_downtime_ms, settings.max_downtime_ms)
    if settings.downtime_steps <= 1 or start >= settings.max_downtime_ms:
        return [settings.max_downtime_ms]
    ratio = (settings.max_downtime_ms / start) ** (1 / (settings.downtime_steps - 1))
    values = [round(start * ratio**i) for i in range(settings.downtime_steps)]
    values[-1] = settings.max_downtime_ms
    return sorted(set(values))


def next_downtime(tick: Tick, settings: Settings, state: State) -> Action | None:
    """Raise the downtime limit one step every `step_every_iterations` RAM passes
    that did not converge, until the user's maximum."""
    schedule = downtime_schedule(settings)
    step = state.raises + 1
    if step >= len(schedule) or tick.iteration < step * max(1, settings.step_every_iterations):
        return None
    if schedule[step] <= state.downtime_ms:  # never lower what is already allowed
        return None
    return Action("set-downtime", schedule[step], f"iteration {tick.iteration} did not converge")


def outpaced(tick: Tick) -> bool:
    """The guest dirties memory faster than the link carries it: pre-copy cannot converge."""
    return tick.iteration >= 2 and tick.throughput_bps > 0 and tick.dirty_rate_bps > tick.throughput_bps


def should_postcopy(tick: Tick, settings: Settings, state: State) -> bool:
    """Switch to post-copy when allowed, once pre-copy is outpaced at the highest downtime."""
    return (settings.postcopy_allowed and not state.postcopy and outpaced(tick)
            and state.downtime_ms >= settings.max_downtime_ms)


def timed_out(tick: Tick, settings: Settings) -> bool:
    return settings.timeout_s is not None and tick.elapsed_s >= settings.timeout_s


def stalled(tick: Tick, settings: Settings) -> bool:
    """No byte moved for stall_s: a cut link or a dead peer. libvirt would wait forever."""
    return tick.seconds_since_progress >= settings.stall_s


def decide(tick: Tick, settings: Settings, state: State) -> list[Action]:
    """All actions for this tick, most drastic first."""
    if state.aborted:
        return []  # libvirt is ending the job: one abort is enough
    if stalled(tick, settings):
        return [Action("abort", reason=f"no progress for {tick.seconds_since_progress:.0f} s")]
    if timed_out(tick, settings) and not (state.postcopy or state.suspended):
        action = settings.timeout_action
        if action == "postcopy" and not settings.postcopy_allowed:
            action = "abort"
        return [Action(action, reason=f"timeout {settings.timeout_s:g} s reached")]
    if should_postcopy(tick, settings, state):
        return [Action("postcopy", reason="dirty rate exceeds the link at the highest downtime")]
    raise_action = next_downtime(tick, settings, state)
    return [raise_action] if raise_action else []


def apply(action: Action, state: State) -> None:
    """Record an applied action in the state (run.py calls it after libvirt accepted it)."""
    if action.kind == "set-downtime":
        state.downtime_ms = action.value
        state.raises += 1
    elif action.kind == "postcopy":
        state.postcopy = True
    elif action.kind == "suspend":
        state.suspended = True
    elif action.kind == "abort":
        state.aborted = True
    state.steps.append(f"{action.kind}{'=' + str(action.value) if action.value is not None else ''}: {action.reason}")


# The pause vpd aims for (issue 18: median <= 20 ms). A downtime limit counts only the RAM QEMU
# expects to send while paused; the rest of the pause (stopping the vCPUs, device state, the
# destination's resume) is not in it, so a limit below this buys RAM passes, not a shorter pause.
PAUSE_GOAL_MS = 20
# Where the limit starts for a guest that dirties too much to switch over within the goal.
LOW_START_MS = 10


def start_downtime_ms(dirty_mib_s: float | None, link_mib_s: float, memory_mib: float, max_ms: int) -> int:
    """The first downtime limit. After the first pass (the guest's RAM at the link's rate) what is
    left is what the guest dirtied meanwhile: dirty x SAMPLING_MARGIN x memory / link, which takes
    that / link to send. If it fits in PAUSE_GOAL_MS, start at the goal: QEMU switches over after
    the second pass, as virsh's 300 ms default does, with at most the goal's worth of RAM in the
    pause (a lower start only adds passes, each a QEMU rate-limit window of about 100 ms). A busier
    guest, or an unknown rate, starts at LOW_START_MS and the policy raises it (next_downtime).
    Never above the user's maximum."""
    if dirty_mib_s is None or link_mib_s <= 0:
        return min(LOW_START_MS, max_ms)
    left_ms = 1000 * dirty_mib_s * SAMPLING_MARGIN * (memory_mib / link_mib_s) / link_mib_s
    return min(PAUSE_GOAL_MS if left_ms <= PAUSE_GOAL_MS else LOW_START_MS, max_ms)


def switchover_bandwidth_mib_s(link_mib_s: float | None, stated: bool) -> int | None:
    """What QEMU may assume the link carries while paused (avail-switchover-bandwidth). QEMU otherwise
    estimates it from what it sent, which an emulated guest's migration thread (busy scanning
    zero pages and syncing the dirty bitmap) keeps at half the link or less: it then expects a
    longer pause than it would take, and passes again. Only a link the inventory or the user
    states is passed on; an assumed one (the 1 Gbit/s default) is not."""
    if not stated or not link_mib_s or link_mib_s <= 0:
        return None
    return max(1, math.floor(link_mib_s))


@dataclass(frozen=True)
class StartPlan:
    auto_converge: bool
    throttle_initial: int | None = None  # % of vCPU time taken away at the first throttle
    throttle_increment: int | None = None
    reason: str = ""


def start_plan(dirty_mib_s: float | None, link_mib_s: float, requested: bool) -> StartPlan:
    """Pre-copy converges only if the link carries the guest's writes with room to
    spare. When the guest dirties more than half the link (auto-converge cannot be
    switched on once a job runs), start with auto-converge, its first throttle
    already where the link can follow: dirty x SAMPLING_MARGIN x (1 - t) <= link / 2."""
    if dirty_mib_s is None or link_mib_s <= 0:
        return StartPlan(requested, reason="asked for" if requested else "dirty rate unknown")
    if dirty_mib_s <= link_mib_s / 2:
        reason = f"guest dirties {dirty_mib_s:.0f} MiB/s, link {link_mib_s:.0f} MiB/s: pre-copy converges"
        return StartPlan(requested, reason=reason + (" (auto-converge as asked)" if requested else ""))
    needed = 1 - link_mib_s / (2 * SAMPLING_MARGIN * dirty_mib_s)
    initial = min(99, max(20, math.ceil(needed * 10) * 10))  # rounded up to 10 %
    return StartPlan(True, initial, 10, f"guest dirties {dirty_mib_s:.0f} MiB/s, link {link_mib_s:.0f} MiB/s: "
                                        f"auto-converge from {initial} %")


# Page sampling counts distinct pages per second, so a writer that sweeps the same
# region several times a second reads low (docs/lab.md, "Dirty-page rate under TCG"): plan for twice the reading.
SAMPLING_MARGIN = 2


# Migrations at once, whatever the link: each stream is a QEMU thread on the source and a new
# QEMU starting on its destination, so beyond two per source CPU they only queue for the CPU.
STREAMS_PER_CPU = 2
MAX_PARALLEL = 8


@dataclass(frozen=True)
class Concurrency:
    parallel: int
    link_share_mib_s: float  # what each stream may count on
    reason: str


def drain_concurrency(link_mib_s: float, dirty_mib_s: list[float | None], source_cpus: int,
                      cap: int = MAX_PARALLEL) -> Concurrency:
    """How many of a drain's migrations run at once. They share the source's link, and one whose
    share is under twice its guest's dirty rate stops converging (start_plan's rule), so the
    guest that dirties most decides: n x 2 x max(dirty) <= link. Then no more streams than
    guests to move (`dirty_mib_s` has one rate per guest; 0 for a stopped one) nor than
    STREAMS_PER_CPU per source CPU, nor `cap`. An unknown rate (None) counts as a guest that needs
    the whole link: one at a time."""
    moves = len(dirty_mib_s)
    if moves <= 1:
        return Concurrency(1, link_mib_s, "one VM to move" if moves else "nothing to move")
    if any(rate is None for rate in dirty_mib_s):
        return Concurrency(1, link_mib_s, "a guest's dirty rate is unknown: one migration at a time")
    worst = max(rate or 0.0 for rate in dirty_mib_s)
    # Idle guests (or near-zero rates, whose ratios are huge) leave the link no limit to set.
    by_link = math.floor(link_mib_s / (2 * worst)) if worst > 0 and link_mib_s / (2 * worst) < 10_000 else 10_000
    cpu_cap = max(1, STREAMS_PER_CPU * max(1, source_cpus))
    n = max(1, min(by_link, moves, cpu_cap, cap))
    limits = {"VMs to move": moves, f"{STREAMS_PER_CPU} per source CPU": cpu_cap, "cap": cap, "link": by_link}
    bound = min(limits, key=lambda k: limits[k])  # on a tie, the first named
    carries = (f"the link carries {by_link} such streams at twice their rate" if by_link < 10_000
               else "no limit from the link")
    reason = (f"{n} at once: link {link_mib_s:.0f} MiB/s, most dirtying guest {worst:.1f} MiB/s "
              f"({carries}); bound by {bound}")
    return Concurrency(n, round(link_mib_s / n, 1), reason)


# Connections of a multifd job (libvirt's default), each a QEMU thread compressing its pages.
MULTIFD_CHANNELS = 2
