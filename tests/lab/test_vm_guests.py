"""Guests as people install them (issue 14) on a lab host: a cloud-init NoCloud seed attached
read-only (label cidata), removed with the VM. The real cloud-init boot needs a Debian image the
lab does not build yet. ISO installs with a VNC display: tests/lab/test_vm_install.py."""
from __future__ import annotations

import subprocess

import pytest

from vpd.core import paths
from vpd.lab import layout
from vpd.vm import cloudinit
from vpd.xml.domain import Domain

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

MADE = ("gci",)


@pytest.fixture(scope="module")
def made(lab):
    yield
    for name in MADE:
        vpd("vm", "destroy", name, "--host", "hosta")
        vpd("vm", "undefine", name, "--host", "hosta", "--remove-storage")


def test_cloud_init_seed_is_attached_read_only_and_removed_with_the_vm(made, tmp_path):
    shared = paths.lab_dir() / "shared"  # the shared pool's directory as the machine sees it
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    created = vpd_json("vm", "create", "gci", "--host", "hosta", "--disk", f"size=16M,pool={layout.SHARED_POOL}",
                       "--cloud-init", f"user=alice,ssh-key={key}.pub,hostname=gci.lab.example")
    seed = f"{layout.SHARED_MOUNT}/gci-cidata.iso"
    assert created["seed"] == seed and created["cdroms"] == [seed]
    cdrom = [d for d in Domain.from_xml(vpd_json("vm", "dumpxml", "gci", "--host", "hosta")["xml"]).disks
             if d.device == "cdrom"]
    assert [(d.source.file, d.readonly) for d in cdrom] == [(seed, True)]
    listed = vpd_json("vol", "list", layout.SHARED_POOL, "--host", "hosta")["hosts"]
    assert "gci-cidata.iso" in {v["name"] for h in listed for v in h["volumes"]}
    label, files = cloudinit.read_iso((shared / "gci-cidata.iso").read_bytes())
    assert label == "cidata" and key.with_suffix(".pub").read_text().split()[1] in files["user-data"]
    vpd_json("vm", "undefine", "gci", "--host", "hosta", "--remove-storage")
    assert not (shared / "gci-cidata.iso").exists()
