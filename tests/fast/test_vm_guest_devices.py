"""ISO installs and graphical displays: the typed XML of the CD-ROM, graphics and video devices
(compared with the XML virt-install would write), `vm create --cdrom/--graphics/--video` on
libvirt's test driver, and `vm display`'s URI and SSH tunnel."""
from __future__ import annotations

import shlex
from pathlib import Path

import libvirt
import pytest
from lxml import etree

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError
from vpd.vm import lifecycle
from vpd.vm.create import DiskSpec, VmSpec, create_vm
from vpd.vm.display import display_of
from vpd.xml.domain import Domain, cdrom_disk, file_disk, graphics_device, guest_domain, video_device

from .conftest import run_vpd

HOST = Host(name="t1", uri="test:///default")


def canon(xml: str) -> str:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(xml, parser), method="c14n").decode()


def test_cdrom_graphics_video_golden_xml():
    assert canon(cdrom_disk("/srv/iso/d.iso", index=1).to_xml_string()) == canon(
        '<disk type="file" device="cdrom"><driver name="qemu" type="raw"/><source file="/srv/iso/d.iso"/>'
        '<target dev="sdb" bus="sata"/><readonly/></disk>')
    assert canon(graphics_device("vnc", "pw123456").to_xml_string()) == canon(
        '<graphics type="vnc" port="-1" autoport="yes" listen="127.0.0.1" passwd="pw123456">'
        '<listen type="address" address="127.0.0.1"/></graphics>')
    assert canon(graphics_device("spice").to_xml_string()) == canon(
        '<graphics type="spice" port="-1" autoport="yes" listen="127.0.0.1">'
        '<listen type="address" address="127.0.0.1"/></graphics>')
    assert canon(video_device("virtio").to_xml_string()) == canon('<video><model type="virtio"/></video>')
    with pytest.raises(UsageError, match="at most 8"):
        graphics_device("vnc", "123456789")
    with pytest.raises(UsageError):
        video_device("matrox")


def test_iso_install_boots_the_cdrom_then_the_disk():
    d = guest_domain("inst", disks=[file_disk("/p/inst.qcow2", bus="virtio")], cdroms=[cdrom_disk("/i.iso")])
    assert [b.dev for b in d.os.boot] == ["cdrom", "hd"]
    assert [(x.device, x.target.dev, x.readonly) for x in d.disks] == [("disk", "vda", False), ("cdrom", "sda", True)]
    live = guest_domain("live", cdroms=[cdrom_disk("/i.iso")])
    assert [b.dev for b in live.os.boot] == ["cdrom"]
    with pytest.raises(UsageError, match="share a target"):
        guest_domain("x", disks=[file_disk("/a", bus="sata")], cdroms=[cdrom_disk("/i.iso")])


def test_create_with_cdrom_volume_and_vnc(conn, tmp_path: Path):
    pool = conn.storagePoolLookupByName("default-pool")
    iso = pool.createXML("<volume><name>install.iso</name><capacity>1048576</capacity></volume>", 0)
    before = pool.listVolumes()
    try:
        spec = VmSpec(name="inst1", accel="tcg", cdrom="default-pool/install.iso", graphics="vnc", video="virtio",
                      disks=[DiskSpec(size=64 * 2**20, pool="default-pool", bus="sata")])
        dom, created = create_vm(conn, HOST, spec)
        try:
            domain = Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
            assert [b.dev for b in domain.os.boot] == ["cdrom", "hd"]
            assert [(x.device, x.target.dev) for x in domain.disks] == [("disk", "sda"), ("cdrom", "sdb")]
            assert created.cdroms == [iso.path()]
            g = domain.devices.graphics[0]
            assert (g.type, g.listen, g.passwd) == ("vnc", "127.0.0.1", created.graphics["password"])
            assert len(created.graphics["password"]) == 8
            assert domain.devices.videos[0].model.type == "virtio"
            # --remove-storage takes the disk, never the user's installer ISO
            assert lifecycle.owned_storage(domain) == created.disks
        finally:
            dom.undefine()
            for path in created.disks:
                conn.storageVolLookupByPath(path).delete(0)
        assert sorted(pool.listVolumes()) == sorted(before)
    finally:
        iso.delete(0)


