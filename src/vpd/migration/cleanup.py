"""After a failed migration: leave the destination as it was.

libvirt does not always do it: a destination daemon killed mid-job leaves a
paused QEMU there until it restarts (docs/lab.md, "Failed migrations"). The rules: a copy on the
destination is ended only while the source still holds the guest (never after
a post-copy switchover, when it may be the only live one), and only a
definition the destination did not have before is removed."""
from __future__ import annotations

import libvirt

from ..connect.inventory import Host
from ..connect.libvirt_conn import Connections
from ..connect.ssh import runner_for
from ..core.checks import Check
from ..core.errors import VpdError


def defined(conn: libvirt.virConnect, uuid: str) -> bool:
    return _lookup(conn, uuid) is not None


DESTINATION_CHECK = "destination as before"

# Run on the destination when its libvirtd is gone: kill the QEMU started for the
# guest (its argv holds "-uuid UUID") and print its PID. Read from /proc, so this
# probe, whose own argv holds the UUID too, never matches itself.
_END_ORPHANS = ("import os, signal, sys\n"
                "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
                "    try:\n"
                "        argv = open(f'/proc/{pid}/cmdline', 'rb').read().decode(errors='replace').split('\\0')\n"
                "    except OSError:\n"
                "        continue\n"
                "    if 'qemu' in argv[0] and any(a == '-uuid' and b == sys.argv[1] for a, b in zip(argv, argv[1:])):\n"
                "        os.kill(int(pid), signal.SIGKILL)\n"
                "        print(pid)\n")


def _source_holds_guest(dom: libvirt.virDomain) -> bool:
    """Whether the source still has the guest's live state: running, or paused short of
    a post-copy switchover (after one, the destination's copy is the live one)."""
    try:
        state, reason = dom.state()
    except libvirt.libvirtError:
        return False
    return state == libvirt.VIR_DOMAIN_RUNNING or (
        state == libvirt.VIR_DOMAIN_PAUSED
        and reason not in (libvirt.VIR_DOMAIN_PAUSED_POSTCOPY, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED))


def _lookup(conn: libvirt.virConnect, uuid: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def _end_orphans(dst: Host, name: str, uuid: str, holds: bool, why: str) -> Check:
    """The destination's libvirtd does not answer (killed, crashed): the paused QEMU it
    started for the incoming guest would stay until that daemon starts again. While
    the source holds the guest, that copy is an unfinished one: end it now, over SSH.
    Restarting the daemon is left to whoever runs it (systemd, an admin)."""
    down = f"libvirtd on {dst.name} does not answer ({why})"
    fix = f"start libvirtd on {dst.name} again"
    if not holds:
        return Check(DESTINATION_CHECK, False, f"{down}; {name} is not running on the source, so its copy "
                     "there, if any, was left alone", fix)
    try:
        pids = runner_for(dst).run(["python3", "-c", _END_ORPHANS, uuid], timeout=30).stdout.split()
    except VpdError as exc:
        return Check(DESTINATION_CHECK, False, f"{down}, and the host not over SSH either ({exc.message}): "
                     f"a paused QEMU of {name} may stay there until its libvirtd starts again", fix)
    ended = (f"killed the paused QEMU (pid {', '.join(pids)}) it had started for {name}" if pids
             else f"no QEMU of {name} runs there")
    return Check(DESTINATION_CHECK, False, f"{down}: {ended}", fix)


def clean_destination(conns: Connections, dst: Host, src_dom: libvirt.virDomain, was_defined: bool) -> Check:
    """After a failed job nothing of the guest may run on the destination, and a
    definition it did not have before must not stay (preflight proved it was not
    running). Its copy there is ended only while the source holds the guest."""
    uuid, name = src_dom.UUIDString(), src_dom.name()
    holds = _source_holds_guest(src_dom)
    try:
        # Opened anew when the failure broke the job's connection (a dead daemon, a cut link).
        conn = conns.get(dst)
        dom = _lookup(conn, uuid)
        if dom is not None and dom.isActive() and holds:
            dom.destroy()
            dom = _lookup(conn, uuid)  # a transient guest is gone with it
        if dom is not None and not dom.isActive() and not was_defined:
            dom.undefine()
        left = _lookup(conn, uuid)
        active = bool(left and left.isActive())
    except libvirt.libvirtError as exc:
        return _end_orphans(dst, name, uuid, holds, exc.get_error_message())
    except VpdError as exc:
        return _end_orphans(dst, name, uuid, holds, exc.message)
    ok = not active and (left is not None) == was_defined
    detail = (f"{name} still runs on {dst.name} and no longer on the source (a post-copy switchover?): "
              "that copy may be the only live one, so it was left" if active
              else f"{dst.name} keeps {name}'s inactive definition, as before" if left is not None
              else f"nothing of {name} on {dst.name}")
    return Check(DESTINATION_CHECK, ok, detail, f"see `vpd vm list --all`; recover {name} by hand")
