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

from .conftest import VPD, vpd, vpd_json
from .migration_helpers import connect, holder, migration_ports_open, remove_guest

pytestmark = pytest.mark.lab

SRC = "rcsrc"
NEW = "rcnew"
BK = "rcbk"
MG = "rcmig"


def _host_file(path: str, host: str = "hosta") -> Path:
    return hostproc.host_path(holder(host), path)


def _newest_id() -> int:
    rows = journal.entries(1)
    return rows[0]["id"] if rows else 0


def kill_when(argv: list[str], operation: str, ready: Callable[[dict], bool], timeout: float = 120) -> dict:
    """Run `vpd ARGV`, SIGKILL it as soon as its journal row satisfies `ready`; the row."""
    after = _newest_id()
    proc = subprocess.Popen([*VPD, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            rows = [e for e in journal.entries(20, operation) if e["id"] > after and e["operation"] == operation]
            if rows and ready(rows[-1]):
                break
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"vpd {' '.join(argv)} ended (exit {proc.returncode}) before the kill point: {out} {err}")
            assert time.monotonic() < deadline, f"no kill point within {timeout} s"
            time.sleep(0.03)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    [row] = [e for e in journal.entries(50, operation) if e["id"] == rows[-1]["id"]]
    assert row["status"] == "interrupted", row
    return row


def _planned(kind: str) -> Callable[[dict], bool]:
    return lambda row: any(o["kind"] == kind for o in row["objects"])


def _status(entry_id: int) -> str:
    return next(e for e in journal.entries(200) if e["id"] == entry_id)["status"]


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


# --- a backup of a running guest killed mid-job -------------------------------------------------

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
        yield connect("hosta").lookupByName(BK)
    finally:
        vpd("vm", "destroy", BK, "--host", "hosta")
        vpd("vm", "undefine", BK, "--host", "hosta", "--remove-storage")


def _job_running(dom: libvirt.virDomain) -> bool:
    try:
        return dom.jobStats(0).get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
    except libvirt.libvirtError as exc:  # "backup job data missing": begun, not yet described
        return "job data missing" in str(exc)


def test_backup_killed_mid_job_leaves_no_folder_checkpoint_or_job(running_guest, tmp_path):
    dom = running_guest
    root = tmp_path / "backups"
    root.mkdir()
    row = kill_when(["backup", BK, "--to", str(root), "--host", "hosta"], "backup.create",
                    lambda r: _planned("backup-job")(r) and _job_running(dom))
    still = _job_running(dom)
    print(f"\nbackup killed; libvirt's job {'still runs' if still else 'had ended'}; "
          f"checkpoints {[c.getName() for c in dom.listAllCheckpoints(0)]}")
    started = time.monotonic()
    out = vpd_json("recover")
    print(f"recover took {time.monotonic() - started:.1f} s")
    [entry] = [e for e in out["entries"] if e["id"] == row["id"]]
    assert entry["recovered"], entry
    assert not _job_running(dom)
    assert dom.listAllCheckpoints(0) == []
    assert list((root / BK).iterdir()) == [] if (root / BK).exists() else True
    assert _status(row["id"]) == "recovered"
    # And a backup now succeeds, with its one checkpoint.
    made = vpd_json("backup", BK, "--to", str(root), "--host", "hosta", timeout=300)
    assert Path(made["path"], "manifest.json").exists()
    assert [c.getName() for c in dom.listAllCheckpoints(0)] == [made["checkpoint"]]


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
