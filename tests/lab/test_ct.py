"""Containers (Práctica 1 §3) on the lab hosts' own incusd, through `vpd ct`."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpd.core import paths
from vpd.lab import control, hostproc, incus

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

HOST = ("--host", "hosta")


def _incus_dir(host: str) -> Path:
    return paths.lab_dir() / "hosts" / host / "incus"


def _rootfs(host: str, name: str) -> Path:
    """A container's files as its host sees them (the dir driver keeps them as a plain tree)."""
    return _incus_dir(host) / "storage-pools" / "default" / "containers" / name / "rootfs"


@pytest.fixture(scope="module")
def image(lab):
    if not incus.installed():
        pytest.skip("Incus is not installed (scripts/setup.sh installs it)")
    built = vpd_json("ct", "image", "build")
    # The seed's order (METADATA ROOTFS) works as well as vpd's (ROOTFS METADATA): the contents decide.
    imported = vpd_json("ct", "image", "import", built["metadata"], built["rootfs"], "--alias", "bb", *HOST)
    yield imported
    # In this process (the CLI's start-up would cost a second per step): whatever a test left.
    from vpd.core.errors import VpdError
    from vpd.ct import operations as ct_ops
    from vpd.ops import Session

    session = Session()
    for step in ([ct_ops.delete, "ct1", None, True], [ct_ops.delete, "ct2", None, True],
                 [ct_ops.delete, "ct3", None, True], [ct_ops.profile_delete, "small", "hosta"],
                 [ct_ops.image_delete, "bb", "hosta"]):
        try:
            step[0](session, *step[1:])
        except VpdError:
            pass  # already gone
    session.close()


@pytest.fixture(scope="module")
def ct1(image):
    t0 = time.monotonic()
    launched = vpd_json("ct", "launch", "bb", "ct1", *HOST, "--limit", "memory=48MiB,cpu=1")
    print(f"\nct launch (CLI): {time.monotonic() - t0:.2f} s")
    assert launched["host"] == "hosta" and launched["config"] == {"limits.memory": "48MiB", "limits.cpu": "1"}
    return launched


