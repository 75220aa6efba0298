"""Settling what dead vpd operations left behind: `vpd recover`, and the pass every Operation
runs first.

A vpd process that is killed (SIGKILL, a crash, power lost) leaves its journal row 'running',
with the objects it planned to make (journaled before each was made). For each row whose
process is gone, every planned object is looked at on its host, and a small pure rule per
kind decides what to do with it:

- keep it: the operation had reached its commit point for it (the clone's or restore's domain
  is defined and uses the volume; the backup's manifest is written; libvirt completed the
  snapshot);
- remove it: an orphan volume (or a UEFI clone's NVRAM copy) no domain of its host uses, a backup
  folder without manifest, the checkpoint of a backup that never got its manifest;
- abort it: a libvirt job (backup, outgoing migration) still running without vpd;
- revoke it: a temporary-access grant still active;
- thaw it: a guest whose filesystems an operation froze through the agent (a quiesced backup or
  snapshot) and which its agent says are still frozen;
- or note that it is already gone.

Jobs are settled first (a running backup job still writes its folder), then the other objects
newest first, as undo would. The row is then marked 'recovered', its notes saying what was
done; recovery itself is journaled as a 'recover' operation. A volume libvirt is still writing
(its copy goes on after the client died) cannot be deleted until the copy ends: recovery waits
for it up to a deadline, else the row stays for the next run ("still being written").
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any

import libvirt

from ..connect.hostfiles import HostFiles
from ..connect.inventory import Host
from ..core import events, journal
from ..core.errors import HostUnreachable, VpdError
from ..xml.edit import disk_files, nvram_path
from .locks import Busy, LockSet, vm_key
from .session import Session

KEEP, REMOVE, ABORT, REVOKE, GONE, LEAVE, THAW = "keep", "remove", "abort", "revoke", "gone", "leave", "thaw"

# How long recovery waits for libvirt to finish writing a volume it must delete: `vpd recover`,
# and the pass a command runs first (which the user is waiting on).
RECOVER_WAIT_S = 300.0
PASS_WAIT_S = 60.0
JOB_KINDS = ("backup-job", "migration-job")
# Kinds that are not objects on one libvirt host (a grant spans two hosts over SSH).
HOST_FREE_KINDS = ("grant",)
MANIFEST = "manifest.json"  # backup.manifest.MANIFEST; a backup's plan may name its own


class StillBusy(VpdError):
    """libvirt is still writing a volume recovery must delete."""


@dataclass(frozen=True)
class Decision:
    action: str  # keep | remove | abort | revoke | gone | leave | thaw
    reason: str


# --- the rules: pure, one per kind ---------------------------------------------------------

def _decide_owned(exists: bool, users: list[str], missing: str, role: str) -> Decision:
    """A file an operation made for a domain: kept when a domain on its host uses it, else an orphan."""
    if not exists:
        return Decision(GONE, missing)
    if users:
        return Decision(KEEP, f"the {role} of {', '.join(users)}: the operation completed it")
    return Decision(REMOVE, "no domain on its host uses it: an orphan")


def decide_volume(exists: bool, users: list[str]) -> Decision:
    return _decide_owned(exists, users, "not there (never made, or already removed)", "disk")


def decide_nvram(exists: bool, users: list[str]) -> Decision:
    """A UEFI clone's copy of its source's NVRAM file."""
    return _decide_owned(exists, users, "no such file (never copied, or already removed)", "NVRAM")


def decide_domain(exists: bool) -> Decision:
    if not exists:
        return Decision(GONE, "never defined")
    # Defining the domain is the last step of create, clone, restore and import: their commit point.
    return Decision(KEEP, "defined: the operation reached its commit point")


def decide_backup_dir(exists: bool, has_manifest: bool) -> Decision:
    if not exists:
        return Decision(GONE, "no folder")
    if has_manifest:
        return Decision(KEEP, "its manifest is written: the backup completed")
    return Decision(REMOVE, "a partial backup (no manifest)")


def decide_checkpoint(exists: bool, backup_complete: bool) -> Decision:
    if not exists:
        return Decision(GONE, "libvirt has no such checkpoint")
    if backup_complete:
        return Decision(KEEP, "the backup it starts the next incremental from completed")
    return Decision(REMOVE, "its backup has no manifest: no incremental can start from it")


def decide_job(running: bool, what: str) -> Decision:
    if running:
        return Decision(ABORT, f"the {what} job still runs without vpd")
    return Decision(GONE, f"no {what} job runs")


def decide_grant(state: str | None) -> Decision:
    if state is None:
        return Decision(GONE, "not in the grant store (never recorded)")
    if state in ("active", "revoke-pending"):
        return Decision(REVOKE, f"{state}, and the operation it was for is dead")
    return Decision(GONE, f"already {state}")


def decide_snapshot(exists: bool) -> Decision:
    if exists:
        return Decision(KEEP, "libvirt completed it")
    return Decision(GONE, "libvirt did not make it")


def decide_freeze(running: bool, status: str | None) -> Decision:
    """A guest's filesystems frozen through its agent by an operation that died before its thaw.
    `status`: the agent's guest-fsfreeze-status ('frozen' or 'thawed')."""
    if not running:
        return Decision(GONE, "the guest is not running: nothing is frozen")
    if status == "frozen":
        return Decision(THAW, "its filesystems are still frozen and the operation that froze them is dead")
    return Decision(GONE, f"its filesystems are {status or 'not frozen'}")


