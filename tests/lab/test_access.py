"""Temporary access on real lab hosts: the key works from SRC while granted, only
from SRC, until its expiry, and not at all after revoke; nothing else changes."""
from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpd import access
from vpd.access import authorized_keys as ak
from vpd.access import store
from vpd.connect.ssh import runner_for
from vpd.core import journal, paths
from vpd.core.errors import HostUnreachable

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def hosts(lab, lab_inventory):
    return lab_inventory.get("hosta"), lab_inventory.get("hostb")


def host_file(host: str, name: str) -> Path:
    """A file of a lab host's /root/.ssh, seen from outside the host."""
    return paths.lab_dir() / "hosts" / host / "root-ssh" / name


def ssh_from_src(src, key_path: str, dst_name: str) -> tuple[bool, str]:
    """Log in from SRC to DST with the grant's key, as SRC's libvirt would."""
    argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
            "-o", "UserKnownHostsFile=/root/.ssh/known_hosts", "-o", "StrictHostKeyChecking=yes",
            "-i", key_path, f"root@{dst_name}.vpd.lab", "true"]
    try:
        result = runner_for(src).run(argv, check=False)
    except HostUnreachable as exc:  # the inner ssh's 255 comes back as the outer one's
        return False, str(exc)
    return result.ok, result.stderr


def ssh_from_here(key: Path, address: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
         "-o", f"UserKnownHostsFile={paths.lab_dir() / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
         "-i", str(key), f"root@{address}", "true"],
        capture_output=True, text=True, timeout=30, env=env)


def test_grant_admits_src_and_revoke_shuts_it(hosts):
    src, dst = hosts
    keys_file = host_file("hostb", "authorized_keys")
    before = keys_file.read_bytes()
    g = vpd_json("access", "grant", "hosta", "hostb", "--ttl", "15m")
    assert (g["src"], g["dst"], g["state"]) == ("hosta", "hostb", "active")
    assert g["src_key_path"] == f"/root/.ssh/vpd-grant-{g['id']}"
    assert g["expiry_time"] and g["expiry_time"].endswith("Z")  # the lab's sshd is OpenSSH >= 9.1

    key_on_src = host_file("hosta", f"vpd-grant-{g['id']}")
    assert stat.S_IMODE(key_on_src.stat().st_mode) == 0o600
    line = keys_file.read_text().splitlines()[-1]
    assert line.startswith(f'from="{src.address}",no-pty,no-port-forwarding,no-agent-forwarding,'
                           f'no-X11-forwarding,expiry-time="{g["expiry_time"]}" ssh-ed25519 ')
    assert line.endswith(f" vpd-grant:{g['id']}")
    ok, err = ssh_from_src(src, g["src_key_path"], "hostb")
    assert ok, err
    listed = {x["id"]: x for x in vpd_json("access", "list")["grants"]}
    assert listed[g["id"]]["state"] == "active"

    revoked = vpd_json("access", "revoke", g["id"])
    assert revoked["state"] == "revoked"
    ok, err = ssh_from_src(src, g["src_key_path"], "hostb")
    assert not ok and "Permission denied" in err
    assert keys_file.read_bytes() == before
    assert not key_on_src.exists()
    assert not (store.keys_dir() / f"vpd-grant-{g['id']}").exists()
    assert {x["id"]: x for x in vpd_json("access", "list", "--all")["grants"]}[g["id"]]["state"] == "revoked"
    assert g["id"] not in {x["id"] for x in vpd_json("access", "list")["grants"]}

    again = vpd("access", "revoke", g["id"])
    assert again.returncode == 2 and "already revoked" in again.stderr
    ops = {(e["operation"], e["status"]) for e in journal.entries(operation="access.")
           if e["target"] in (g["id"], "hosta->hostb")}
    assert {("access.grant", "ok"), ("access.revoke", "ok"), ("access.revoke", "failed")} <= ops


def test_from_restriction_refuses_other_sources(hosts):
    src, dst = hosts
    g = access.grant(src, dst, 300)
    try:
        local_copy = store.keys_dir() / f"vpd-grant-{g.id}"
        admin = ssh_from_here(paths.lab_dir() / "admin_ed25519", dst.address)
        assert admin.returncode == 0, admin.stderr  # this machine reaches DST's sshd...
        refused = ssh_from_here(local_copy, dst.address)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr  # ...but not with the grant's key
        ok, err = ssh_from_src(src, g.src_key_path, "hostb")  # which works from SRC
        assert ok, err
    finally:
        access.revoke(g.id)


