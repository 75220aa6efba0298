"""Recovery of dead operations: the pure rules per kind, the journal's dead-process detection
(PID reuse included), the current-operation context, and `recover` / the pass every Operation
runs first, over libvirt's test driver (test:///default is one shared instance per process)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import libvirt
import pytest

from vpd import ops
from vpd.connect.hostfiles import qemu_img_pids
from vpd.connect.inventory import Host
from vpd.core import journal
from vpd.core.errors import HostUnreachable, VpdError
from vpd.ops import Operation, Session
from vpd.ops import recover as rec

from .conftest import run_vpd

# --- the rules ----------------------------------------------------------------------------


def test_volume_rule_keeps_a_used_volume_and_removes_an_orphan():
    assert rec.decide_volume(False, []).action == rec.GONE
    assert rec.decide_volume(True, ["web2"]).action == rec.KEEP
    assert "web2" in rec.decide_volume(True, ["web2"]).reason
    assert rec.decide_volume(True, []).action == rec.REMOVE


def test_domain_rule_keeps_what_was_defined():
    assert rec.decide_domain(True).action == rec.KEEP
    assert rec.decide_domain(False).action == rec.GONE


def test_backup_rules_follow_the_manifest():
    assert rec.decide_backup_dir(True, True).action == rec.KEEP
    assert rec.decide_backup_dir(True, False).action == rec.REMOVE
    assert rec.decide_backup_dir(False, False).action == rec.GONE
    assert rec.decide_checkpoint(True, backup_complete=True).action == rec.KEEP
    assert rec.decide_checkpoint(True, backup_complete=False).action == rec.REMOVE
    assert rec.decide_checkpoint(False, backup_complete=False).action == rec.GONE


def test_job_grant_and_snapshot_rules():
    assert rec.decide_job(True, "backup").action == rec.ABORT
    assert rec.decide_job(False, "backup").action == rec.GONE
    assert rec.decide_grant("active").action == rec.REVOKE
    assert rec.decide_grant("revoke-pending").action == rec.REVOKE
    assert rec.decide_grant("revoked").action == rec.GONE
    assert rec.decide_grant(None).action == rec.GONE
    assert rec.decide_snapshot(True).action == rec.KEEP
    assert rec.decide_snapshot(False).action == rec.GONE


def test_nvram_rule_keeps_a_used_copy_and_removes_an_orphan():
    assert rec.decide_nvram(False, []).action == rec.GONE
    assert rec.decide_nvram(True, ["web2"]).action == rec.KEEP
    assert rec.decide_nvram(True, []).action == rec.REMOVE


def test_freeze_rule_thaws_only_a_running_guest_its_agent_says_is_frozen():
    assert rec.decide_freeze(True, "frozen").action == rec.THAW
    assert rec.decide_freeze(True, "thawed").action == rec.GONE
    assert rec.decide_freeze(False, None).action == rec.GONE
    assert "not running" in rec.decide_freeze(False, None).reason


def test_a_freeze_is_settled_by_the_agent_and_locks_its_vm():
    assert rec._handler("freeze") is not None  # loaded by name: its owner (vm.agent) sits above ops
    row = {"objects": [{"kind": "snapshot", "name": "db/s1", "host": "c"},
                       {"kind": "freeze", "name": "web", "host": "c"}]}
    assert rec.lock_keys(row) == ["vm:db", "vm:web"]
    assert rec.hosts_of(row) == {"c"}


def test_jobs_are_settled_first_then_the_rest_newest_first_once_each():
    objects = [{"kind": "backup", "name": "/b/vm/1", "host": "a"}, {"kind": "checkpoint", "name": "vm/c", "host": "a"},
               {"kind": "backup-job", "name": "vm", "host": "a"}, {"kind": "checkpoint", "name": "vm/c", "host": "a"}]
    assert [o["kind"] for o in rec.settle_order(objects)] == ["backup-job", "checkpoint", "backup"]


def test_hosts_and_locks_of_a_row():
    row = {"objects": [{"kind": "domain", "name": "web2", "host": "a"},
                       {"kind": "volume", "name": "web2.qcow2", "host": "a", "owner": "web2"},
                       {"kind": "grant", "name": "abcd", "host": "b"},
                       {"kind": "backup", "name": "/b/db/1", "host": "c", "vm": "db"},
                       {"kind": "snapshot", "name": "db/s1", "host": "c"}]}
    assert rec.hosts_of(row) == {"a", "c"}  # a grant is not an object of one libvirt host
    assert rec.lock_keys(row) == ["vm:db", "vm:web2"]


# --- the journal: who is dead ---------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _row(objects: list[dict], pid: int | None = None, pid_start: int | None = None, operation: str = "vm.clone") -> int:
    with journal._connect() as db:
        cur = db.execute("INSERT INTO operations (started, pid, pid_start, operation, target, args, status, objects) "
                         "VALUES (?,?,?,?,?,?,?,?)",
                         (time.time(), pid or _dead_pid(), pid_start, operation, "t1/x", "{}", "running",
                          json.dumps(objects)))
        assert cur.lastrowid is not None
        return cur.lastrowid


def _status(entry_id: int) -> str:
    return next(e for e in journal.entries(1000) if e["id"] == entry_id)["status"]


def test_the_journal_records_the_process_start_time():
    with journal.record("test.start") as entry:
        pass
    with journal._connect() as db:
        (started,) = db.execute("SELECT pid_start FROM operations WHERE id=?", (entry.id,)).fetchone()
    assert started == journal.process_start() and started is not None


def test_a_reused_pid_does_not_pass_for_the_dead_process():
    me = os.getpid()
    assert journal.process_alive(me, journal.process_start())
    assert not journal.process_alive(me, journal.process_start() - 1)  # same PID, another start: a reuse
    assert journal.process_alive(me, None)  # rows from before the column: PID only
    reused = _row([], pid=me, pid_start=journal.process_start() - 1)
    alive = _row([], pid=me, pid_start=journal.process_start())
    dead = [r["id"] for r in journal.dead_running()]
    assert reused in dead and alive not in dead
    assert _status(reused) == "interrupted"
    journal.mark_recovered(alive, [])  # tidy: our own row stands for nothing


def test_a_sigkilled_operation_is_dead_running_and_marked_recovered_once():
    code = ("import os, signal\nfrom vpd.core import journal\n"
            "with journal.record('test.killed') as e:\n"
            "    e.plan('volume', 'k.qcow2', 't1', pool='default-pool')\n"
            "    print(e.id, flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    entry_id = int(proc.stdout.split()[0])
    [row] = [r for r in journal.dead_running() if r["id"] == entry_id]
    assert row["objects"] == [{"kind": "volume", "name": "k.qcow2", "host": "t1", "pool": "default-pool"}]
    assert journal.mark_recovered(entry_id, ["recover: test"], by=None)
    assert not journal.mark_recovered(entry_id, ["again"], by=None)
    [shown] = [e for e in journal.entries(1000) if e["id"] == entry_id]
    assert shown["status"] == "recovered" and shown["notes"][-1] == "recover: test"


# --- the current operation ------------------------------------------------------------------

def test_plan_goes_to_the_current_operation_and_nowhere_outside_one(tmp_path: Path):
    session = Session(_inventory(tmp_path))
    ops.plan("volume", "nowhere.qcow2", "t1")  # no Operation: nothing, no error
    assert ops.current() is None
    with Operation(session, "test.outer") as outer:
        assert ops.current() is outer
        ops.plan("volume", "a.qcow2", "t1", owner="a")
        with Operation(session, "test.inner") as inner:
            ops.plan("domain", "b", "t1")
            assert ops.current() is inner
        assert ops.current() is outer
    assert ops.current() is None
    assert outer.entry is not None and outer.entry.objects == [{"kind": "volume", "name": "a.qcow2", "host": "t1",
                                                                "owner": "a"}]
    assert inner.entry is not None and [o["name"] for o in inner.entry.objects] == ["b"]


# --- recovery over the test driver ------------------------------------------------------------

def _inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n')
    return path


_VOL = "<volume><name>{}</name><capacity>1048576</capacity><target><format type='raw'/></target></volume>"
_DOM = ("<domain type='test'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os><devices>"
        "<disk type='file' device='disk'><source file='{path}'/><target dev='hda'/></disk></devices></domain>")


@pytest.fixture
def t1(tmp_path: Path):
    session = Session(_inventory(tmp_path))
    conn = session.connection(session.host("t1"))
    pool = conn.storagePoolLookupByName("default-pool")
    made = []

    def volume(name: str) -> libvirt.virStorageVol:
        vol = pool.createXML(_VOL.format(name), 0)
        made.append(name)
        return vol

    yield session, conn, pool, volume
    for name in made:
        try:
            pool.storageVolLookupByName(name).delete(0)
        except libvirt.libvirtError:
            pass
    for name in ("rc-web2",):
        try:
            conn.lookupByName(name).undefine()
        except libvirt.libvirtError:
            pass
    session.close()


def test_recover_removes_the_orphan_keeps_the_completed_clone_and_marks_the_row(t1):
    session, conn, pool, volume = t1
    volume("rc-orphan.img")
    used = volume("rc-web2.img")
    conn.defineXML(_DOM.format(name="rc-web2", path=used.path()))
    row = _row([{"kind": "domain", "name": "rc-orphan", "host": "t1"},
                {"kind": "volume", "name": "rc-orphan.img", "host": "t1", "pool": "default-pool", "owner": "rc-orphan"},
                {"kind": "domain", "name": "rc-web2", "host": "t1"},
                {"kind": "volume", "name": "rc-web2.img", "host": "t1", "pool": "default-pool", "owner": "rc-web2"},
                {"kind": "snapshot", "name": "rc-web2/s1", "host": "t1"},
                {"kind": "pool", "name": "p9", "host": "t1"}])
    dry = rec.recover(session, dry_run=True, only=lambda r: r["id"] == row)
    assert [o["action"] for o in dry["entries"][0]["objects"]] == ["leave", "gone", "keep", "keep", "remove", "gone"]
    assert "rc-orphan.img" in pool.listVolumes() and _status(row) == "interrupted"

    result = rec.recover(session, only=lambda r: r["id"] == row)
    [entry] = result["entries"]
    assert entry["recovered"] and entry["pending"] is None
    assert "rc-orphan.img" not in pool.listVolumes() and "rc-web2.img" in pool.listVolumes()
    assert _status(row) == "recovered"
    [shown] = [e for e in journal.entries(1000) if e["id"] == row]
    assert any("remove" in n and "rc-orphan.img" in n for n in shown["notes"])
    assert any("vpd does not settle pool objects" in n for n in shown["notes"])
    [mine] = journal.entries(1, "recover")
    assert mine["status"] == "ok" and shown["result"]["recovered_by"] == mine["id"]


def test_a_freeze_left_by_a_dead_operation_is_judged_by_the_guest_agent(t1):
    session, conn, _pool, _volume = t1
    conn.defineXML(_DOM.format(name="rc-web2", path="/nonexistent.img"))  # defined, not running
    stopped = _row([{"kind": "freeze", "name": "rc-web2", "host": "t1"}], operation="backup")
    [entry] = rec.recover(session, only=lambda r: r["id"] == stopped)["entries"]
    assert entry["recovered"] and entry["objects"][0]["action"] == rec.GONE
    # A running guest whose agent cannot say (the test driver has none): never taken for thawed.
    running = _row([{"kind": "freeze", "name": "test", "host": "t1"}], operation="backup")
    [entry] = rec.recover(session, wait_s=0, only=lambda r: r["id"] == running)["entries"]
    assert not entry["recovered"] and "guest agent" in entry["pending"]
    assert _status(running) == "interrupted"
    journal.mark_recovered(running, ["test: settled by hand"], by=None)


def test_a_volume_still_being_written_is_waited_for_then_left_for_the_next_run(t1, monkeypatch):
    session, _conn, pool, volume = t1
    volume("rc-busy.img")
    row = _row([{"kind": "volume", "name": "rc-busy.img", "host": "t1", "pool": "default-pool"}])
    tries = []

    def busy(self, flags=0):
        tries.append(flags)
        raise libvirt.libvirtError("volume 'rc-busy.img' is still being allocated.")

    monkeypatch.setattr(libvirt.virStorageVol, "delete", busy)
    monkeypatch.setattr(libvirt.libvirtError, "get_error_message", lambda self: str(self))
    result = rec.recover(session, wait_s=1.2, only=lambda r: r["id"] == row)
    [entry] = result["entries"]
    assert not entry["recovered"] and "still being written" in entry["pending"] and len(tries) >= 2
    assert _status(row) == "interrupted"  # still 'running' with a dead PID: the next run retries
    monkeypatch.undo()
    assert rec.recover(session, only=lambda r: r["id"] == row)["entries"][0]["recovered"]
    assert "rc-busy.img" not in pool.listVolumes()


def test_the_pass_settles_rows_on_touched_hosts_only(t1):
    session, _conn, pool, volume = t1
    volume("rc-pass.img")
    here = _row([{"kind": "volume", "name": "rc-pass.img", "host": "t1", "pool": "default-pool"}])
    elsewhere = _row([{"kind": "volume", "name": "x.img", "host": "faraway", "pool": "p"}])
    with Operation(session, "test.next"):
        pass
    assert _status(here) == "recovered" and "rc-pass.img" not in pool.listVolumes()
    assert _status(elsewhere) == "interrupted"
    assert any("recovered journal #" in n for n in session.notices)
    journal.mark_recovered(elsewhere, [])


def test_the_pass_costs_one_query_when_nothing_died(tmp_path: Path, monkeypatch):
    for r in journal.dead_running():
        journal.mark_recovered(r["id"], [])
    called = []
    monkeypatch.setattr(rec, "recover", lambda *a, **k: called.append(a))
    session = Session(_inventory(tmp_path))
    started = time.perf_counter()
    rec.run_pass(session)
    took = time.perf_counter() - started
    assert not called and took < 0.2, took


def test_an_expired_grant_is_listed_as_expired_not_active():
    from vpd.access.grants import ACTIVE, Grant

    host = Host(name="a", uri="test:///default")
    past = datetime.now(UTC) - timedelta(hours=1)
    g = Grant(id="dead", src=host, dst=host, src_address="192.0.2.1", src_key_path="/root/.ssh/k",
              public_key="ssh-ed25519 AAAA vpd-grant:dead", created=past - timedelta(minutes=15), expires=past,
              state=ACTIVE, expiry_time=None, expiry_note="")
    assert g.to_dict()["state"] == "expired"


def test_recover_cli_json(tmp_path: Path):
    proc = run_vpd("recover", "--dry-run", "--json", inventory=_inventory(tmp_path), check_rc=0)
    out = json.loads(proc.stdout)
    assert out["dry_run"] is True and isinstance(out["entries"], list)


def test_the_pass_sweeps_only_grants_between_hosts_it_talks_to(monkeypatch):
    from vpd.access import grants, operations, recovery
    from vpd.access.grants import ACTIVE, Grant

    past = datetime.now(UTC) - timedelta(hours=1)
    a, b = Host(name="a", uri="test:///default"), Host(name="b", uri="test:///default")
    g = Grant(id="old1", src=a, dst=b, src_address="192.0.2.1", src_key_path="/root/.ssh/k",
              public_key="ssh-ed25519 AAAA vpd-grant:old1", created=past - timedelta(minutes=15), expires=past,
              state=ACTIVE, expiry_time=None, expiry_note="")
    revoked = []
    monkeypatch.setattr(grants, "due", lambda: [g])
    monkeypatch.setattr(operations, "revoke", lambda session, gid: revoked.append(gid) or g)
    assert recovery.sweep_due(None, hosts={"a"}) is None and not revoked  # hostb is not talked to
    assert recovery.sweep_due(None, dry_run=True, hosts={"a", "b"}) == {"due": [g.to_dict()]} and not revoked
    assert recovery.sweep_due(None, hosts={"a", "b"})["revoked"] == [g.to_dict()] and revoked == ["old1"]


# --- a failed operation: recovery's rules check what its undo missed -----------------------------

def _entry(entry_id: int) -> dict:
    return next(e for e in journal.entries(1000) if e["id"] == entry_id)


def test_a_failed_operation_removes_what_its_undo_did_not_know(t1):
    session, _conn, pool, volume = t1
    with pytest.raises(VpdError, match="copy failed"):
        with Operation(session, "vm.clone", target="t1/rc-miss") as op:
            op.plan("volume", "rc-miss.img", "t1", pool="default-pool", owner="rc-miss")
            volume("rc-miss.img")  # made, but (as when libvirt goes on alone) no undo step for it
            raise VpdError("copy failed")
    assert "rc-miss.img" not in pool.listVolumes()
    row = _entry(op.id)
    assert row["status"] == "failed"
    assert any(n.startswith("after failure: volume rc-miss.img on t1: remove") for n in row["notes"])


def test_a_failed_operation_whose_host_stops_answering_is_unsettled_then_recovered(t1, monkeypatch):
    session, _conn, pool, volume = t1

    def unreachable(self, host):
        raise HostUnreachable(f"host {host.name}: libvirt daemon is not listening")

    with pytest.raises(VpdError, match="libvirtd died"):
        with Operation(session, "vm.clone", target="t1/rc-down") as op:
            op.plan("volume", "rc-down.img", "t1", pool="default-pool", owner="rc-down")
            volume("rc-down.img")
            monkeypatch.setattr(Session, "connection", unreachable)
            raise VpdError("libvirtd died")
    monkeypatch.undo()
    row = _entry(op.id)
    # Not 'failed' and forgotten: an error reaching the host is not "gone".
    assert row["status"] == journal.UNSETTLED and "rc-down.img" in pool.listVolumes()
    assert op.id in [r["id"] for r in journal.dead_running()]  # although its process lives
    [entry] = rec.recover(session, only=lambda r: r["id"] == op.id)["entries"]
    assert entry["recovered"]
    assert "rc-down.img" not in pool.listVolumes()
    row = _entry(op.id)
    assert row["status"] == "recovered" and row["result"]["error"] == "libvirtd died"


def test_qemu_img_writers_are_found_by_path():
    ps = ("    1 /sbin/init\n"
          "  478 qemu-img convert -n -O qcow2 json:{} /pool/rc.qcow2\n"
          "  479 /usr/bin/qemu-img convert -O qcow2 /pool/rc.qcow2.bak /pool/other.qcow2\n"
          "  480 /usr/bin/qemu-system-x86_64 -drive file=/pool/rc.qcow2\n"
          "  481 qemu-img info /pool/rc.qcow2\n")
    assert qemu_img_pids(ps, "/pool/rc.qcow2") == [478, 481]
    assert qemu_img_pids(ps, "/pool/none.qcow2") == []
