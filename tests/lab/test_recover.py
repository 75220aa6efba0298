"""vpd killed with SIGKILL mid-operation on the lab, then `vpd recover` (or the next ordinary
command's recovery pass): the hosts hold what they held before, or the completed result, never
a half. Each case starts `python -m vpd` as a subprocess, watches the journal for the object it
planned, and kills it there."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import libvirt
import pytest

from vpd.core import journal
from vpd.lab import hostproc, layout
from vpd.ops.recover import snapshot_in_progress

from .conftest import VPD, vpd, vpd_json
from .guest_disk import channel
from .migration_helpers import connect, holder, kill_libvirtd, migration_ports_open, remove_guest, start_libvirtd

pytestmark = pytest.mark.lab

SRC = "rcsrc"
NEW = "rcnew"
BK = "rcbk"
RS = "rcrest"
MG = "rcmig"
SNAP = "rcsnap"
PAR = "rcpar"


def _host_file(path: str, host: str = "hosta") -> Path:
    return hostproc.host_path(holder(host), path)


def _newest_id() -> int:
    rows = journal.entries(1)
    return rows[0]["id"] if rows else 0


def start_until(argv: list[str], operation: str, ready: Callable[[dict], bool],
                timeout: float = 180) -> tuple[subprocess.Popen, int]:
    """Start `vpd ARGV` and wait (on its journal, not on the clock) until its row satisfies `ready`:
    the process, still running, and the row's id. The deadline is generous: under load vpd only
    starts slower."""
    after = _newest_id()
    proc = subprocess.Popen([*VPD, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            rows = [e for e in journal.entries(20, operation) if e["id"] > after and e["operation"] == operation]
            if rows and ready(rows[-1]):
                return proc, rows[-1]["id"]
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"vpd {' '.join(argv)} ended (exit {proc.returncode}) before the kill point: {out} {err}")
            assert time.monotonic() < deadline, f"no kill point within {timeout} s"
            time.sleep(0.03)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


def _row(entry_id: int) -> dict:
    return next(e for e in journal.entries(200) if e["id"] == entry_id)


def kill_when(argv: list[str], operation: str, ready: Callable[[dict], bool], timeout: float = 180) -> dict:
    """Run `vpd ARGV`, SIGKILL it as soon as its journal row satisfies `ready`; the row."""
    proc, entry_id = start_until(argv, operation, ready, timeout)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    row = _row(entry_id)
    assert row["status"] == "interrupted", row
    return row


def with_libvirtd_killed(argv: list[str], operation: str, ready: Callable[[dict], bool],
                         host: str = "hosta") -> tuple[subprocess.CompletedProcess, dict]:
    """Run `vpd ARGV`; when its row satisfies `ready`, SIGKILL the host's libvirtd; once vpd has
    given up, start libvirtd again the way the lab does. vpd's result, and its row."""
    proc, entry_id = start_until(argv, operation, ready)
    try:
        kill_libvirtd(host)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        start_libvirtd(host)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), _row(entry_id)


def _recovered(row: dict) -> dict:
    """`vpd recover` settles the row (timed); its entry."""
    started = time.monotonic()
    out = vpd_json("recover")
    print(f"recover took {time.monotonic() - started:.1f} s")
    [entry] = [e for e in out["entries"] if e["id"] == row["id"]]
    assert entry["recovered"], entry
    assert _status(row["id"]) == "recovered"
    return entry


def _planned(kind: str) -> Callable[[dict], bool]:
    return lambda row: any(o["kind"] == kind for o in row["objects"])


def _status(entry_id: int) -> str:
    return _row(entry_id)["status"]


# --- a full clone killed mid-copy --------------------------------------------------------------