def settle_order(objects: list[dict]) -> list[dict]:
    """Jobs first (they still write what the others are), then the rest newest first; each
    object once."""
    seen: set[tuple] = set()
    unique = []
    for obj in objects:
        key = (obj.get("kind"), obj.get("name"), obj.get("host"))
        if key not in seen:
            seen.add(key)
            unique.append(obj)
    jobs = [o for o in unique if o.get("kind") in JOB_KINDS]
    rest = [o for o in reversed(unique) if o.get("kind") not in JOB_KINDS]
    return jobs + rest


def hosts_of(row: dict) -> set[str]:
    """The libvirt hosts a dead operation's objects are on."""
    return {o["host"] for o in row.get("objects", []) if o.get("host") and o.get("kind") not in HOST_FREE_KINDS}


def lock_keys(row: dict) -> list[str]:
    """The VM locks a live operation on the same objects would hold: taken while settling."""
    keys = set()
    for o in row.get("objects", []):
        kind, name = o.get("kind"), o.get("name") or ""
        if kind == "domain":
            keys.add(vm_key(name))
        elif kind in ("checkpoint", "snapshot"):
            keys.add(vm_key(name.split("/", 1)[0]))
        elif kind in JOB_KINDS or kind == "freeze":
            keys.add(vm_key(name))
        elif o.get("vm") or o.get("owner"):
            keys.add(vm_key(o.get("vm") or o.get("owner")))
    return sorted(keys)


# --- reports --------------------------------------------------------------------------------

@dataclass
class ObjectReport:
    kind: str
    name: str
    host: str | None
    action: str
    reason: str
    done: bool | None = None  # None: nothing to do, or a dry run
    error: str | None = None

    def note(self) -> str:
        where = f" on {self.host}" if self.host else ""
        text = f"recover: {self.kind} {self.name}{where}: {self.action} ({self.reason})"
        return text + (f": FAILED: {self.error}" if self.error else "")


@dataclass
class EntryReport:
    id: int
    operation: str
    target: str | None
    pid: int
    objects: list[ObjectReport] = field(default_factory=list)
    recovered: bool = False
    pending: str | None = None  # why the row stays 'running' for a later run

    def to_dict(self) -> dict:
        return asdict(self)


# --- facts and actions, per kind ------------------------------------------------------------

Action = Callable[[], None]
Handler = Callable[["Recovery", dict, dict], tuple[Decision, Action | None]]

# Kinds whose owners live above the operation layer: "module:function", imported when met.
EXTERNAL_HANDLERS: dict[str, str] = {"grant": "vpd.access.recovery:settle_grant",
                                     "freeze": "vpd.vm.agent:settle_freeze"}
