"""OVF/OVA on real lab hosts: a guest exported from one host boots from its OVA on the other with
its disk's content; a VMware-style OVA imports; failed imports leave nothing behind."""
from __future__ import annotations

import contextlib
import io
import tarfile

import libvirt
import pytest
from ovf_fixtures import as_ova, vmware_package

from vpd.core import journal
from vpd.lab import layout
from vpd.ovf.package import iter_members
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel
from vpd.xml.domain import Domain

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab

SOURCE, COPY = "ovfsrc", "ovfcopy"
POOL = ("--pool", layout.SHARED_POOL)
# Past the first MiB: sector 0 holds the disk's MBR (docs/lab.md, "The lab guest's disk").
SECTOR = 2048
MARKER = "vpd-ovf-marker-42"


@contextlib.contextmanager
def channel(conns, host, vm):
    dom = conns.get(host).lookupByName(vm)
    with ConsoleStream(dom, "serial1") as stream:
        ch = GuestChannel(stream.send, stream.recv)
        ch.wait_ready(timeout=30)
        yield ch


def host_state(conns, host) -> tuple:
    """The VMs and the shared pool's volumes, as a failed import must leave them."""
    conn = conns.get(host)
    pool = conn.storagePoolLookupByName(layout.SHARED_POOL)
    pool.refresh(0)
    return sorted(d.name() for d in conn.listAllDomains()), sorted(pool.listVolumes())


@pytest.fixture(scope="module")
def exported(lab, tmp_path_factory):
    """A lab guest on hosta whose disk holds MARKER, exported to an OVA, then stopped."""
    from vpd.connect import inventory as inv
    from vpd.connect.libvirt_conn import Connections

    vpd_json("vm", "create", SOURCE, "--host", "hosta", "--lab-guest", "--disk", f"size=32M,pool={layout.SHARED_POOL}",
             "--start", "--wait-boot")
    out = tmp_path_factory.mktemp("ovf") / f"{SOURCE}.ova"
    try:
        with Connections() as conns, channel(conns, inv.resolve().get("hosta"), SOURCE) as ch:
            # fsync: the guest's page cache is not what gets exported.
            result = ch.run(f"echo {MARKER} | dd of=/dev/sda bs=512 seek={SECTOR} conv=notrunc,fsync")
            assert result.exit_code == 0, result.output
        refused = vpd("export", SOURCE, "--host", "hosta", "--ova", str(out))
        assert refused.returncode == 2 and "running" in refused.stderr and not out.exists()
        vpd_json("vm", "destroy", SOURCE, "--host", "hosta")
        yield vpd_json("export", SOURCE, "--host", "hosta", "--ova", str(out)), out
    finally:
        for name, host in ((SOURCE, "hosta"), (COPY, "hostb"), ("appliance", "hostb")):
            vpd("vm", "destroy", name, "--host", host)
            vpd("vm", "undefine", name, "--host", host, "--remove-storage")


def test_exported_guest_boots_on_the_other_host_with_its_disk(exported, conns, lab_inventory):
    result, ova = exported
    names = list(iter_members(ova))
    assert names[:2] == [f"{SOURCE}.ovf", f"{SOURCE}.mf"] and f"{SOURCE}-disk1.vmdk" in names
    with tarfile.open(ova) as tar:
        vmdk = tar.extractfile(f"{SOURCE}-disk1.vmdk").read(512)
    assert vmdk.startswith(b"KDMV")  # sparse-extent magic of a streamOptimized vmdk
    imported = vpd_json("import", str(ova), "--host", "hostb", "--name", COPY, *POOL, "--start", "--wait-boot",
                        timeout=600)
    assert imported["boot_id"] and imported["name"] == COPY
    assert all(v.startswith(layout.SHARED_MOUNT) for v in imported["volumes"])
    with channel(conns, lab_inventory.get("hostb"), COPY) as ch:
        read = ch.run(f"dd if=/dev/sda bs=512 skip={SECTOR} count=1 iflag=direct 2>/dev/null | head -n1")
    assert read.output.strip() == MARKER
    # The copy keeps its own serial log on hostb, which holds the boot marker it printed.
    log = vpd_json("vm", "console", COPY, "--host", "hostb", "--log")["output"]
    assert f"VPD-BOOT-MARKER bootid={imported['boot_id']}" in log
    operations = [(e["operation"], e["status"]) for e in journal.entries(20) if e["operation"].startswith("ovf.")]
    assert ("ovf.export", "ok") in operations and ("ovf.import", "ok") in operations
    print(f"\nexport {result['seconds']} s, import {imported['seconds']} s, boot {imported['boot_seconds']} s")


def test_failed_imports_leave_nothing_behind(exported, conns, lab_inventory, tmp_path):
    _, ova = exported
    hostb = lab_inventory.get("hostb")
    # One flipped byte in the disk: the manifest's SHA256 no longer matches.
    tampered = tmp_path / "tampered.ova"
    with tarfile.open(ova) as src, tarfile.open(tampered, "w", format=tarfile.USTAR_FORMAT) as dst:
        for member in src:
            data = bytearray(src.extractfile(member).read())
            if member.name.endswith(".vmdk"):
                data[-600] ^= 0xFF
            dst.addfile(member, io.BytesIO(bytes(data)))
    before = host_state(conns, hostb)
    proc = vpd("import", str(tampered), "--host", "hostb", "--name", "tampered", *POOL)
    assert proc.returncode == 2 and "digest does not match" in proc.stderr, proc.stderr
    # A disk the pool can never hold (1 PiB), and a NIC on a network the host does not have.
    huge = as_ova(tmp_path / "huge.ova", vmware_package(tmp_path, nic=False, capacity="1", capacity_units="byte * 2^50"))
    proc = vpd("import", str(huge), "--host", "hostb", *POOL)
    assert proc.returncode == 2 and "larger than the whole pool" in proc.stderr, proc.stderr
    nic = as_ova(tmp_path / "nic.ova", vmware_package(tmp_path))
    proc = vpd("import", str(nic), "--host", "hostb", *POOL)
    assert proc.returncode == 2 and "'VM Network' does not exist" in proc.stderr, proc.stderr
    assert host_state(conns, hostb) == before
    failed = [e for e in journal.entries(10) if e["operation"] == "ovf.import" and e["status"] == "failed"]
    assert len(failed) >= 3


def test_vmware_style_ova_imports(exported, conns, lab_inventory, tmp_path):
    ova = as_ova(tmp_path / "appliance.ova", vmware_package(tmp_path, nic=False, disk_data=b"vmware-style disk"))
    imported = vpd_json("import", str(ova), "--host", "hostb", *POOL)
    conn = conns.get(lab_inventory.get("hostb"))
    domain = Domain.from_xml(conn.lookupByName("appliance").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    assert (domain.vcpu, domain.memory.in_bytes) == (2, 256 * 2**20)
    assert [(d.device, d.target.dev, d.target.bus) for d in domain.disks] == [("disk", "sda", "scsi"),
                                                                              ("cdrom", "hdc", "ide")]
    assert [g.type for g in domain.devices.graphics] == ["vnc"]
    vol = conn.storageVolLookupByPath(imported["volumes"][0])
    assert vol.info()[1] == 64 * 2**20  # the declared capacity
    assert any("VMCI" in note for note in imported["notes"])
    vpd_json("vm", "undefine", "appliance", "--host", "hostb", "--remove-storage")