@pytest.fixture(scope="module")
def source(lab):
    """A shut-off VM whose raw disk holds 512 MiB of random data: a copy long enough to kill."""
    vpd_json("vm", "create", SRC, "--host", "hosta", "--lab-guest", "--disk",
             f"size=768M,pool={layout.SHARED_POOL},format=raw")
    hostproc.run_in_host(holder("hosta"), ["dd", "if=/dev/urandom", f"of={layout.SHARED_MOUNT}/{SRC}.raw",
                                           "bs=1M", "count=512", "conv=notrunc"], timeout=120)
    try:
        yield
    finally:
        for name in (NEW, SRC):
            vpd("vm", "undefine", name, "--host", "hosta", "--remove-storage")


def _clone_killed_mid_copy() -> tuple[dict, bool]:
    target = _host_file(f"{layout.SHARED_MOUNT}/{NEW}.raw")
    row = kill_when(["vm", "clone", SRC, NEW, "--host", "hosta"], "vm.clone",
                    lambda r: _planned("volume")(r) and target.exists())
    # libvirt refuses to refresh a pool while it still builds a volume in it: the copy goes on.
    try:
        connect("hosta").storagePoolLookupByName(layout.SHARED_POOL).refresh(0)
        mid_copy = False
    except libvirt.libvirtError as exc:
        assert "asynchronous jobs" in str(exc), exc
        mid_copy = True
    print(f"\nclone killed; libvirt's copy {'still runs' if mid_copy else 'had ended'} (journal #{row['id']})")
    return row, mid_copy


def _no_half_clone() -> None:
    assert not _host_file(f"{layout.SHARED_MOUNT}/{NEW}.raw").exists()
    with pytest.raises(libvirt.libvirtError):
        connect("hosta").lookupByName(NEW)


def test_clone_killed_mid_copy_is_recovered_and_can_be_rerun(source):
    row, _ = _clone_killed_mid_copy()
    assert [o["kind"] for o in row["objects"]] == ["domain", "volume"]
    started = time.monotonic()
    out = vpd_json("recover")
    print(f"recover took {time.monotonic() - started:.1f} s")
    [entry] = [e for e in out["entries"] if e["id"] == row["id"]]
    assert entry["recovered"], entry
    assert {(o["kind"], o["action"]) for o in entry["objects"]} == {("volume", "remove"), ("domain", "gone")}
    _no_half_clone()
    assert _status(row["id"]) == "recovered"
    vpd_json("vm", "clone", SRC, NEW, "--host", "hosta")
    assert vpd("vm", "undefine", NEW, "--host", "hosta", "--remove-storage").returncode == 0


def test_the_next_clone_runs_the_recovery_pass_itself(source):
    row, _ = _clone_killed_mid_copy()
    # No `vpd recover`: the re-run settles the dead clone first (waiting for libvirt's copy to end).
    proc = vpd("vm", "clone", SRC, NEW, "--host", "hosta")
    assert proc.returncode == 0, proc.stderr
    assert f"recovered journal #{row['id']}" in proc.stderr
    assert _status(row["id"]) == "recovered"
    assert vpd("vm", "undefine", NEW, "--host", "hosta", "--remove-storage").returncode == 0
    _no_half_clone()


def test_clone_with_libvirtd_killed_mid_copy_leaves_no_half(source):
    target = _host_file(f"{layout.SHARED_MOUNT}/{NEW}.raw")
    done, row = with_libvirtd_killed(["vm", "clone", SRC, NEW, "--host", "hosta"], "vm.clone",
                                     lambda r: _planned("volume")(r) and target.exists())
    print(f"\nlibvirtd killed mid-clone: vpd exited {done.returncode}: {done.stderr.strip()[-300:]}")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    # vpd's undo could not reach libvirtd: the row stays for recovery, which finishes the undo.
    assert row["status"] == "unsettled", row
    entry = _recovered(row)
    assert ("volume", "remove") in {(o["kind"], o["action"]) for o in entry["objects"]}
    _no_half_clone()
    vpd_json("vm", "clone", SRC, NEW, "--host", "hosta")
    assert vpd("vm", "undefine", NEW, "--host", "hosta", "--remove-storage").returncode == 0


