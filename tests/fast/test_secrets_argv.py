"""Secrets never ride in the argv of a process vpd starts (issue 12, section 4): every
process vpd starts goes through `subprocess.run` (connect/ssh.py's Runner), so the argv
is recorded there while the real command builders run. The lab tests (test_iscsi,
test_cluster) check the same with strace on the real commands."""
from __future__ import annotations

import subprocess

import pytest

from vpd.cluster import create as cluster_create
from vpd.cluster import store
from vpd.connect.inventory import Host, Inventory
from vpd.connect.ssh import Runner, SshRunner
from vpd.storage import iscsi_target

SECRET = "s3cr3t-'$`\"x;|*"  # shell metacharacters: the snippet must pass them through untouched
REMOTE = Host(name="target", uri="qemu+ssh://root@198.18.0.11/system", address="198.18.0.11")


@pytest.fixture
def recorded(monkeypatch):
    """(argv, stdin) of every process started; `fake` answers instead of running them
    (the remote hosts do not exist here) — the argv is what would have been run."""
    seen: list[tuple[list[str], object]] = []
    real = subprocess.run

    def record(args, *a, **kw):
        seen.append((list(args), kw.get("input")))
        if recorded_mode["fake"]:
            return subprocess.CompletedProcess(args, 0, "" if kw.get("text") else b"", "" if kw.get("text") else b"")
        return real(args, *a, **kw)

    recorded_mode = {"fake": True}
    monkeypatch.setattr(subprocess, "run", record)
    return seen, recorded_mode


def assert_not_in_argv(seen, secret: str) -> None:
    assert seen, "nothing was run"
    for argv, _ in seen:
        assert not any(secret in arg for arg in argv), argv


def test_run_secret_hands_the_secret_to_the_program_only(recorded):
    seen, mode = recorded
    mode["fake"] = False
    local = Runner(Host(name="here", uri="test:///default"))
    out = local.run_secret(["printf", "%s|", "tgtadm", "--password"], SECRET)
    assert out.stdout == f"tgtadm|--password|{SECRET}|"
    prefixed = local.run_secret(["printf", "%s|", "set", "auth"], SECRET, prefix="password=")
    assert prefixed.stdout == f"set|auth|password={SECRET}|"
    assert_not_in_argv(seen, SECRET)
    assert all(stdin == SECRET + "\n" for _, stdin in seen)


def test_run_secret_failure_names_the_program_not_the_secret(recorded):
    seen, mode = recorded
    mode["fake"] = False
    local = Runner(Host(name="here", uri="test:///default"))
    with pytest.raises(Exception) as failed:
        local.run_secret(["sh", "-c", "exit 3"], SECRET)
    assert "exit 3" in str(failed.value) and SECRET not in str(failed.value)


@pytest.mark.parametrize("backend_class", [iscsi_target.Tgt, iscsi_target.Lio])
def test_iscsi_target_create_keeps_the_chap_secret_out_of_argv(recorded, backend_class):
    seen, _ = recorded
    backend = backend_class(REMOTE, SshRunner(REMOTE))
    backend.create("iqn.2024-01.org.vpd:t1", 1, "/var/lib/libvirt/images/lun.raw", ["iqn.2024-01.org.vpd:i1"],
                   "vpduser", SECRET)
    assert_not_in_argv(seen, SECRET)
    # The secret did go to the target, on stdin of the command that sets it.
    assert sum(stdin == SECRET + "\n" for _, stdin in seen) == 1
    assert all(argv[0] == "ssh" for argv, _ in seen)


def test_cluster_teardown_restores_the_password_hash_through_stdin(recorded):
    seen, _ = recorded
    shadow = "$y$j9T$abcdefghijklmnopqrstu.$ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcde"
    hosts = [REMOTE]
    rec = store.ClusterRecord("c1", [REMOTE.name], None)
    rec.restore[REMOTE.name] = store.HostRestore(shadow_field=shadow)
    problems = cluster_create.teardown(rec, Inventory(hosts=hosts), hosts)
    assert problems == []
    assert_not_in_argv(seen, shadow)
    assert (f"hacluster:{shadow}\n") in [stdin for _, stdin in seen]