def test_remove_storage_takes_the_vms_own_seed_only():
    domain = guest_domain("s1", disks=[file_disk("/p/s1.qcow2")], boot=["hd"],
                          cdroms=[cdrom_disk("/p/debian.iso"), cdrom_disk("/p/s1-cidata.iso", index=1),
                                  cdrom_disk("/p/other-cidata.iso", index=2)])
    assert lifecycle.owned_storage(domain) == ["/p/s1.qcow2", "/p/s1-cidata.iso"]


@pytest.mark.parametrize("cdrom,match", [("/nonexistent/x.iso", "no ISO"), ("default-pool/none.iso", "no volume"),
                                         ("nosuchpool/x.iso", "no storage pool")])
def test_missing_iso_makes_nothing(conn, cdrom, match):
    before = sorted(conn.storagePoolLookupByName("default-pool").listVolumes())
    with pytest.raises(UsageError, match=match):
        create_vm(conn, HOST, VmSpec(name="noiso", accel="tcg", cdrom=cdrom,
                                     disks=[DiskSpec(size=2**20, pool="default-pool")]))
    assert sorted(conn.storagePoolLookupByName("default-pool").listVolumes()) == before
    assert "noiso" not in [d.name() for d in conn.listAllDomains()]


RUNNING = ('<domain type="kvm"><name>w</name><memory>1</memory><vcpu>1</vcpu><devices>'
           '<graphics type="vnc" port="{port}" autoport="yes" listen="{listen}">'
           '<listen type="address" address="{listen}"/></graphics></devices></domain>')


def test_display_uri_and_tunnel():
    host = Host(name="hosta", uri="qemu+ssh://root@10.0.0.2/system", address="10.0.0.2")
    shown = display_of(RUNNING.format(port=5901, listen="127.0.0.1"), host, "w")
    assert shown["uri"] == "vnc://10.0.0.2:5901"
    assert shown["tunnel"] == "ssh -N -L 5901:127.0.0.1:5901 root@10.0.0.2"
    assert shown["local_uri"] == "vnc://127.0.0.1:5901"
    # The inventory's identity file goes in, quoted for the shell the line is pasted into.
    keyed = Host(name="hosta", uri="qemu+ssh://root@10.0.0.2/system", address="10.0.0.2", ssh_port=2222,
                 ssh_identity="/keys/my key;rm -rf x")
    tunnel = display_of(RUNNING.format(port=5901, listen="127.0.0.1"), keyed, "w")
    assert tunnel["tunnel"] == "ssh -N -p 2222 -i '/keys/my key;rm -rf x' -L 5901:127.0.0.1:5901 root@10.0.0.2"
    assert shlex.split(tunnel["tunnel"]) == tunnel["tunnel_argv"]
    open_ = display_of(RUNNING.format(port=5902, listen="0.0.0.0"), host, "w")
    assert (open_["uri"], open_["tunnel"]) == ("vnc://10.0.0.2:5902", None)
    stopped = display_of(RUNNING.format(port=-1, listen="127.0.0.1"), host, "w")
    assert stopped["port"] is None and stopped["uri"] is None
    with pytest.raises(UsageError, match="no VNC or SPICE"):
        display_of('<domain type="kvm"><name>w</name><memory>1</memory><vcpu>1</vcpu></domain>', host, "w")


@pytest.mark.parametrize("args", [
    ("vm", "create", "x", "--host", "t1", "--cdrom", "relative.iso"),
    ("vm", "create", "x", "--host", "t1", "--cdrom", "/nonexistent/a.iso", "--graphics", "vga"),
    ("vm", "create", "x", "--host", "t1", "--disk", "size=1M", "--video", "virtio"),
])
def test_cli_refusals(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