def test_a_create_in_the_pool_a_clone_copies_into_succeeds_too(source):
    """Two creates at once in one pool: libvirt refuses to refresh a pool while it builds a
    volume in it ("asynchronous jobs running"), and every create refreshes its pool first."""
    target = _host_file(f"{layout.SHARED_MOUNT}/{NEW}.raw")
    clone, clone_id = start_until(["vm", "clone", SRC, NEW, "--host", "hosta"], "vm.clone",
                                  lambda r: _planned("volume")(r) and target.exists())
    try:
        with pytest.raises(libvirt.libvirtError, match="asynchronous jobs"):  # the copy runs: the race is on
            connect("hosta").storagePoolLookupByName(layout.SHARED_POOL).refresh(0)
        made = vpd("vm", "create", PAR, "--host", "hosta", "--lab-guest", "--disk",
                   f"size=64M,pool={layout.SHARED_POOL},format=qcow2")
        _, err = clone.communicate(timeout=300)
    finally:
        if clone.poll() is None:
            clone.kill()
            clone.communicate()
    try:
        assert made.returncode == 0, made.stderr
        assert clone.returncode == 0, err
        assert _status(clone_id) == "ok"
        connect("hosta").lookupByName(PAR)
        connect("hosta").lookupByName(NEW)
    finally:
        for name in (PAR, NEW):
            vpd("vm", "undefine", name, "--host", "hosta", "--remove-storage")
    _no_half_clone()
    assert not _host_file(f"{layout.SHARED_MOUNT}/{PAR}.qcow2").exists()


# --- backups of a running guest killed mid-job, and restore killed mid-write --------------------

@pytest.fixture(scope="module")
def running_guest(lab):
    """A running lab guest whose qcow2 disk holds 256 MiB of random data (a job long enough to kill)."""
    vpd_json("vm", "create", BK, "--host", "hosta", "--lab-guest", "--disk", f"size=384M,pool={layout.SHARED_POOL}")
    fill = f"{layout.SHARED_MOUNT}/{BK}-fill.raw"
    pid = holder("hosta")
    hostproc.run_in_host(pid, ["dd", "if=/dev/urandom", f"of={fill}", "bs=1M", "count=256"], timeout=120)
    hostproc.run_in_host(pid, ["qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", fill,
                               f"{layout.SHARED_MOUNT}/{BK}.qcow2"], timeout=300)
    hostproc.run_in_host(pid, ["rm", "-f", fill])
    vpd_json("vm", "start", BK, "--host", "hosta", "--wait-boot", timeout=300)
    try:
        yield
    finally:
        vpd("vm", "destroy", BK, "--host", "hosta")
        vpd("vm", "undefine", BK, "--host", "hosta", "--remove-storage")


def _bk() -> libvirt.virDomain:
    # Looked up afresh: a test may restart libvirtd, which ends older connections.
    return connect("hosta").lookupByName(BK)


def _checkpoints() -> set[str]:
    return {c.getName() for c in _bk().listAllCheckpoints(0)}


def _folders(root: Path) -> set[str]:
    return {p.name for p in (root / BK).iterdir()} if (root / BK).exists() else set()


@pytest.fixture(scope="module")
def full_backup(running_guest, tmp_path_factory) -> tuple[Path, dict]:
    """A completed full backup of the guest (with its checkpoint): what restore and an
    incremental start from."""
    root = tmp_path_factory.mktemp("backups")
    return root, vpd_json("backup", BK, "--to", str(root), "--host", "hosta", timeout=300)


def _job_running(dom: libvirt.virDomain) -> bool:
    try:
        return dom.jobStats(0).get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
    except libvirt.libvirtError as exc:  # "backup job data missing": begun, not yet described
        return "job data missing" in str(exc)


def _backup_left_nothing(root: Path, checkpoints: set[str], folders: set[str]) -> None:
    assert not _job_running(_bk())
    assert _checkpoints() == checkpoints
    assert _folders(root) == folders