def test_other_lines_stay_byte_for_byte(hosts):
    src, dst = hosts
    keys_file = host_file("hostb", "authorized_keys")
    original = keys_file.read_bytes()
    tricky = (original
              + b'command="echo \\"vpd-grant:x\\" ssh-ed25519 AAAA",no-pty ssh-ed25519 '
                b'AAAAC3NzaC1lZDI1NTE5AAAAIE0cnBkX0J5dGVzX2Zvcl90ZXN0aW5nX29ubHlfX19f old\r\n'
              + b"# a note in latin-1: \xe9t\xe9, and a stray \\ backslash\n"
              + b"\n"
              + b"   \t# indented comment mentioning vpd-grant:deadbeef\n")
    keys_file.write_bytes(tricky)
    keys_file.chmod(0o640)
    try:
        g = access.grant(src, dst, 300)
        assert keys_file.read_bytes().startswith(tricky)
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o640
        ok, err = ssh_from_src(src, g.src_key_path, "hostb")
        assert ok, err
        access.revoke(g.id)
        assert keys_file.read_bytes() == tricky
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o640
        admin = ssh_from_here(paths.lab_dir() / "admin_ed25519", dst.address)
        assert admin.returncode == 0, admin.stderr
    finally:
        keys_file.write_bytes(original)
        keys_file.chmod(0o600)


def test_sshd_enforces_the_expiry(hosts):
    src, dst = hosts
    g = access.grant(src, dst, 5)
    ok, err = ssh_from_src(src, g.src_key_path, "hostb")
    assert ok, err
    time.sleep(max(0.0, g.expires.timestamp() - time.time()) + 1.5)
    ok, err = ssh_from_src(src, g.src_key_path, "hostb")
    assert not ok and "Permission denied" in err  # the line is still there, but sshd says no
    assert ak.has_key(host_file("hostb", "authorized_keys").read_bytes(), g.blob)
    assert {x.id: x.status for x in access.list_grants()}[g.id] == "expired"
    out = vpd_json("access", "revoke", "--expired")
    assert [x["id"] for x in out["revoked"]] == [g.id] and out["failed"] == []
    assert not ak.has_key(host_file("hostb", "authorized_keys").read_bytes(), g.blob)


def test_temporary_access_revokes_on_success_and_on_exception(hosts):
    src, dst = hosts
    with access.temporary_access(src, dst, 300) as g:
        ok, err = ssh_from_src(src, g.src_key_path, "hostb")
        assert ok, err
    assert {x.id: x.state for x in access.list_grants()}[g.id] == "revoked"
    with pytest.raises(RuntimeError, match="migration failed"):
        with access.temporary_access(src, dst, 300) as g2:
            raise RuntimeError("migration failed")
    assert {x.id: x.state for x in access.list_grants()}[g2.id] == "revoked"
    assert not ak.has_key(host_file("hostb", "authorized_keys").read_bytes(), g2.blob)


HOLDER = """
import time
from vpd.access import temporary_access
from vpd.connect import inventory
inv = inventory.resolve()
with temporary_access(inv.get("hosta"), inv.get("hostb"), 300) as g:
    print(g.id, flush=True)
    time.sleep(120)
"""


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The process's first line of output: waits as long as it lives, up to a generous deadline
    (under load a fresh Python importing vpd and granting over two SSH hops takes a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            return proc.stdout.readline().strip()
        if proc.poll() is not None:
            return ""
    return ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_temporary_access_revokes_on_signal(hosts, signum):
    src, _ = hosts
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        grant_id = _first_line(proc, timeout=300)
        assert grant_id, f"no grant id printed (exit {proc.poll()}): {proc.stderr.read() if proc.poll() else ''}"
        ok, err = ssh_from_src(src, f"/root/.ssh/vpd-grant-{grant_id}", "hostb")
        assert ok, err
        proc.send_signal(signum)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            # A test that failed half-way: SIGTERM still revokes (SIGKILL would leave the grant open).
            proc.terminate()
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode != 0
    g = {x.id: x for x in access.list_grants()}[grant_id]
    assert g.state == "revoked", proc.stderr.read()
    assert not ak.has_key(host_file("hostb", "authorized_keys").read_bytes(), g.blob)
    assert not host_file("hosta", f"vpd-grant-{grant_id}").exists()


def test_revoke_with_dst_down_is_pending_then_retried(hosts):
    src, dst = hosts
    g = access.grant(src, dst, 300)
    down = vpd("lab", "host-down", "hostb")
    assert down.returncode == 0, down.stderr
    try:
        proc = vpd("access", "revoke", g.id)
        assert proc.returncode == 1
        assert "NOT fully revoked" in proc.stderr and "revoke-pending" in proc.stderr
        listed = {x["id"]: x for x in vpd_json("access", "list")["grants"]}[g.id]
        assert listed["state"] == "revoke-pending" and "hostb" in listed["error"]
        assert not host_file("hosta", f"vpd-grant-{g.id}").exists()  # SRC was up: its key is gone already
        assert ak.has_key(host_file("hostb", "authorized_keys").read_bytes(), g.blob)
        still_down = json.loads(vpd("access", "revoke", "--expired", "--json").stdout)
        assert [x["id"] for x in still_down["failed"]] == [g.id]
    finally:
        up = vpd("lab", "host-up", "hostb")
        assert up.returncode == 0, up.stderr
    out = vpd_json("access", "revoke", "--expired")
    assert [x["id"] for x in out["revoked"]] == [g.id]
    assert not ak.has_key(host_file("hostb", "authorized_keys").read_bytes(), g.blob)
    assert {x.id: x.state for x in access.list_grants()}[g.id] == "revoked"
