"""`vpd host prepare|unprepare` refuse bad requests with exit 2 before touching any host."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_vpd


@pytest.fixture
def addressed_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.toml"
    path.write_text('[[hosts]]\nname = "t1"\nuri = "qemu+ssh://root@t1.invalid/system"\naddress = "198.18.7.11"\n\n'
                    '[[hosts]]\nname = "t2"\nuri = "qemu+ssh://root@t2.invalid/system"\naddress = "198.18.7.12"\n')
    return path


@pytest.mark.parametrize("args, message", [
    (("host", "prepare"), "Missing argument"),
    (("host", "unprepare"), "Missing argument"),
    (("host", "prepare", "nosuch"), "unknown host"),
    (("host", "prepare", "t1", "t1"), "named twice"),
    (("host", "prepare", "t1", "t2", "--set-fqdn", "a.b.c"), "exactly one"),
    (("host", "prepare", "t1", "--set-fqdn", "t1"), "not a fully qualified"),
    (("host", "prepare", "t1", "--set-fqdn", "a.b;reboot"), "not a fully qualified"),
    (("host", "unprepare", "../t1"), "unknown host"),
])
def test_usage_errors(addressed_inventory, args, message):
    proc = run_vpd(*args, inventory=addressed_inventory, check_rc=2)
    assert message in proc.stderr


def test_hosts_without_addresses_are_refused(test_inventory):
    proc = run_vpd("host", "prepare", "t1", "t2", "--dry-run", inventory=test_inventory, check_rc=2)
    assert "no address in the inventory for t1, t2" in proc.stderr