def test_backup_killed_mid_job_leaves_no_folder_checkpoint_or_job(running_guest, tmp_path):
    root = tmp_path / "backups"
    root.mkdir()
    before = _checkpoints()
    row = kill_when(["backup", BK, "--to", str(root), "--host", "hosta"], "backup.create",
                    lambda r: _planned("backup-job")(r) and _job_running(_bk()))
    print(f"\nbackup killed; libvirt's job {'still runs' if _job_running(_bk()) else 'had ended'}; "
          f"checkpoints {sorted(_checkpoints())}")
    _recovered(row)
    _backup_left_nothing(root, before, set())
    # And a backup now succeeds, with its one checkpoint.
    made = vpd_json("backup", BK, "--to", str(root), "--host", "hosta", timeout=300)
    assert Path(made["path"], "manifest.json").exists()
    assert _checkpoints() == before | {made["checkpoint"]}


def _job_copying(dom: libvirt.virDomain) -> bool:
    """backupBegin has returned and QEMU copies: libvirt describes the job."""
    try:
        stats = dom.jobStats(0)
    except libvirt.libvirtError:  # "backup job data missing": still inside backupBegin
        return False
    return stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE


def test_backup_with_libvirtd_killed_mid_job_leaves_no_half(running_guest, tmp_path):
    """The host's libvirtd dies while its backup job copies (after backupBegin returned): vpd fails,
    and once libvirtd is back, vpd recover (or vpd's own undo) leaves no folder, checkpoint or job."""
    root = tmp_path / "backups"
    root.mkdir()
    before = _checkpoints()
    done, row = with_libvirtd_killed(["backup", BK, "--to", str(root), "--host", "hosta"], "backup.create",
                                     lambda r: _planned("backup-job")(r) and _job_copying(_bk()))
    print(f"\nlibvirtd killed mid-backup: vpd exited {done.returncode}, row {row['status']}: "
          f"{done.stderr.strip()[-300:]}")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    if row["status"] != "failed":  # what vpd's undo could not reach, recovery settles
        _recovered(row)
    deadline = time.monotonic() + 120
    while _job_running(_bk()) and time.monotonic() < deadline:  # QEMU's copy, ended by libvirt on restart
        time.sleep(0.5)
    _backup_left_nothing(root, before, set())
    made = vpd_json("backup", BK, "--to", str(root), "--host", "hosta", timeout=300)
    assert Path(made["path"], "manifest.json").exists()
    assert _checkpoints() == before | {made["checkpoint"]}


def _dirty_guest_disk(conns, lab_inventory, mib: int) -> None:
    """The guest writes MIB of random data past the filled part of its disk: an incremental's work."""
    with channel(conns, lab_inventory, BK) as ch:
        result = ch.run(f"dd if=/dev/urandom of=/dev/sda bs=1M seek=300 count={mib} conv=fsync 2>&1",
                        timeout=240)
        assert result.exit_code == 0, result.output


def test_incremental_backup_killed_mid_job_keeps_the_full_one_and_its_checkpoint(full_backup, conns, lab_inventory):
    root, full = full_backup
    _dirty_guest_disk(conns, lab_inventory, 24)
    before, folders = _checkpoints(), _folders(root)
    assert full["checkpoint"] in before
    row = kill_when(["backup", BK, "--to", str(root), "--host", "hosta", "--incremental"], "backup.create",
                    lambda r: _planned("backup-job")(r) and _job_running(_bk()))
    print(f"\nincremental killed; libvirt's job {'still runs' if _job_running(_bk()) else 'had ended'}")
    _recovered(row)
    _backup_left_nothing(root, before, folders)
    # The chain goes on from the same full backup.
    made = vpd_json("backup", BK, "--to", str(root), "--host", "hosta", "--incremental", timeout=300)
    assert (made["kind"], made["parent"]) == ("incremental", full["id"])


def _qemu_img_writing(path: str) -> list[str]:
    ps = hostproc.run_in_host(holder("hosta"), ["ps", "-eo", "pid,args"]).stdout.splitlines()
    return [line for line in ps if "qemu-img" in line and path in line]


