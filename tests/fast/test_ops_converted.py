"""The commands converted to the operation layer, over node files of libvirt's test driver
(each file is a host of its own): VMs found without --host, identities checked on every
host before anything is made, and the journal showing what an operation planned."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpd.xml.domain import lab_guest_domain

from .conftest import run_vpd


def _guest(name: str, mac: str, running: bool = True) -> str:
    xml = lab_guest_domain(name, kernel="/k", initrd="/i", cmdline="x", disk_path=f"/images/{name}.qcow2",
                           domain_type="test").to_xml_string()
    xml = xml.replace("</devices>", f"<interface type='network'><mac address='{mac}'/>"
                                    "<source network='default'/></interface></devices>")
    if not running:
        xml = xml.replace("</domain>", "<test:runstate xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>5"
                                       "</test:runstate></domain>")
    return xml


@pytest.fixture
def two_hosts(tmp_path: Path) -> Path:
    """hosta runs the qcow2 guest `g1`; hostb has `other` shut off."""
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_text(f"<node>{_guest('g1', '52:54:00:00:00:01')}</node>")
    b.write_text(f"<node>{_guest('other', '52:54:00:00:00:02', running=False)}</node>")
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[[hosts]]\nname = "hosta"\nuri = "test://{a}"\naddress = "198.18.7.11"\n\n'
                   f'[[hosts]]\nname = "hostb"\nuri = "test://{b}"\naddress = "198.18.7.12"\n')
    return inv


def test_snapshot_create_and_list_find_the_vm_without_host(two_hosts):
    taken = json.loads(run_vpd("snapshot", "create", "g1", "s1", "--json", inventory=two_hosts, check_rc=0).stdout)
    assert (taken["host"], taken["vm"], taken["snapshot"], taken["kind"]) == ("hosta", "g1", "s1", "internal")
    listed = run_vpd("snapshot", "list", "g1", "--json", inventory=two_hosts, check_rc=0)
    assert json.loads(listed.stdout)["host"] == "hosta"
    human = run_vpd("snapshot", "create", "g1", "s2", inventory=two_hosts, check_rc=0)
    assert "g1 is on hosta" in human.stderr and "snapshot s2 of g1: internal with memory" in human.stdout


def test_snapshot_of_a_vm_on_no_host_exits_2(two_hosts):
    proc = run_vpd("snapshot", "create", "nosuch", "--json", inventory=two_hosts, check_rc=2)
    assert "on any host" in json.loads(proc.stdout)["error"]


def _backup(root: Path, vm: str, mac: str) -> Path:
    """A finished backup directory of VM `vm` (one NIC with `mac`); restore refuses it before
    reading its disk, so the disk file's bytes do not matter here."""
    from vpd.backup import manifest as mf

    where = root / vm / "20261125T170000Z"
    where.mkdir(parents=True)
    (where / "hda.qcow2").write_bytes(b"")
    (where / "domain.xml").write_text(f"<domain type='qemu'><name>{vm}</name><devices><interface type='network'>"
                                      f"<mac address='{mac}'/><source network='default'/></interface></devices>"
                                      "</domain>")
    m = mf.Manifest(id="20261125T170000Z", vm=vm, uuid="6695eb01-f6a4-8304-79aa-97f2502e193f", host="hosta",
                    created="2026-11-25T17:00:00Z", kind="full", method="offline-copy", guest_state="shutoff",
                    domain_sha256="0" * 64,
                    disks=[mf.DiskCopy(target="hda", file="hda.qcow2", source=f"/images/{vm}.qcow2", pool="default",
                                       virtual_size=2**20, bytes=0, sha256="0" * 64)])
    (where / "manifest.json").write_bytes(m.to_json())
    return where


def _journal(operation: str) -> list[dict]:
    from vpd.core import journal

    return journal.entries(1000, operation)


@pytest.mark.parametrize("as_name, vm, mac, message", [
    (None, "other", "52:54:00:00:00:99", "already exists on hostb"),      # its own name, taken on hostb
    ("other", "vm1", "52:54:00:00:00:99", "already exists on hostb"),     # --as a name taken on hostb
    (None, "vm1", "52:54:00:00:00:02", "in use by hostb/other"),          # its MAC, taken on hostb
])
def test_restore_refuses_an_identity_taken_on_another_host(two_hosts, tmp_path, as_name, vm, mac, message):
    where = _backup(tmp_path / "backups", vm, mac)
    before = len(_journal("backup.restore"))
    proc = run_vpd("restore", str(where), "--host", "hosta", *(["--as", as_name] if as_name else []), "--json",
                   inventory=two_hosts, check_rc=2)
    assert message in json.loads(proc.stdout)["error"]
    # Refused before the operation began: no journal entry, nothing planned, nothing made.
    assert len(_journal("backup.restore")) == before
    assert sorted(p.name for p in where.iterdir()) == ["domain.xml", "hda.qcow2", "manifest.json"]


def _blank_package(tmp_path: Path, name: str) -> Path:
    """An OVF directory whose one disk is blank (nothing to upload, which the test driver cannot)."""
    from ovf_fixtures import vmware_package

    members = vmware_package(tmp_path, name=name)
    descriptor = members[f"{name}.ovf"].replace(b' ovf:fileRef="file1"', b"").replace(
        f'<File ovf:href="{name}-disk1.vmdk" ovf:id="file1" ovf:size="65536"/>'.encode(), b"")
    directory = tmp_path / f"{name}-pkg"
    directory.mkdir()
    (directory / f"{name}.ovf").write_bytes(descriptor)
    return directory / f"{name}.ovf"


@pytest.mark.parametrize("package_name, as_name", [("other", None), ("appliance", "other")])
def test_ovf_import_refuses_a_name_taken_on_another_host(two_hosts, tmp_path, package_name, as_name):
    package = _blank_package(tmp_path, package_name)
    before = len(_journal("ovf.import"))
    proc = run_vpd("import", str(package), "--host", "hosta", "--network", "default",
                   *(["--name", as_name] if as_name else []), "--json", inventory=two_hosts, check_rc=2)
    assert "already exists on hostb" in json.loads(proc.stdout)["error"]
    assert len(_journal("ovf.import")) == before


def test_journal_json_shows_what_an_operation_planned(test_inventory, tmp_path):
    package = _blank_package(tmp_path, "blank")
    made = json.loads(run_vpd("import", str(package), "--host", "t1", "--network", "default", "--json",
                              inventory=test_inventory, check_rc=0).stdout)
    assert made["name"] == "blank" and made["volumes"] == ["/default-pool/blank-disk1.qcow2"]
    [row] = json.loads(run_vpd("journal", "--operation", "ovf.import", "--limit", "1", "--json", check_rc=0).stdout)
    assert (row["operation"], row["target"], row["status"]) == ("ovf.import", "t1/blank.ovf", "ok")
    assert row["objects"] == [{"kind": "volume", "name": "blank-disk1.qcow2", "host": "t1"},
                              {"kind": "domain", "name": "blank", "host": "t1"}]
