"""Where each VM goes: placement as a pure function of facts, in the style of Nova's scheduler
(filters, then weighers). No libvirt here: `host/gather.py` reads the facts, `vpd host drain`
and `vpd migrate --to auto` act on the plan, and the unit tests check the rules directly.

    plan = place(hosts=[Candidate(...), ...], guests=[Guest(...), ...])
    for p in plan.placements: p.vm, p.host (None: refused), p.reason

The rules, for one guest and one candidate host (each *filter* refuses the host with a reason):

1. **not its own host** - a guest is never "placed" on the host it leaves;
2. **reachable** - a host whose facts could not be read takes nothing;
3. **not in maintenance** - vpd places nothing on a host marked with `vpd host maintenance on`;
4. **same architecture** - a guest migrates only between hosts of its source's arch;
5. **CPU model** - a guest that names a host CPU model (`Guest.cpu_model`) goes only to a host of
   that model; a guest with a portable CPU (TCG, default or a named baseline: None) goes anywhere.
   The migration preflight still asks libvirt (compareCPU): this rule only avoids planning moves
   that preflight would refuse;
6. **sees the guest's disks** - every disk's directory is storage the host has (an active pool
   there, `Candidate.storage`). Paths are only a promise: the migration preflight proves the
   storage is the *same* with a token written on the source and read on the destination;
7. **memory** - the host's free memory, less what this plan already put there, covers the guest's
   memory plus `Rules.overhead_mib` (QEMU's own, per guest) and leaves `Rules.reserve_mib`;
8. **vCPU commitment** - vCPUs of the guests running there plus those this plan put there plus
   the guest's stay within `Rules.vcpu_ratio` x the host's CPUs.

Among the hosts that pass, the *weighers* pick, in this order:

a. **anti-affinity** - fewest guests of the guest's anti-affinity group (metadata
   `vpd.anti-affinity=GROUP`) already there or placed there by this plan: a group is spread over
   as many hosts as can take it. With `Rules.strict_anti_affinity`, a host that already has one
   is refused instead (the guest stays where it is rather than share);
b. **most free memory left** after the guest (spreads the load, keeps the biggest hole);
c. **least vCPU commitment** after the guest;
d. the host's name - so the plan is the same for the same facts, whatever their order.

Guests are placed biggest first (memory, then vCPUs, then name: first-fit decreasing packs
best), anti-affinity groups' members before the others of the same size, and the plan lists them
in name order. The same facts always give the same plan."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Candidate:
    """A host that may take guests: what placement needs to know about it."""
    name: str
    memory_free_mib: int
    cpus: int
    vcpus_committed: int = 0  # vCPUs of the guests running there now
    arch: str | None = None
    cpu_model: str | None = None
    maintenance: bool = False
    storage: frozenset[str] = frozenset()  # directories of its active storage pools
    groups: tuple[str, ...] = ()  # anti-affinity groups of the guests running there (one per guest)
    reachable: bool = True
    error: str | None = None


@dataclass(frozen=True)
class Guest:
    """A VM to place."""
    name: str
    source: str  # the host it is on now
    memory_mib: int
    vcpus: int
    arch: str | None = None
    cpu_model: str | None = None  # a host CPU model it needs; None: portable
    disks: tuple[str, ...] = ()  # absolute paths of its disk files
    anti_affinity: str | None = None
    running: bool = True


@dataclass(frozen=True)
class Rules:
    overhead_mib: int = 64  # QEMU's own memory per guest (the migration preflight's margin)
    reserve_mib: int = 0  # memory each host keeps for itself after every guest
    vcpu_ratio: float = 4.0  # vCPUs per host CPU (Nova's cpu_allocation_ratio today)
    strict_anti_affinity: bool = False


@dataclass
class Placement:
    vm: str
    source: str
    host: str | None  # None: refused
    reason: str
    refusals: dict[str, str] = field(default_factory=dict)  # host -> why not

    @property
    def placed(self) -> bool:
        return self.host is not None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Plan:
    placements: list[Placement]

    @property
    def moves(self) -> list[Placement]:
        return [p for p in self.placements if p.placed]

    @property
    def refused(self) -> list[Placement]:
        return [p for p in self.placements if not p.placed]

    def host_of(self, vm: str) -> str | None:
        return next((p.host for p in self.placements if p.vm == vm), None)

    def to_dict(self) -> dict:
        return {"placements": [p.to_dict() for p in self.placements]}


@dataclass
class _Load:
    """What this plan has put on a host so far."""
    memory_mib: int = 0
    vcpus: int = 0
    groups: list[str] = field(default_factory=list)


def disk_directories(paths: tuple[str, ...] | list[str]) -> set[str]:
    return {str(PurePosixPath(p).parent) for p in paths if p.startswith("/")}


def sees_disks(storage: frozenset[str], disks: tuple[str, ...] | list[str]) -> list[str]:
    """The guest's disk directories the host has no storage for (empty: it sees them all).
    A pool's directory covers its subdirectories too."""
    def covered(directory: str) -> bool:
        path = PurePosixPath(directory)
        return any(path == PurePosixPath(s) or PurePosixPath(s) in path.parents for s in storage)

    return sorted(d for d in disk_directories(disks) if not covered(d))