GRANT_SWEEP = "vpd.access.recovery:sweep_due"


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


class Recovery:
    """One settling run: a session, how long to wait for busy volumes, dry run or not."""

    def __init__(self, session: Session, wait_s: float = RECOVER_WAIT_S, dry_run: bool = False):
        self.session = session
        self.wait_s = wait_s
        self.dry_run = dry_run
        self.by: int | None = None  # the journal id of the 'recover' operation

    def host(self, obj: dict) -> Host:
        return self.session.host(obj["host"])

    def conn(self, obj: dict) -> libvirt.virConnect:
        return self.session.connection(self.host(obj))

    def domain(self, obj: dict, name: str) -> libvirt.virDomain | None:
        try:
            return self.conn(obj).lookupByName(name)
        except libvirt.libvirtError as exc:
            # Only "no such domain" means gone: a libvirtd that stopped answering mid-way must not
            # pass for an empty host (the row then stays for a later run).
            _absent(exc, libvirt.VIR_ERR_NO_DOMAIN)
            return None

    def settle(self, row: dict) -> EntryReport:
        report = EntryReport(row["id"], row["operation"], row.get("target"), row["pid"])
        for obj in settle_order(row.get("objects", [])):
            kind = obj.get("kind", "?")
            out = ObjectReport(kind, str(obj.get("name")), obj.get("host"), LEAVE, "")
            report.objects.append(out)
            try:
                handler = _handler(kind)
                if handler is None:
                    out.reason = f"vpd does not settle {kind} objects: check it by hand"
                    continue
                decision, action = handler(self, obj, row)
                out.action, out.reason = decision.action, decision.reason
                if action is not None and not self.dry_run:
                    events.emit("recover", f"{decision.action} {kind} {out.name}", None, None)
                    action()
                    out.done = True
            except StillBusy as exc:
                out.done, out.error = False, exc.message
                report.pending = exc.message
            except (VpdError, libvirt.libvirtError, OSError) as exc:
                out.done = False
                out.error = exc.message if isinstance(exc, VpdError) else str(exc)
                report.pending = report.pending or f"{kind} {out.name}: {out.error}"
        return report


def _absent(exc: libvirt.libvirtError, code: int) -> None:
    """Returns when libvirt said the object does not exist; any other error goes on."""
    if exc.get_error_code() != code:
        raise exc


def _handler(kind: str) -> Handler | None:
    if kind in _HANDLERS:
        return _HANDLERS[kind]
    if kind in EXTERNAL_HANDLERS:
        return _load(EXTERNAL_HANDLERS[kind])
    return None


def _volume(rec: Recovery, obj: dict, row: dict) -> tuple[Decision, Action | None]:
    conn = rec.conn(obj)
    found = _find_volumes(conn, obj["name"], obj.get("pool"))
    if len(found) > 1:
        return Decision(LEAVE, f"pools {', '.join(p for p, _ in found)} each hold one: say which by hand"), None
    if not found:
        return decide_volume(False, []), None
    vol = found[0][1]
    path = vol.path()
    users = sorted(d.name() for d in conn.listAllDomains() if path in _disk_paths(d))
    decision = decide_volume(True, users)
    if decision.action != REMOVE:
        return decision, None

    def remove() -> None:
        _end_copies_into(rec, obj, path)
        _delete_volume(vol, obj["name"], rec.wait_s)

    return decision, remove


def _end_copies_into(rec: Recovery, obj: dict, path: str) -> None:
    """A qemu-img a dead restore or import started writes on into the orphan (deleting the file
    would only hide it, holding its space until the copy ends): end it first. Hosts vpd cannot
    reach over SSH are left to the delete alone."""
    try:
        HostFiles(rec.host(obj)).end_qemu_img(path, wait_s=min(rec.wait_s, 30))
    except HostUnreachable:
        pass


