"""Lifecycle, linked clones and templates on real lab guests (TCG, acpid in the guest)."""
from __future__ import annotations

import pytest

from vpd.lab import layout

from .cluster_helpers import in_host
from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

HOST = ("--host", "hosta")


@pytest.fixture(scope="module")
def base(lab):
    """A booted lab guest with a disk in the shared pool; everything made from it is removed after."""
    created = vpd_json("vm", "create", "lcbase", *HOST, "--lab-guest", "--disk", f"size=32M,pool={layout.SHARED_POOL}",
                       "--start", "--wait-boot")
    yield created
    for name in ("lclive", "lclink", "lctpl-vm", "lcbase"):
        vpd("vm", "destroy", name, *HOST)
        vpd("vm", "undefine", name, *HOST, "--remove-storage")


def test_running_guest_is_cloned_through_the_backup_job(base):
    """qemu-img cannot read a disk QEMU holds with its write lock: libvirt's backup job copies it."""
    refused = vpd("vm", "clone", "lcbase", "lclive", *HOST)
    assert refused.returncode == 2 and "--allow-running" in refused.stderr and "pause" not in refused.stderr
    cloned = vpd_json("vm", "clone", "lcbase", "lclive", *HOST, "--allow-running")
    assert cloned["disks"] == [f"{layout.SHARED_MOUNT}/lclive.qcow2"]
    assert vpd_json("vm", "info", "lcbase", *HOST)["state"] == "running"  # it ran on throughout
    # The lab guest does not write its data disk: the copy is identical (-U: the source is in use).
    same = in_host("hosta", ["qemu-img", "compare", "-U", f"{layout.SHARED_MOUNT}/lcbase.qcow2",
                             f"{layout.SHARED_MOUNT}/lclive.qcow2"])
    assert same.returncode == 0, same.stdout + same.stderr
    vpd_json("vm", "undefine", "lclive", *HOST, "--remove-storage")


def test_graceful_shutdown_reaches_shut_off(base):
    done = vpd_json("vm", "shutdown", "lcbase", *HOST, "--timeout", "30")["result"]
    assert done["state"] == "shut off" and not done["forced"], done
    assert vpd_json("vm", "info", "lcbase", *HOST)["state"] == "shut off"
    print(f"\nACPI shutdown: {done['seconds']} s")


def test_linked_clone_boots_and_protects_its_source(base):
    cloned = vpd_json("vm", "clone", "lcbase", "lclink", *HOST, "--linked")
    assert cloned["disks"] == [f"{layout.SHARED_MOUNT}/lclink.qcow2"]
    started = vpd_json("vm", "start", "lclink", *HOST, "--wait-boot")["result"]
    assert started["boot_id"] and started["boot_id"] != base["boot_id"]
    refused = vpd("vm", "start", "lcbase", *HOST)
    assert refused.returncode == 2 and "linked clones" in refused.stderr
    refused = vpd("vm", "undefine", "lcbase", *HOST, "--remove-storage")
    assert refused.returncode == 2 and "linked clones" in refused.stderr
    assert vpd_json("vm", "info", "lcbase", *HOST)["linked_clones"] == cloned["disks"]


def test_pause_and_resume(base):
    assert vpd_json("vm", "pause", "lclink", *HOST)["result"] == {"state": "paused"}
    assert vpd_json("vm", "info", "lclink", *HOST)["state"] == "paused"
    assert vpd_json("vm", "resume", "lclink", *HOST)["result"] == {"state": "running"}
    # The resumed guest runs on: its init prints a counter line every second on serial0.
    assert "vpd-counter" in vpd_json("vm", "console", "lclink", *HOST, "--log")["output"]
    vpd_json("vm", "shutdown", "lclink", *HOST, "--timeout", "30")


def test_template_never_starts_and_makes_bootable_vms(base):
    vpd_json("vm", "undefine", "lclink", *HOST, "--remove-storage")
    vpd_json("template", "create", "lcbase", *HOST)
    assert [t["name"] for t in vpd_json("template", "list")["templates"]] == ["lcbase"]
    refused = vpd("vm", "start", "lcbase", *HOST)
    assert refused.returncode == 2 and "template" in refused.stderr
    made = vpd_json("vm", "create", "lctpl-vm", *HOST, "--template", "lcbase", "--linked", "--start", "--wait-boot")
    assert made["boot_id"] and made["linked"]
    vpd_json("vm", "destroy", "lctpl-vm", *HOST)
    vpd_json("vm", "undefine", "lctpl-vm", *HOST, "--remove-storage")
    vpd_json("template", "unseal", "lcbase", *HOST)
    assert vpd_json("template", "list")["templates"] == []
