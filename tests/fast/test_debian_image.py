"""The Debian test guest's recipe and the checks of `vm create --debian-guest` (no build here:
the set-up builds the image, the lab tests boot it)."""
from __future__ import annotations

from pathlib import Path

import pytest

from vpd.vm import debian_image
from vpd.vm.spec import DEBIAN_MEMORY_MIB, DiskRequest, VmRequest

from .conftest import run_vpd

BOOKWORM = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb-src
URIs: http://mirror.example/debian
Suites: bookworm-backports
"""


def test_deb822_stanzas_are_matched_by_exact_suite_and_binary_type():
    assert debian_image._deb822_serves(BOOKWORM, "bookworm")
    assert not debian_image._deb822_serves(BOOKWORM, "bookworm-backports")  # only a deb-src stanza has it
    assert not debian_image._deb822_serves(BOOKWORM.replace("Components", "Enabled: no\nComponents"), "bookworm")


def test_recipe_digest_changes_with_the_recipe(monkeypatch):
    before = debian_image.recipe_digest()
    assert before == debian_image.recipe_digest()
    monkeypatch.setattr(debian_image, "PACKAGES", (*debian_image.PACKAGES, "vim"))
    assert debian_image.recipe_digest() != before


def test_a_partial_cache_entry_is_not_an_image(tmp_path: Path):
    entry = tmp_path / "debian" / debian_image.recipe_digest()
    entry.mkdir(parents=True)
    for name in (debian_image.KERNEL_NAME, debian_image.INITRD_NAME, debian_image.DISK_NAME):
        (entry / name).write_bytes(b"x")
    assert debian_image.cached_image(tmp_path) is None  # no stamp: a build that did not finish
    (entry / debian_image.STAMP_NAME).write_text("{}")
    assert debian_image.cached_image(tmp_path).disk == entry / debian_image.DISK_NAME


def test_debian_root_goes_first_in_the_first_disks_pool():
    request = VmRequest(debian_guest=True, disks=[DiskRequest(size="1G", pool="fast")])
    root, data = request.with_debian_root("/cache/root.qcow2").disks
    assert (root.import_, root.pool, root.bus) == ("/cache/root.qcow2", "fast", "virtio")
    assert data.size == "1G"
    assert request.with_debian_root("/x.qcow2").memory == DEBIAN_MEMORY_MIB
    assert VmRequest(memory=200).with_debian_root("/x.qcow2").memory == 200
    assert VmRequest().with_debian_root("/x.qcow2").disks[0].pool == "default"


@pytest.mark.parametrize("extra", [["--lab-guest"], ["--import", "/var/lib/x.qcow2"],
                                   ["--boot", "kernel=/boot/vmlinuz"]])
def test_debian_guest_refuses_a_second_boot_source(test_inventory, extra):
    proc = run_vpd("vm", "create", "d1", "--host", "t1", "--debian-guest", *extra, inventory=test_inventory)
    assert proc.returncode == 2 and "--debian-guest" in proc.stderr, proc.stderr