def _find_volumes(conn: libvirt.virConnect, name: str, pool: str | None) -> list[tuple[str, libvirt.virStorageVol]]:
    if pool:
        try:
            pools = [conn.storagePoolLookupByName(pool)]
        except libvirt.libvirtError as exc:
            _absent(exc, libvirt.VIR_ERR_NO_STORAGE_POOL)
            return []
    else:  # an operation that did not say (OVF import): any active pool holding that name
        pools = conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
    found = []
    for p in pools:
        try:
            p.refresh(0)
        except libvirt.libvirtError:
            pass  # refused while libvirt still builds a volume in it: its list is current then
        try:
            found.append((p.name(), p.storageVolLookupByName(name)))
        except libvirt.libvirtError as exc:
            _absent(exc, libvirt.VIR_ERR_NO_STORAGE_VOL)
    return found


def _disk_paths(dom: libvirt.virDomain) -> set[str]:
    paths = set(disk_files(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
    if dom.isActive():
        paths.update(disk_files(dom.XMLDesc(0)))
    return paths


def _still_written(exc: libvirt.libvirtError) -> bool:
    text = exc.get_error_message() or ""
    return "still being allocated" in text or "still in use" in text or "asynchronous jobs" in text


def _delete_volume(vol: libvirt.virStorageVol, name: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            vol.delete(0)
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return
            if not _still_written(exc):
                raise
            if time.monotonic() >= deadline:
                raise StillBusy(f"volume {name} is still being written by libvirt (a copy the dead operation "
                                "started): run `vpd recover` again once it ends") from None
            events.emit("recover", f"waiting for libvirt to finish writing {name}", None, None)
            time.sleep(0.5)


def _nvram(rec: Recovery, obj: dict, row: dict) -> tuple[Decision, Action | None]:
    path = obj["name"]
    files = HostFiles(rec.host(obj))
    if not files.exists(path):
        return decide_nvram(False, []), None
    users = sorted(d.name() for d in rec.conn(obj).listAllDomains()
                   if nvram_path(d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) == path)
    decision = decide_nvram(True, users)
    if decision.action != REMOVE:
        return decision, None
    return decision, lambda: files.remove_file(path)


def _domain(rec: Recovery, obj: dict, row: dict) -> tuple[Decision, Action | None]:
    return decide_domain(rec.domain(obj, obj["name"]) is not None), None


def _manifest_path(obj: dict) -> str:
    return obj.get("manifest") or f"{obj['name'].rstrip('/')}/{MANIFEST}"


def _backup_complete(rec: Recovery, row: dict) -> bool:
    for o in row.get("objects", []):
        if o.get("kind") == "backup":
            return HostFiles(rec.host(o)).exists(_manifest_path(o))
    return False


def _backup_dir(rec: Recovery, obj: dict, row: dict) -> tuple[Decision, Action | None]:
    files = HostFiles(rec.host(obj))
    where = obj["name"]
    exists = files.exists(where)
    decision = decide_backup_dir(exists, exists and files.exists(_manifest_path(obj)))
    return decision, (lambda: files.remove_tree(where)) if decision.action == REMOVE else None


def _checkpoint(rec: Recovery, obj: dict, row: dict) -> tuple[Decision, Action | None]:
    vm, _, name = obj["name"].partition("/")
    dom = rec.domain(obj, vm)
    cp = None
    if dom is not None:
        try:
            cp = dom.checkpointLookupByName(name, 0)
        except libvirt.libvirtError as exc:
            _absent(exc, libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT)
            cp = None
    decision = decide_checkpoint(cp is not None, cp is not None and _backup_complete(rec, row))
    if decision.action != REMOVE or dom is None or cp is None:
        return decision, None

    def drop() -> None:
        flags = 0 if dom.isActive() else libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY
        try:
            cp.delete(flags)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT:
                raise

    return decision, drop


def _job(operation: int, what: str) -> Handler:
    def handle(rec: Recovery, obj: dict, row: dict) -> tuple[Decision, Action | None]:
        dom = rec.domain(obj, obj["name"])
        running = False
        if dom is not None and dom.isActive():
            stats = _job_stats(dom)
            running = (stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
                       and stats.get("operation", operation) == operation)
        decision = decide_job(running, what)
        if decision.action != ABORT or dom is None:
            return decision, None
        return decision, lambda: _abort(dom, rec.wait_s)

    return handle


def _job_stats(dom: libvirt.virDomain) -> dict:
    """The domain's job stats; a job libvirt has begun but not yet described ("backup job data
    missing" while it starts) counts as a running job of unknown operation."""
    try:
        return dom.jobStats(0)
    except libvirt.libvirtError as exc:
        if not dom.isActive():
            return {"type": libvirt.VIR_DOMAIN_JOB_NONE}
        if "job data missing" in (exc.get_error_message() or ""):
            return {"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED}
        raise


def _abort(dom: libvirt.virDomain, wait_s: float) -> None:
    try:
        dom.abortJob()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:  # "no job is active": it just ended
            raise
    deadline = time.monotonic() + min(wait_s, 60)
    while _job_stats(dom).get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE:
        if time.monotonic() >= deadline:
            raise StillBusy(f"the job on {dom.name()} does not end after abort: run `vpd recover` again")
        time.sleep(0.2)


def snapshot_in_progress(dom: libvirt.virDomain) -> bool:
    """libvirt is still taking a snapshot of the domain (it pauses a running guest while it saves
    an internal one, and runs a snapshot job)."""
    state, reason = dom.state()
    if state == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_SNAPSHOT:
        return True
    if not dom.isActive():
        return False
    stats = _job_stats(dom)
    return (stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
            and stats.get("operation") == libvirt.VIR_DOMAIN_JOB_OPERATION_SNAPSHOT)


def _snapshot(rec: Recovery, obj: dict, row: dict) -> tuple[Decision, Action | None]:
    vm, _, name = obj["name"].partition("/")
    dom = rec.domain(obj, vm)
    exists = False
    if dom is not None:
        # libvirt finishes a snapshot its client left: decide on what it ends with, not on a half.
        deadline = time.monotonic() + rec.wait_s
        while snapshot_in_progress(dom):
            if time.monotonic() >= deadline:
                raise StillBusy(f"libvirt is still taking snapshot {name} of {vm}: run `vpd recover` again once "
                                "it ends")
            time.sleep(0.2)
        try:
            dom.snapshotLookupByName(name, 0)
            exists = True
        except libvirt.libvirtError as exc:
            _absent(exc, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT)
    return decide_snapshot(exists), None


_HANDLERS: dict[str, Handler] = {
    "volume": _volume,
    "domain": _domain,
    "backup": _backup_dir,
    "checkpoint": _checkpoint,
    "backup-job": _job(libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP, "backup"),
    "migration-job": _job(libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT, "migration"),
    "snapshot": _snapshot,
    "nvram": _nvram,
}
HANDLED_KINDS = tuple(_HANDLERS) + tuple(EXTERNAL_HANDLERS)


# --- runs -----------------------------------------------------------------------------------

RECOVER_LOCK = "recover:journal"
_in_pass: ContextVar[bool] = ContextVar("vpd_in_recovery_pass", default=False)


def recover(session: Session, dry_run: bool = False, wait_s: float = RECOVER_WAIT_S,
            only: Callable[[dict], bool] | None = None, sweep_grants: bool = True) -> dict:
    """Settle every dead operation (those `only` accepts) and, unless a dry run, revoke expired
    grants. One vpd process settles at a time; others wait for it (then find less to do).
    Journaled as a 'recover' entry of its own (not an Operation: no locks, no pass of its own)."""
    rec = Recovery(session, wait_s, dry_run)
    out: dict[str, Any] = {"dry_run": dry_run, "entries": [], "grants": None}
    held = None
    # The operations recovery opens (its own, the revocations) must not start another pass.
    token = _in_pass.set(True)
    if not dry_run:
        held = LockSet([RECOVER_LOCK], {"operation": "recover"}, wait=wait_s).acquire()
    try:
        rows = [r for r in journal.dead_running() if only is None or only(r)]
        if rows and not dry_run:
            with journal.record("recover", target=",".join(f"#{r['id']}" for r in rows)) as op:
                rec.by = op.id
                out["entries"] = [_settle_locked(rec, row).to_dict() for row in rows]
                op.result = {"entries": [{"id": e["id"], "recovered": e["recovered"], "pending": e["pending"]}
                                         for e in out["entries"]]}
        else:
            out["entries"] = [rec.settle(row).to_dict() for row in rows]
        if sweep_grants:
            try:
                out["grants"] = _load(GRANT_SWEEP)(session, dry_run)
            except VpdError as exc:  # some could not be revoked: the report says which
                out["grants"] = {**(exc.report or {}), "error": exc.message}
    finally:
        if held is not None:
            held.release()
        _in_pass.reset(token)
    return out


def _settle_locked(rec: Recovery, row: dict) -> EntryReport:
    try:
        locks = LockSet(lock_keys(row), {"operation": "recover", "journal_id": rec.by},
                        wait=min(rec.wait_s, 10)).acquire()
    except Busy as exc:
        return EntryReport(row["id"], row["operation"], row.get("target"), row["pid"],
                           pending=f"a live operation holds its objects: {exc.message}")
    try:
        report = rec.settle(row)
    finally:
        locks.release()
    if report.pending is None:
        notes = [o.note() for o in report.objects] or ["recover: nothing was planned"]
        report.recovered = journal.mark_recovered(row["id"], [*notes, f"recovered by journal #{rec.by}"], rec.by)
    return report


# How long the check after a failure waits for libvirt to finish writing a volume it must
# delete: the user waits on it; what is still busy then is left to the next pass.
AFTER_FAILURE_WAIT_S = 10.0


def settle_failed(session: Session, entry: journal.Entry) -> EntryReport:
    """After a failed operation's undo: look at every object it planned with the same rules as
    recovery and settle what is left (a job libvirt runs on, a checkpoint or volume an undo step
    could not delete, the host's libvirtd gone mid-way). `pending` says what could not be
    settled now: the caller leaves its row 'unsettled' for recovery."""
    row = {"id": entry.id, "operation": entry.operation, "target": None, "pid": 0, "objects": entry.objects}
    token = _in_pass.set(True)  # revocations it opens must not start a pass of their own
    try:
        return Recovery(session, wait_s=AFTER_FAILURE_WAIT_S).settle(row)
    finally:
        _in_pass.reset(token)


def run_pass(session: Session) -> None:
    """The pass every Operation runs before its own journal row: settle the dead operations
    whose hosts this request already talks to, and revoke expired grants between those hosts.
    Without dead rows
    and due grants it costs one indexed query and a read of the grant store. It never fails
    the command: what it cannot settle becomes a notice."""
    if _in_pass.get():
        return
    token = _in_pass.set(True)
    try:
        rows = journal.dead_running()
        touched = session.touched_hosts()
        if any(hosts_of(r) <= touched for r in rows):
            result = recover(session, wait_s=PASS_WAIT_S, only=lambda r: hosts_of(r) <= touched,
                             sweep_grants=False)
            for e in result["entries"]:
                done = "; ".join(f"{o['action']} {o['kind']} {o['name']}" for o in e["objects"]
                                 if o["action"] not in (GONE, LEAVE)) or "nothing left"
                if e["recovered"]:
                    session.notice(f"recovered journal #{e['id']} ({e['operation']}, its process died): {done}")
                else:
                    session.notice(f"journal #{e['id']} ({e['operation']}) is not settled yet: {e['pending']}; "
                                   "run `vpd recover`")
        swept = _load(GRANT_SWEEP)(session, False, hosts=touched)
        for g in (swept or {}).get("revoked", []):
            session.notice(f"revoked expired grant {g['id']} ({g['src']} -> {g['dst']})")
    except VpdError as exc:
        session.notice(f"recovery pass: {exc.message}; run `vpd recover`")
    finally:
        _in_pass.reset(token)
