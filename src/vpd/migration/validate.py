"""Validation after a migration, as the seed's section 4 does by hand: where the
guest runs, what its definition says, and that the guest itself lived through it."""
from __future__ import annotations

import re
import time

import libvirt

from ..core.checks import Check
from ..core.errors import VpdError
from ..vm.guest_channel import (
    GUEST_BOOT_ID_FILE,
    GUEST_DIRTY_STATUS_FILE,
    GuestChannel,
    is_lab_guest,
    parse_dirty_status,
)
from ..xml.domain import Domain

# One request instead of four (boot id, uptime, disk checksum, dirtier status): each request is a
# round trip over the serial line and a shell started in an emulated guest, 0.1-0.3 s on a busy host.
# Shell builtins where they do (`read`), as every process started costs in an emulated guest; dd
# reads the first MiB in 16 reads where busybox's head makes hundreds (same bytes, same digest).
PROBE = (f"read b < {GUEST_BOOT_ID_FILE}; read u i < /proc/uptime; echo boot $b; echo uptime $u; "
         "echo disk $(dd if=/dev/sda bs=65536 count=16 2>/dev/null | sha256sum); "
         f"d=; [ -r {GUEST_DIRTY_STATUS_FILE} ] && read -r d < {GUEST_DIRTY_STATUS_FILE}; echo dirty $d")
# A new console's first bytes are sometimes lost before the guest's reader sees them: ping soon,
# then less and less often (a guest that is merely slow would queue every ping).
READY_PROBE_INTERVAL_S = (0.3, 2.0)


def _has_channel(dom: libvirt.virDomain) -> bool:
    """Lab guests answer on their second serial port; other guests are checked from outside only."""
    return is_lab_guest(dom.XMLDesc(0))


def parse_probe(output: str) -> dict:
    """PROBE's output -> boot id, uptime (s), the first MiB's sha256 (None if unreadable) and the
    dirtier's status (None if the guest runs none). No boot id or uptime: VpdError."""
    fields = dict((line.split(" ", 1) + [""])[:2] for line in output.splitlines() if line.strip())
    boot_id = fields.get("boot", "").strip()
    uptime = fields.get("uptime", "").split()
    if not boot_id or not uptime:
        raise VpdError(f"the guest's probe answered without its boot id or uptime: {output.strip()[:200]!r}")
    digest = fields.get("disk", "").split()
    return {"boot_id": boot_id, "uptime": float(uptime[0]),
            "disk_sha256": digest[0] if digest and re.fullmatch(r"[0-9a-f]{64}", digest[0]) else None,
            "dirty": parse_dirty_status(fields.get("dirty", ""))}


def guest_probe(dom: libvirt.virDomain) -> dict | None:
    """What the guest itself says: boot id and uptime, and through its QEMU guest agent (when it
    has one that answers) its filesystems' use, else through the lab guest's command channel a
    checksum of the first MiB of its disk. None for a guest that has neither."""
    from ..vm.agent import AgentError, agent_channel_state

    if agent_channel_state(dom) == "connected":
        try:
            return _agent_probe(dom)
        except AgentError:
            pass  # a connected port whose agent does not answer: try the lab's channel
    if not _has_channel(dom):
        return None
    from ..vm.console import ConsoleStream

    began = time.monotonic()
    with ConsoleStream(dom, "serial1") as stream:
        channel = GuestChannel(stream.send, stream.recv)
        # The probe only reads: sent at once, it is its own readiness probe (one round trip, not two).
        reply = channel.run_when_ready(PROBE, timeout=15, probe_interval=READY_PROBE_INTERVAL_S[0],
                                       max_interval=READY_PROBE_INTERVAL_S[1])
        if reply.exit_code != 0:
            raise VpdError(f"the guest's probe failed (exit code {reply.exit_code}): {reply.output.strip()[:200]}")
        # How long the guest took to answer (a busy host shows here).
        return parse_probe(reply.output) | {"source": "serial", "answer_s": round(time.monotonic() - began, 3)}


def _agent_probe(dom: libvirt.virDomain) -> dict:
    from ..vm.agent import GuestAgent

    agent = GuestAgent(dom)
    return {"source": "agent", "boot_id": agent.boot_id(), "uptime": agent.uptime_seconds(),
            "filesystems": [f.to_dict() for f in agent.filesystems()], "disk_sha256": None, "dirty": None}


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f} MiB"