def test_restore_killed_mid_write_leaves_no_volume_and_can_be_rerun(full_backup):
    _, full = full_backup
    path = f"{layout.SHARED_MOUNT}/{RS}.qcow2"
    try:
        row = kill_when(["restore", full["path"], "--host", "hosta", "--as", RS], "backup.restore",
                        lambda r: _planned("volume")(r) and _qemu_img_writing(path) != [])
        entry = _recovered(row)
        assert {(o["kind"], o["action"]) for o in entry["objects"]} == {("volume", "remove"), ("domain", "gone")}
        assert not _host_file(path).exists()
        assert _qemu_img_writing(path) == []  # the copy the dead restore started is ended, not left writing
        with pytest.raises(libvirt.libvirtError):
            connect("hosta").lookupByName(RS)
        vpd_json("restore", full["path"], "--host", "hosta", "--as", RS, timeout=300)
    finally:
        vpd("vm", "undefine", RS, "--host", "hosta", "--remove-storage")


# --- a migration killed once its grant exists ------------------------------------------------

@pytest.fixture(scope="module")
def migrating_guest(lab):
    with migration_ports_open():
        vpd_json("vm", "create", MG, "--host", "hosta", "--lab-guest", "--disk", f"size=16M,pool={layout.SHARED_POOL}",
                 "--start", "--wait-boot", "--dirty", "32,8")
        try:
            yield
        finally:
            remove_guest(MG)


def _grant(grant_id: str) -> dict:
    return next(g for g in vpd_json("access", "list", "--all")["grants"] if g["id"] == grant_id)


def test_migrate_killed_after_its_grant_exists_gets_the_grant_revoked(migrating_guest):
    row = kill_when(["migrate", MG, "--from", "hosta", "--to", "hostb", "--bandwidth", "4", "--timeout", "90"],
                    "migrate", _planned("grant"))
    [grant_id] = [o["name"] for o in row["objects"] if o["kind"] == "grant"]
    print(f"\nmigrate killed with grant {grant_id} {_grant(grant_id)['state']}")
    out = vpd_json("recover")
    [entry] = [e for e in out["entries"] if e["id"] == row["id"]]
    assert entry["recovered"], entry
    assert _grant(grant_id)["state"] == "revoked"
    keys = hostproc.run_in_host(holder("hostb"), ["cat", "/root/.ssh/authorized_keys"], check=False).stdout
    assert f"vpd-grant:{grant_id}" not in keys
    assert not _host_file(f"/root/.ssh/vpd-grant-{grant_id}").exists()
    dom = connect("hosta").lookupByName(MG)
    assert dom.isActive() and not _job_running(dom)
    assert json.dumps(entry).count("FAILED") == 0


# --- a snapshot killed while libvirt saves it ----------------------------------------------------

def test_snapshot_create_killed_mid_save_is_kept_or_gone_as_libvirt_ends_it(migrating_guest):
    dom = connect("hosta").lookupByName(MG)
    try:
        # Killed as soon as the snapshot is journaled (libvirt takes this one in about half a second,
        # too short to watch for reliably): recovery then often meets libvirt still taking it.
        row = kill_when(["snapshot", "create", MG, SNAP, "--host", "hosta"], "snapshot.create", _planned("snapshot"))
        print(f"\nsnapshot killed; libvirt {'still takes it' if snapshot_in_progress(dom) else 'had ended'}")
        entry = _recovered(row)
        [obj] = entry["objects"]
        # Recovery decides once libvirt is done with it: what it reports is what the host holds.
        assert not snapshot_in_progress(dom)
        assert obj["action"] == ("keep" if SNAP in dom.snapshotListNames(0) else "gone"), obj
        assert dom.isActive()
    finally:
        if SNAP in dom.snapshotListNames(0):
            vpd("snapshot", "delete", MG, SNAP, "--host", "hosta")
