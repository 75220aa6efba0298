"""Backups without a hypervisor: manifests and their chains, checksums recomputed by the real
sha256sum and qemu-img on local files, the backup XML, and the CLI's refusals on libvirt's
test driver (a failed restore leaves no volume or definition behind)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import libvirt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.backup import catalog
from vpd.backup import manifest as mf
from vpd.backup.restore import chain_source, restore_backup
from vpd.connect.hostfiles import HostFiles, require_host_dir
from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.xml.backup import DomainBackup, checkpoint, push_backup

from .conftest import run_vpd

LOCAL = Host(name="t1", uri="test:///default")


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def make_backup(vm_dir: Path, backup_id: str, kind: str, parent: str | None, image: Path) -> Path:
    """A backup directory as vpd writes it, around an existing image."""
    where = vm_dir / backup_id
    where.mkdir(parents=True)
    (where / "hda.qcow2").write_bytes(image.read_bytes())
    (where / "domain.xml").write_text("<domain type='qemu'><name>vm1</name></domain>")
    files = HostFiles(LOCAL)
    sums = files.sha256([str(where / "hda.qcow2"), str(where / "domain.xml")])
    m = mf.Manifest(id=backup_id, vm="vm1", uuid="6695eb01-f6a4-8304-79aa-97f2502e193f", host="t1",
                    created="2026-11-25T17:00:00Z", kind=kind, method="backup-api", guest_state="running",
                    checkpoint=f"vpd-{backup_id}", parent=parent, domain_sha256=sums[str(where / "domain.xml")],
                    disks=[mf.DiskCopy(target="hda", file="hda.qcow2", source="/images/vm1.qcow2", pool="default",
                                       virtual_size=4 * 2**20, bytes=files.data_bytes(str(where / "hda.qcow2")),
                                       sha256=sums[str(where / "hda.qcow2")])])
    (where / "manifest.json").write_bytes(m.to_json())
    return where


@pytest.fixture
def chain_dir(tmp_path: Path) -> Path:
    """A full backup and an incremental on it, as qcow2 files the way libvirt's push mode leaves them:
    the incremental holds only changed clusters and records no backing file."""
    full = tmp_path / "full.qcow2"
    qemu_img("create", "-f", "qcow2", str(full), "4M")
    subprocess.run(["qemu-io", "-c", "write -P 0x41 0 1M", "-c", "write -P 0x42 2M 64k", str(full)],
                   check=True, capture_output=True)
    inc = tmp_path / "inc.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", str(full), "-F", "qcow2", str(inc))
    subprocess.run(["qemu-io", "-c", "write -P 0x43 2M 64k", str(inc)], check=True, capture_output=True)
    qemu_img("rebase", "-u", "-b", "", str(inc))
    root = tmp_path / "backups"
    make_backup(root / "vm1", "20261125T170000Z", "full", None, full)
    make_backup(root / "vm1", "20261125T170100Z", "incremental", "20261125T170000Z", inc)
    return root


def test_chain_lists_full_first_and_refuses_gaps():
    full = mf.Manifest.model_construct(id="a", kind="full", parent=None)
    inc1 = mf.Manifest.model_construct(id="b", kind="incremental", parent="a")
    inc2 = mf.Manifest.model_construct(id="c", kind="incremental", parent="b")
    assert [m.id for m in mf.chain(inc2, {"a": full, "b": inc1})] == ["a", "b", "c"]
    with pytest.raises(VpdError, match="missing"):
        mf.chain(inc2, {"a": full})
    loop = mf.Manifest.model_construct(id="b", kind="incremental", parent="c")
    with pytest.raises(VpdError, match="loops"):
        mf.chain(inc2, {"b": loop, "c": inc2})


def test_incremental_builds_on_newest_backup_whose_checkpoint_exists():
    uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f"
    older = mf.Manifest.model_construct(id="1", uuid=uuid, checkpoint="vpd-1")
    newer = mf.Manifest.model_construct(id="2", uuid=uuid, checkpoint="vpd-2")
    offline = mf.Manifest.model_construct(id="3", uuid=uuid, checkpoint=None)
    other_vm = mf.Manifest.model_construct(id="4", uuid="00000000-0000-0000-0000-000000000000", checkpoint="vpd-4")
    every = [older, newer, offline, other_vm]
    assert mf.latest_with_checkpoint(every, uuid, {"vpd-1", "vpd-2", "vpd-4"}).id == "2"
    assert mf.latest_with_checkpoint(every, uuid, {"vpd-1"}).id == "1"
    assert mf.latest_with_checkpoint(every, uuid, set()) is None


def test_list_and_verify_a_chain(chain_dir: Path):
    files = HostFiles(LOCAL)
    listed = catalog.list_backups(files, str(chain_dir))
    assert [(m.id, m.kind) for _, m in listed] == [("20261125T170000Z", "full"), ("20261125T170100Z", "incremental")]
    # The incremental holds one 64 KiB cluster of data; the full one 1 MiB + 64 KiB.
    assert [m.total_bytes for _, m in listed] == [2**20 + 2**16, 2**16]
    result = catalog.verify(files, str(chain_dir / "vm1" / "20261125T170100Z"))
    assert result.ok and result.chain == ["20261125T170000Z", "20261125T170100Z"] and len(result.files) == 4


def test_verify_finds_a_changed_byte_in_a_parent(chain_dir: Path):
    image = chain_dir / "vm1" / "20261125T170000Z" / "hda.qcow2"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image.write_bytes(bytes(data))
    result = catalog.verify(HostFiles(LOCAL), str(chain_dir / "vm1" / "20261125T170100Z"))
    assert not result.ok
    assert [f.path for f in result.files if not f.ok] == [str(image)]


def test_chain_source_reads_full_plus_incremental(chain_dir: Path, tmp_path: Path):
    layers = [str(chain_dir / "vm1" / i / "hda.qcow2") for i in ("20261125T170000Z", "20261125T170100Z")]
    out = tmp_path / "restored.raw"
    qemu_img("convert", "-O", "raw", chain_source(layers), str(out))
    data = out.read_bytes()
    assert data[:2**20] == b"\x41" * 2**20  # from the full backup
    assert data[2 * 2**20:2 * 2**20 + 2**16] == b"\x43" * 2**16  # the incremental's newer cluster wins
    assert data[2**20:2 * 2**20] == b"\0" * 2**20


def test_backup_and_checkpoint_xml():
    xml = push_backup({"hda": "/b/hda.qcow2"}, incremental="vpd-1").to_xml_string()
    parsed = DomainBackup.from_xml(xml)
    assert parsed.incremental == "vpd-1" and parsed.disks[0].target.file == "/b/hda.qcow2"
    assert parsed.disks[0].driver.type == "qcow2"
    assert "<disk name=\"hda\" checkpoint=\"bitmap\"/>" in checkpoint("vpd-2", ["hda"]).to_xml_string()


@given(st.sampled_from(["relative/dir", "/a/../etc", "/", "/tmp/a\nb", "", "/tmp/\x00x"]))
def test_backup_paths_must_be_plain_absolute(path: str):
    with pytest.raises(UsageError):
        require_host_dir(path)


@given(st.text(min_size=1, max_size=40).filter(lambda t: "/" not in t))
def test_backup_ids_are_checked(text: str):
    try:
        mf.require_backup_id(text)
    except UsageError:
        return
    assert len(text) == 16 and text.endswith("Z")


def test_failed_restore_leaves_nothing(chain_dir: Path):
    """On the test driver the new volume's path is not a real file, so qemu-img fails after the
    volume was made: the restore must remove it and define nothing."""
    conn = libvirt.open("test:///default")
    pool = conn.storagePoolLookupByName("default-pool")
    before = sorted(pool.listVolumes())
    domains = sorted(d.name() for d in conn.listAllDomains())
    with pytest.raises(VpdError, match="qemu-img convert failed"):
        restore_backup(conn, LOCAL, str(chain_dir / "vm1" / "20261125T170100Z"), "vm1copy", "default-pool")
    assert sorted(pool.listVolumes()) == before
    assert sorted(d.name() for d in conn.listAllDomains()) == domains


@pytest.mark.parametrize("args", [
    ("backup", "nosuchvm", "--host", "t1", "--to", "/tmp/x"),
    ("backup", "test", "--host", "t1", "--to", "relative"),
    ("backup", "test", "--host", "t1", "--to", "/tmp/../etc"),
    ("backup", "bad name", "--host", "t1", "--to", "/tmp/x"),
    ("backup", "list", "/nonexistent-vpd-dir", "--host", "t1"),
    ("backup", "verify", "/nonexistent-vpd-dir/vm/20261125T170000Z", "--host", "t1"),
    ("restore", "/nonexistent-vpd-dir/vm/20261125T170000Z", "--host", "t1"),
    ("restore", "/tmp", "--host", "t1", "--as", "a'b"),
])
def test_cli_refusals_exit_2(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "error:" in proc.stderr


def test_cli_list_json(test_inventory, chain_dir: Path):
    out = json.loads(run_vpd("backup", "list", str(chain_dir), "--host", "t1", "--json",
                             inventory=test_inventory, check_rc=0).stdout)
    assert [b["kind"] for b in out["backups"]] == ["full", "incremental"]
    verify = run_vpd("backup", "verify", out["backups"][1]["path"], "--host", "t1", inventory=test_inventory)
    assert verify.returncode == 0 and "intact" in verify.stdout


def _tamper(where: Path, **changes) -> None:
    data = json.loads((where / "manifest.json").read_text())
    for key, value in changes.items():
        if key == "file":
            data["disks"][0]["file"] = value
        else:
            data[key] = value
    (where / "manifest.json").write_text(json.dumps(data))


FULL, INC = "20261125T170000Z", "20261125T170100Z"


@pytest.mark.parametrize("change", [
    {"file": "../../../../etc/hostname"}, {"file": "/etc/hostname"}, {"file": "a/../../x"}, {"file": ".."},
    {"id": "../../x"}, {"parent": "../other/20261125T170000Z"}, {"vm": "a b"}, {"id": "20261125T170200Z"},
])
def test_a_manifest_naming_paths_outside_its_folder_is_refused(chain_dir: Path, change):
    _tamper(chain_dir / "vm1" / INC, **change)
    with pytest.raises(mf.BadBackup) as err:
        catalog.verify(HostFiles(LOCAL), str(chain_dir / "vm1" / INC))
    assert err.value.exit_code == 2


def test_a_symlink_leaving_the_folder_is_refused(chain_dir: Path, tmp_path: Path):
    other = tmp_path / "other-vm.qcow2"
    other.write_bytes((chain_dir / "vm1" / FULL / "hda.qcow2").read_bytes())
    disk = chain_dir / "vm1" / FULL / "hda.qcow2"
    disk.unlink()
    disk.symlink_to(other)  # same bytes, so the checksum alone would pass
    with pytest.raises(mf.BadBackup, match="leads outside the backup directory"):
        catalog.verify(HostFiles(LOCAL), str(chain_dir / "vm1" / INC))
    with pytest.raises(mf.BadBackup):
        restore_backup(libvirt.open("test:///default"), LOCAL, str(chain_dir / "vm1" / INC), "vm1copy", "default-pool")


def test_a_malformed_sibling_blocks_nothing(chain_dir: Path, test_inventory):
    bad = chain_dir / "vm1" / "20261125T170500Z"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    (chain_dir / "vm2" / FULL).mkdir(parents=True)
    (chain_dir / "vm2" / FULL / "manifest.json").write_text('{"id": "../x"}')
    assert catalog.verify(HostFiles(LOCAL), str(chain_dir / "vm1" / INC)).ok
    out = json.loads(run_vpd("backup", "list", str(chain_dir), "--host", "t1", "--json",
                             inventory=test_inventory, check_rc=0).stdout)
    assert [b["id"] for b in out["backups"]] == [FULL, INC]
    assert sorted(u["path"] for u in out["unreadable"]) == [str(bad), str(chain_dir / "vm2" / FULL)]
    proc = run_vpd("backup", "verify", str(bad), "--host", "t1", inventory=test_inventory)
    assert proc.returncode == 2 and "not a valid vpd backup manifest" in proc.stderr


@pytest.mark.parametrize("root", ["/tmp/a\\b", "/tmp/a\nb", "/tmp/\x1b[2J"])
def test_backup_to_odd_characters_exits_2(test_inventory, root):
    proc = run_vpd("backup", "test", "--host", "t1", "--to", root, inventory=test_inventory)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_sha256_reads_escaped_names(tmp_path: Path):
    odd = tmp_path / "a\\b"
    odd.write_bytes(b"x")
    assert HostFiles(LOCAL).sha256([str(odd)])[str(odd)].startswith("2d711642")