def filesystems_check(before: list[dict], after: list[dict]) -> Check:
    """The guest's filesystems after the move: the same mount points, each with its use (the
    seed's `df -h` in the migrated guest, asked of its agent)."""
    was, now = {f["mountpoint"] for f in before}, {f["mountpoint"] for f in after}
    detail = "; ".join(f"{f['mountpoint']} {f['type']} {_mib(f['used_bytes'])} of {_mib(f['total_bytes'])} used"
                       + (f" ({f['use_percent']}%)" if f["use_percent"] is not None else "") for f in after)
    if was != now:
        detail = f"mounted {sorted(now)}, was {sorted(was)}; {detail}"
    return Check("filesystems mounted as before", was == now and bool(now), detail or "no filesystem reported")


def _state(conn: libvirt.virConnect, name: str) -> tuple[bool, bool, bool]:
    """(defined, active, persistent) of a domain by name on one host."""
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return False, False, False
    return True, bool(dom.isActive()), bool(dom.isPersistent())


def completed_stats(conn: libvirt.virConnect, name: str) -> dict:
    try:
        return conn.lookupByName(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}


def after_success(src_conn, dst_conn, domain: Domain, opts, live: bool, before: dict | None,
                  was_persistent: bool, probe_after: dict | None = None) -> list[Check]:
    """`probe_after`, when given, receives the guest's answers after the migration (guest_probe)."""
    name = domain.name
    checks = []
    d_def, d_active, d_persist = _state(dst_conn, name)
    s_def, s_active, _ = _state(src_conn, name)
    checks.append(Check("running on destination" if live else "defined on destination",
                        d_active if live else d_def, f"defined={d_def} active={d_active}"))
    checks.append(Check("not running on source", not s_active, f"active={s_active}"))
    # A persistent guest keeps its source definition unless --undefinesource; a transient one leaves none.
    want_source_defined = was_persistent and not opts.undefine_source
    checks.append(Check("source definition as requested", s_def == want_source_defined,
                        f"defined={s_def}, --undefinesource={opts.undefine_source}"))
    if opts.persistent or not live:
        checks.append(Check("persistent on destination", d_persist, f"persistent={d_persist}"))
    if d_def:
        dst_dom = dst_conn.lookupByName(name)
        info = dst_dom.info()
        want_mem = domain.memory.in_bytes // 1024
        checks.append(Check("vCPUs and memory match", info[3] == domain.vcpu and info[1] == want_mem,
                            f"vcpus {info[3]} (was {domain.vcpu}), "
                            f"memory {info[1] // 1024} MiB (was {want_mem // 1024})"))
        if live and before is not None:
            after = guest_probe(dst_dom)
            if after is None or after.get("source") != before.get("source"):
                checks.append(Check("guest answers as before", False,
                                    f"asked through its {before.get('source')} before, "
                                    f"{'nothing' if after is None else after.get('source')} answers now"))
                return checks
            if probe_after is not None:
                probe_after.update(after)
            through = " (guest agent)" if after["source"] == "agent" else ""
            checks.append(Check("guest did not reboot", after["boot_id"] == before["boot_id"],
                                f"boot id {after['boot_id'][:8]} (was {before['boot_id'][:8]}){through}"))
            checks.append(Check("guest kept running", after["uptime"] > before["uptime"],
                                f"uptime {after['uptime']:.1f} s (was {before['uptime']:.1f} s){through}"))
            if after["source"] == "agent":
                checks.append(filesystems_check(before["filesystems"], after["filesystems"]))
            else:
                checks.append(Check("disk readable and unchanged", after["disk_sha256"] == before["disk_sha256"],
                                    f"first MiB sha256 {str(after['disk_sha256'])[:12]}"))
            if before["dirty"] is not None:
                # The guest checks every page it rewrites: memory lost in transit shows as errors.
                a, b = after["dirty"], before["dirty"]
                checks.append(Check("guest memory intact", a is not None and a.errors == 0
                                    and a.generation > b.generation,
                                    f"dirtier generation {a.generation if a else '?'} (was {b.generation}), "
                                    f"errors {a.errors if a else '?'}"))
    return checks


def after_failure(src_conn, name: str, was_running: bool) -> list[Check]:
    """A failed migration must leave the guest where it was (migrate cleans the
    destination and reports what it found there)."""
    s_def, s_active, _ = _state(src_conn, name)
    return [Check("still on source", s_def and s_active == was_running, f"defined={s_def} active={s_active}")]