def memory_left(host: Candidate, load: _Load, guest: Guest, rules: Rules) -> int:
    """Free memory on `host` after what the plan put there and `guest` with its overhead."""
    return host.memory_free_mib - load.memory_mib - (guest.memory_mib + rules.overhead_mib)


def vcpu_limit(host: Candidate, rules: Rules) -> int:
    return int(host.cpus * rules.vcpu_ratio)


def refusal(host: Candidate, load: _Load, guest: Guest, rules: Rules) -> str | None:
    """Why `host` cannot take `guest` (rules 1-8 of the module's docstring), or None."""
    if host.name == guest.source:
        return "the guest is on it"
    if not host.reachable:
        return f"unreachable ({host.error})" if host.error else "unreachable"
    if host.maintenance:
        return "in maintenance"
    if guest.arch and host.arch and guest.arch != host.arch:
        return f"arch {host.arch}, the guest needs {guest.arch}"
    if guest.cpu_model and host.cpu_model != guest.cpu_model:
        return f"CPU model {host.cpu_model}, the guest needs {guest.cpu_model}"
    missing = sees_disks(host.storage, guest.disks)
    if missing:
        return f"no storage for {', '.join(missing)}"
    left = memory_left(host, load, guest, rules)
    if left < rules.reserve_mib:
        return (f"{host.memory_free_mib - load.memory_mib} MiB free, the guest needs "
                f"{guest.memory_mib} + {rules.overhead_mib} MiB" + (f" (+{rules.reserve_mib} reserved)"
                                                                     if rules.reserve_mib else ""))
    committed = host.vcpus_committed + load.vcpus + guest.vcpus
    if committed > vcpu_limit(host, rules):
        return (f"{committed} vCPUs would exceed {vcpu_limit(host, rules)} ({host.cpus} CPUs x "
                f"{rules.vcpu_ratio:g})")
    if rules.strict_anti_affinity and guest.anti_affinity and _group_count(host, load, guest):
        return f"already has a guest of anti-affinity group {guest.anti_affinity}"
    return None


def _group_count(host: Candidate, load: _Load, guest: Guest) -> int:
    if not guest.anti_affinity:
        return 0
    return host.groups.count(guest.anti_affinity) + load.groups.count(guest.anti_affinity)


def _order(guest: Guest) -> tuple:
    return (-guest.memory_mib, -guest.vcpus, guest.anti_affinity is None, guest.name)


def place(hosts: list[Candidate], guests: list[Guest], rules: Rules | None = None) -> Plan:
    """A plan: each guest -> the host chosen by the module's rules, or refused with the reason
    (every host's refusal). Pure and deterministic: the same facts give the same plan."""
    rules = rules or Rules()
    by_name = {h.name: h for h in sorted(hosts, key=lambda h: h.name)}
    loads = {name: _Load() for name in by_name}
    done: dict[str, Placement] = {}
    for guest in sorted(guests, key=_order):
        refusals: dict[str, str] = {}
        fits: list[tuple[tuple, str]] = []
        for name, host in by_name.items():
            why = refusal(host, loads[name], guest, rules)
            if why is not None:
                refusals[name] = why
                continue
            load = loads[name]
            weight = (_group_count(host, load, guest),
                      -memory_left(host, load, guest, rules),
                      host.vcpus_committed + load.vcpus + guest.vcpus - vcpu_limit(host, rules),
                      name)
            fits.append((weight, name))
        if not fits:
            reason = "; ".join(f"{h}: {why}" for h, why in refusals.items() if why != "the guest is on it")
            done[guest.name] = Placement(guest.name, guest.source, None,
                                         f"no host can take it ({reason})" if reason else "no other host",
                                         refusals)
            continue
        weight, chosen = min(fits)
        load = loads[chosen]
        load.memory_mib += guest.memory_mib + rules.overhead_mib
        load.vcpus += guest.vcpus
        if guest.anti_affinity:
            load.groups.append(guest.anti_affinity)
        host = by_name[chosen]
        reason = (f"{host.memory_free_mib - load.memory_mib} MiB free after it, "
                  f"{host.vcpus_committed + load.vcpus}/{vcpu_limit(host, rules)} vCPUs")
        if guest.anti_affinity:
            reason += (f"; shares anti-affinity group {guest.anti_affinity} (no host without one could take it)"
                       if weight[0] else f"; first of anti-affinity group {guest.anti_affinity} there")
        done[guest.name] = Placement(guest.name, guest.source, chosen, reason, refusals)
    return Plan([done[name] for name in sorted(done)])
