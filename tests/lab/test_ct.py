"""Containers (Práctica 1 §3) on the lab hosts' own incusd, through `vpd ct`."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from vpd.core import paths
from vpd.lab import incus

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

HOST = ("--host", "hosta")


def _incus_dir(host: str) -> Path:
    return paths.lab_dir() / "hosts" / host / "incus"


@pytest.fixture(scope="module")
def image(lab):
    if not incus.installed():
        pytest.skip("Incus is not installed (scripts/setup.sh installs it)")
    built = vpd_json("ct", "image", "build")
    # The seed's order (METADATA ROOTFS) works as well as vpd's (ROOTFS METADATA): the contents decide.
    imported = vpd_json("ct", "image", "import", built["metadata"], built["rootfs"], "--alias", "bb", *HOST)
    yield imported
    for name in ("ct1", "ct2"):
        vpd("ct", "delete", name, "--force", *HOST)
    vpd("ct", "image", "delete", "bb", *HOST)


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
    import sys
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
