"""`--os-variant` from the osinfo database: the real osinfo-db where installed (set-up installs
it), a tiny hand-made tree for inheritance and .d merges, and the built-in families when the
database is absent."""
from __future__ import annotations

from pathlib import Path

import pytest

from vpd.core.errors import UsageError
from vpd.vm import osinfo
from vpd.vm.spec import VmRequest

real_db = pytest.mark.skipif(not osinfo.available(), reason="osinfo-db is not installed")

OS = """<?xml version="1.0"?>
<libosinfo version="0.0.1">
  <os id="http://example.org/{id}">
    {body}
  </os>
</libosinfo>
"""


def write(root: Path, rel: str, os_id: str, body: str) -> None:
    path = root / "os" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OS.format(id=os_id, body=body))


@real_db
def test_real_database_gives_resources_and_devices():
    debian = osinfo.lookup("debian11")
    assert (debian.disk_bus, debian.nic_model, debian.source) == ("virtio", "virtio", "osinfo-db")
    assert debian.min_memory_mib == 1024 and debian.min_disk_bytes == 10 * 2**30
    assert debian.recommended_disk_bytes == 20 * 2**30
    win = osinfo.lookup("win11")  # devices come from win7's list, through derives-from and the .d files
    assert (win.disk_bus, win.nic_model) == ("sata", "e1000e")
    assert win.min_memory_mib == 4096 and win.recommended_memory_mib >= win.min_memory_mib
    assert osinfo.lookup("generic").disk_bus == "ide"


@real_db
def test_unknown_variant_names_the_closest_ids():
    with pytest.raises(UsageError, match="unknown OS variant 'debain11'") as err:
        osinfo.lookup("debain11")
    assert "debian11" in (err.value.hint or "")


def test_inheritance_and_d_merge(tmp_path: Path):
    write(tmp_path, "ex/old.xml", "old", """<short-id>old1</short-id><name>Old</name>
        <resources arch="all"><minimum><ram>268435456</ram><storage>1073741824</storage></minimum>
        <recommended><ram>536870912</ram></recommended></resources>
        <devices><device id="http://pcisig.com/pci/1af4/1001"/></devices>""")
    write(tmp_path, "ex/new.xml", "new", """<short-id>new2</short-id><name>New</name>
        <derives-from id="http://example.org/old"/>
        <resources arch="x86_64"><minimum><ram>1073741824</ram></minimum></resources>""")
    write(tmp_path, "ex/new.d/more.xml", "new", """<short-id>new2</short-id>
        <devices><device id="http://pcisig.com/pci/8086/10d3"/></devices>""")
    new = osinfo.lookup("new2", tmp_path)
    assert (new.disk_bus, new.nic_model) == ("virtio", "e1000e")
    # its own minimum; the inherited recommendation (512 MiB) is raised to it
    assert (new.min_memory_mib, new.recommended_memory_mib, new.min_disk_bytes) == (1024, 1024, 2**30)
    with pytest.raises(UsageError) as err:
        osinfo.lookup("new3", tmp_path)
    assert "new2" in (err.value.hint or "")


def test_without_osinfo_db_the_built_in_families_answer(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(osinfo, "OSINFO_DIR", tmp_path / "absent")
    assert not osinfo.available()
    win = osinfo.lookup("win11")
    assert (win.disk_bus, win.nic_model, win.source, win.min_memory_mib) == ("sata", "e1000e", "built-in", None)
    with pytest.raises(UsageError, match="unknown OS variant") as err:
        osinfo.lookup("nosuchos9")
    assert "osinfo-db is not installed" in (err.value.hint or "")
    spec = VmRequest(os_variant="debian12", disks=[{"size": "1G"}]).to_spec("x")
    assert spec.memory_mib == 128 and any("built-in" in n for n in spec.notes)


@real_db
def test_request_takes_recommended_memory_and_warns_below_minimums():
    spec = VmRequest(os_variant="debian11", disks=[{"size": "1G"}]).to_spec("x")
    assert spec.memory_mib == 1024 and spec.disks[0].bus == "virtio"
    assert any("below the 10 GiB" in n for n in spec.notes)
    small = VmRequest(os_variant="debian11", memory=256, disks=[{"size": "12G"}]).to_spec("x")
    assert small.memory_mib == 256 and [n for n in small.notes if "below" in n] == [
        "memory 256 MiB is below the 1024 MiB Debian 11 needs"]