def test_image_imported_and_listed(image):
    listed = vpd_json("ct", "image", "list")
    hosta = next(h for h in listed["hosts"] if h["host"] == "hosta")
    assert any("bb" in i["aliases"] and i["fingerprint"] == image["fingerprint"] for i in hosta["images"])
    again = vpd("ct", "image", "import", *vpd_json("ct", "image", "build").values(), "--alias", "bb", *HOST)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_launch_then_exec_echo(ct1):
    t0 = time.monotonic()
    proc = vpd("ct", "exec", "ct1", "--", "echo", "hello from ct1")  # --host found by vpd
    print(f"\nct exec echo (CLI): {time.monotonic() - t0:.2f} s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from ct1\n"
    failing = vpd("ct", "exec", "ct1", "--", "sh", "-c", "echo oops >&2; exit 7")
    assert failing.returncode == 7 and "oops" in failing.stderr
    listed = vpd_json("ct", "list")
    row = next(c for h in listed["hosts"] for c in h["containers"] if c["name"] == "ct1")
    assert row["state"] == "running" and row["host"] == "hosta"


def test_file_push_then_pull_gives_the_same_bytes(ct1, tmp_path):
    data = os.urandom(200_000) + b"\x00\n\xff"
    src, back = tmp_path / "datos", tmp_path / "back"
    src.write_bytes(data)
    vpd_json("ct", "file", "push", str(src), "ct1/root/datos", *HOST)
    pulled = vpd_json("ct", "file", "pull", "ct1/root/datos", str(back), *HOST)
    assert back.read_bytes() == data and pulled["bytes"] == len(data)
    escape = vpd("ct", "file", "pull", "ct1/root/../../etc/shadow", str(back))
    assert escape.returncode == 2


def test_memory_limit_shows_in_the_cgroup_and_holds(ct1):
    for _ in range(50):  # the image's init mounts the container's cgroups right after start
        limit = vpd("ct", "exec", "ct1", "--", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        if limit.returncode == 0:
            break
        time.sleep(0.1)
    assert limit.returncode == 0, limit.stderr
    assert int(limit.stdout) == 48 * 2**20
    # /tmp is a tmpfs: its pages count against the container's memory; 96 MiB cannot fit.
    over = vpd("ct", "exec", "ct1", "--", "dd", "if=/dev/zero", "of=/tmp/big", "bs=1M", "count=96")
    assert over.returncode != 0
    vpd("ct", "exec", "ct1", "--", "rm", "-f", "/tmp/big")
    changed = vpd_json("ct", "config", "set", "ct1", "limits.memory", "64MiB")
    assert changed["previous"] == "48MiB"
    limit = vpd("ct", "exec", "ct1", "--", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert int(limit.stdout) == 64 * 2**20
    info = vpd_json("ct", "info", "ct1")
    assert info["limits"]["limits.memory"] == "64MiB" and info["status"] == "running"


def test_pause_freezes_and_resume_continues(ct1):
    counter = _incus_dir("hosta") / "storage-pools" / "default" / "containers" / "ct1" / "rootfs" / "root" / "count"
    started = subprocess.run([*vpd_cmd(), "ct", "exec", "ct1", "--", "sh", "-c",
                              "(i=0; while :; do i=$((i+1)); echo $i > /root/count; sleep 0.05; done)"
                              " </dev/null >/dev/null 2>&1 &"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    first = _wait_count(counter, 1)
    assert vpd_json("ct", "pause", "ct1")["status"] == "frozen"
    frozen = _read(counter)
    time.sleep(0.6)
    assert _read(counter) == frozen
    assert vpd_json("ct", "resume", "ct1")["status"] == "running"
    assert _wait_count(counter, frozen + 3) > frozen >= first


def vpd_cmd():
    return [sys.executable, "-m", "vpd"]


def _read(p: Path) -> int:
    try:
        return int(p.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _wait_count(p: Path, at_least: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (n := _read(p)) >= at_least:
            return n
        time.sleep(0.05)
    raise AssertionError(f"counter {p} stayed below {at_least}")


def test_stop_start_and_delete_leave_no_storage(image):
    vpd_json("ct", "launch", "bb", "ct2", *HOST, "--no-start")
    store = _incus_dir("hosta") / "storage-pools" / "default" / "containers" / "ct2"
    assert store.is_dir()
    assert vpd_json("ct", "start", "ct2")["status"] == "running"
    refused = vpd("ct", "delete", "ct2")
    assert refused.returncode == 2 and "running" in refused.stderr
    assert vpd_json("ct", "stop", "ct2", "--force")["status"] == "stopped"
    vpd_json("ct", "delete", "ct2")
    assert not store.exists()
    assert vpd("ct", "info", "ct2").returncode == 2


@pytest.mark.parametrize("args", [
    ["ct", "launch", "bb", "bad_name", *HOST],
    ["ct", "launch", "bb", "ct9", *HOST, "--limit", "memory=1MiB"],
    ["ct", "config", "set", "ct1", "limits.cpu", "lots"],
    ["ct", "launch", "bb", "ct1", *HOST],  # the name is taken
])
def test_bad_names_and_limits_exit_2_and_change_nothing(ct1, args):
    before = vpd_json("ct", "list")
    proc = vpd(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert vpd_json("ct", "list") == before


class Pty:
    """A vpd command on a pseudo-terminal, as a user at a terminal runs it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe(sys.executable, [sys.executable, "-m", "vpd", *args], {**os.environ, **(env or {})})
        self.out = b""

    def expect(self, marker: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.out:
            assert time.monotonic() < deadline, f"{marker!r} not seen in {self.out[-500:]!r}"
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the command ended and closed the terminal
                    chunk = b""
                assert chunk or marker in self.out, f"ended before {marker!r}: {self.out[-500:]!r}"
                self.out += chunk

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.2)[0]:
                    self.out += os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError(f"still running: {self.out[-500:]!r}")


def test_exec_on_a_terminal_gets_one_and_passes_the_exit_code(ct1):
    t = Pty("ct", "exec", "ct1", "--", "sh", "-c", "read line; [ -t 0 ] && echo \"tty:$line\"; exit 5")
    t.send(b"typed\r")
    assert t.wait() == 5
    assert b"tty:typed" in t.out


def test_console_log_and_console_shell(ct1):
    log = vpd("ct", "console", "ct1", "--log")
    assert log.returncode == 0 and "udhcpc" in log.stdout  # init's DHCP client writes on the console
    t = Pty("ct", "console", "ct1")
    t.expect(b"ctrl-a q")
    deadline = time.monotonic() + 30
    while True:  # the console may drop what comes before LXC has attached it: Enter until a prompt
        t.send(b"\r")
        try:
            t.expect(b"# ", timeout=2)
            break
        except AssertionError:
            assert time.monotonic() < deadline, t.out
    t.send(b"echo on-console > /root/console-was-here\r")
    t.expect(b"on-console")
    t.send(b"\x01q")
    assert t.wait() == 0
    assert (_rootfs("hosta", "ct1") / "root" / "console-was-here").read_text() == "on-console\n"


def _with_editor(editor: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VISUAL"}
    return subprocess.run([*vpd_cmd(), *args], capture_output=True, text=True, timeout=120,
                          env={**env, "EDITOR": editor})


def test_file_edit_and_profiles(ct1):
    edited = _with_editor("sed -i s/localhost/edited/", "ct", "file", "edit", "ct1/etc/hosts", "--json")
    assert json.loads(edited.stdout)["changed"] is True
    assert (_rootfs("hosta", "ct1") / "etc" / "hosts").read_text() == "127.0.0.1 edited\n"
    vpd_json("ct", "profile", "create", "small", *HOST, "--limit", "memory=32MiB")
    saved = _with_editor("sed -i s/32MiB/40MiB/", "ct", "profile", "edit", "small", *HOST, "--json")
    assert json.loads(saved.stdout)["config"] == {"limits.memory": "40MiB"}
    refused = _with_editor("sed -i s/40MiB/lots/", "ct", "profile", "edit", "small", *HOST)
    assert refused.returncode == 2
    assert vpd_json("ct", "profile", "apply", "ct1", "default,small")["previous"] == ["default"]
    listed = vpd_json("ct", "profile", "list", *HOST)["hosts"][0]["profiles"]
    small = next(p for p in listed if p["name"] == "small")
    assert small["used_by"] == ["ct1"] and small["config"] == {"limits.memory": "40MiB"}


def _https_inventory(tmp_path: Path) -> str:
    """The lab's inventory with hostb's incusd reached over HTTPS, as a remote host's would be."""
    text = (paths.lab_dir() / "inventory.toml").read_text()
    socket_line = f'incus = "unix:{_incus_dir("hostb") / "unix.socket"}"'
    assert socket_line in text
    hostb = next(h for h in control.load_state().hosts if h.name == "hostb")
    inv = tmp_path / "inventory-https.toml"
    inv.write_text(text.replace(socket_line, f'incus = "https://{hostb.address}:8443"'))
    return str(inv)


def test_snapshot_restore_then_move_to_hostb_over_https_keeps_the_files(image, tmp_path):
    vpd_json("ct", "launch", "bb", "ct3", *HOST, "--no-start")
    (tmp_path / "v1").write_bytes(b"version 1\n")
    (tmp_path / "v2").write_bytes(b"version 2\n")
    vpd_json("ct", "file", "push", str(tmp_path / "v1"), "ct3/root/keep")
    vpd_json("ct", "snapshot", "create", "ct3", "s1")
    vpd_json("ct", "file", "push", str(tmp_path / "v2"), "ct3/root/keep")
    vpd_json("ct", "snapshot", "restore", "ct3", "s1")
    # hostb as a remote host: vpd's certificate trusted there with a token made on it
    inv = ("-i", _https_inventory(tmp_path))
    hostb = next(h for h in control.load_state().hosts if h.name == "hostb")
    token = hostproc.run_in_host(hostb.holder_pid, ["incus", "config", "trust", "add", "vpd", "--quiet"]).stdout
    trusted = vpd_json(*inv, "ct", "trust", "--host", "hostb", "--token", token.strip())
    assert trusted["trusted"] and trusted["endpoint"].startswith("https://")
    moved = vpd_json(*inv, "ct", "move", "ct3", "--to-host", "hostb")
    assert moved["host"] == "hostb" and moved["from_host"] == "hosta"
    assert not (_incus_dir("hosta") / "storage-pools" / "default" / "containers" / "ct3").exists()
    vpd_json(*inv, "ct", "file", "pull", "ct3/root/keep", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == b"version 1\n"  # restored, and moved with its files
    on_b = _incus_dir("hostb") / "storage-pools" / "default"
    assert (on_b / "containers-snapshots" / "ct3" / "s1").is_dir()  # the snapshot moved along
    vpd_json(*inv, "ct", "delete", "ct3")
    assert not (on_b / "containers" / "ct3").exists() and not (on_b / "containers-snapshots" / "ct3").exists()


def test_web_console_lists_containers_beside_vms(ct1):
    from fastapi.testclient import TestClient

    from vpd.web import create_app
    from vpd.web.tokens import TokenStore

    viewer = TokenStore().create("viewer")[1]
    with TestClient(create_app(str(paths.lab_dir() / "inventory.toml"))) as client:
        page = client.get("/vms", headers={"Authorization": f"Bearer {viewer}"})
        assert page.status_code == 200 and 'id="vms"' in page.text
        assert 'data-ct="ct1" data-host="hosta"' in page.text and "no incusd answers" not in page.text
        rows = client.get("/fragments/ct-rows?host=hostb", headers={"Authorization": f"Bearer {viewer}"}).text
        assert 'data-ct="ct1"' not in rows
