from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest

VPD = [sys.executable, "-m", "vpd"]


@pytest.fixture
def test_inventory(tmp_path: Path) -> Path:
    """An inventory of two hosts on libvirt's own test driver (a real libvirt driver, not a mock)."""
    path = tmp_path / "inventory.toml"
    path.write_text(
        '[[hosts]]\nname = "t1"\nuri = "test:///default"\n\n'
        '[[hosts]]\nname = "t2"\nuri = "test:///default"\n'
    )
    return path


def run_vpd(*args: str, inventory: Path | None = None, check_rc: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if inventory:
        env["VPD_INVENTORY"] = str(inventory)
    proc = subprocess.run([*VPD, *args], capture_output=True, text=True, env=env, timeout=60)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def conn():
    """This process's connection to libvirt's test:///default driver. gc first: a connection
    an earlier test left in a reference cycle would keep the driver's state shared with it."""
    gc.collect()
    c = libvirt.open("test:///default")
    yield c
    c.close()
