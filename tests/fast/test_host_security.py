"""`vpd host check security`: the checks over recorded libvirt XML and host command outputs
(tests/fast/data/security/), and the command on test:///default.

The outputs: `ss_lab_host.txt` is a lab host's (`ss -Hltn` over SSH, as vpd runs it there);
`stat`'s '?' for no SELinux context and aa-status's empty --json answer without AppArmor are this
machine's; the SELinux and AppArmor ones (getenforce, getsebool, stat with contexts,
aa-status --json of a Ubuntu host with a libvirtd profile and guests' libvirt-UUID profiles) are
written in those tools' documented formats, since no SELinux or AppArmor host is at hand."""
from __future__ import annotations

import json
from pathlib import Path

from vpd.host.security import (
    HostOutputs,
    booleans_needed,
    driver_checks,
    exposure_checks,
    firewalld_decider,
    guest_checks,
    host_side_checks,
    image_checks,
    listen_checks,
    mode_checks,
    nft_decider,
)

from .conftest import run_vpd

CAPS = "<capabilities><host><secmodel><model>{}</model><doi>0</doi></secmodel></host></capabilities>"
SELINUX_GUEST = """<domain type='kvm'><name>web</name><devices>
  <graphics type='spice' port='5900' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/>
  </graphics></devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'><label>system_u:system_r:svirt_t:s0:c392,c662</label>
  <imagelabel>system_u:object_r:svirt_image_t:s0:c392,c662</imagelabel></seclabel></domain>"""
EXPOSED_GUEST = """<domain type='kvm'><name>db</name><devices>
  <graphics type='vnc' port='5901' listen='0.0.0.0'><listen type='address' address='0.0.0.0'/></graphics>
  </devices><seclabel type='none' model='none'/></domain>"""


def test_security_driver_present_or_reported_missing():
    assert driver_checks(CAPS.format("selinux"))[0].ok
    assert driver_checks(CAPS.format("apparmor"))[0].ok
    none = driver_checks("<capabilities><host/></capabilities>")[0]
    assert not none.ok and none.detail == "libvirt's security driver: none" and "qemu.conf" in none.fix


def test_confined_guest_on_loopback_passes():
    checks = {c.name: c for c in guest_checks(SELINUX_GUEST)}
    assert checks["label web"].ok and "svirt_t:s0:c392,c662" in checks["label web"].detail
    assert checks["graphics web"].ok and "loopback" in checks["graphics web"].detail


def test_unconfined_guest_with_open_vnc_is_reported():
    checks = {c.name: c for c in guest_checks(EXPOSED_GUEST)}
    assert not checks["label db"].ok and checks["label db"].detail == "none none"
    assert not checks["graphics db"].ok and checks["graphics db"].detail == "vnc on 0.0.0.0, no password"
    with_password = EXPOSED_GUEST.replace("listen='0.0.0.0'>", "listen='0.0.0.0' passwd='x'>")
    assert {c.name: c for c in guest_checks(with_password)}["graphics db"].ok


def test_cli_on_the_test_driver(tmp_path):
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[hosts]]\nname = "t"\nuri = "test:///default"\n')
    data = json.loads(run_vpd("host", "check", "security", "--json", inventory=inv, check_rc=0).stdout)
    checks = {c["name"]: c for c in data["hosts"][0]["checks"]}
    # the test driver's "testSecurity" confines nothing: reported, as the lab's "none" is
    assert not checks["security driver"]["ok"] and "testSecurity" in checks["security driver"]["detail"]
    assert not checks["label test"]["ok"]
    # no host behind the test driver: libvirt's side only, and said so
    assert "security mode" not in checks and "test driver" in data["hosts"][0]["note"]


DATA = Path(__file__).parent / "data" / "security"


def _out(name: str) -> str:
    return (DATA / name).read_text()


def test_selinux_mode_enforcing_passes_permissive_is_reported():
    assert mode_checks(["selinux"], _out("getenforce_enforcing.txt"), None)[0].ok
    permissive = mode_checks(["selinux"], _out("getenforce_permissive.txt"), None)[0]
    assert not permissive.ok and permissive.detail == "SELinux permissive" and "setenforce 1" in permissive.fix


def test_apparmor_profiles_in_complain_mode_are_named():
    check = mode_checks(["apparmor"], None, _out("aa_status_ubuntu.json"))[0]
    assert not check.ok
    assert check.detail == ("AppArmor: libvirtd enforce, 2 guest profile(s); not enforced: "
                            "libvirt-9b1e0c44-7a0f-4c61-8f0e-3b7f1d2a6e55")
    enforced = _out("aa_status_ubuntu.json").replace('"complain"', '"enforce"')
    assert mode_checks(["apparmor"], None, enforced)[0].ok
    # libvirt says AppArmor but aa-status answers nothing (as on a host without it)
    assert not mode_checks(["apparmor"], None, "")[0].ok


def test_no_driver_says_what_the_host_could_use():
    check = mode_checks([], None, "")[0]  # the lab: no getenforce, aa-status --json prints nothing
    assert not check.ok and check.detail == "no confining driver in libvirt; the host has no SELinux, no AppArmor"
    assert "SELinux permissive" in mode_checks(["none"], "Permissive\n", None)[0].detail


def test_images_world_readable_or_mislabelled_are_reported():
    checks = {c.name: c for c in image_checks(_out("stat_selinux.txt"), selinux_enforcing=True)}
    assert checks["image /var/lib/libvirt/images/web.qcow2"].ok
    db = checks["image /var/lib/libvirt/images/db.qcow2"]
    assert not db.ok and db.detail == ("mode 644: readable by every user; "
                                       "label system_u:object_r:virt_image_t:s0, not svirt_image_t")
    nfs = checks["image /mnt/nfs/shared.qcow2"]
    assert "readable and writable by every user" in nfs.detail and "chmod o-rwx /mnt/nfs/shared.qcow2" in nfs.fix
    # without SELinux only the mode counts; stat prints '?' for the context
    (plain,) = image_checks("600 root:root ? /var/lib/vpd/lab/shared/a.qcow2\n", selinux_enforcing=False)
    assert plain.ok and plain.detail == "600 root:root no label"


NFS_POOL = ("<pool type='netfs'><name>nfsvms</name><source><host name='nas'/><dir path='/vms'/>"
            "<format type='nfs'/></source><target><path>/mnt/nfs</path></target></pool>")
CIFS_POOL = NFS_POOL.replace("nfsvms", "smbvms").replace("type='nfs'", "type='cifs'")
DIR_POOL = "<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>"


def test_selinux_booleans_for_the_netfs_pools_in_use():
    needed = booleans_needed([NFS_POOL, CIFS_POOL, DIR_POOL])
    assert needed == {"virt_use_nfs": ["nfsvms"], "virt_use_samba": ["smbvms"]}
    facts = HostOutputs(getenforce="Enforcing\n", getsebool=_out("getsebool_virt.txt"))
    checks = {c.name: c for c in host_side_checks(["selinux"], facts, needed)}
    nfs = checks["boolean virt_use_nfs"]
    assert not nfs.ok and nfs.fix == "setsebool -P virt_use_nfs on"
    assert checks["boolean virt_use_nfs"].detail == "virt_use_nfs off, needed by pool(s) nfsvms"
    assert checks["boolean virt_use_samba"].ok
    # not enforcing, or no netfs pool: no boolean matters
    assert not [c for c in host_side_checks(["selinux"], HostOutputs(getenforce="Permissive"), needed)
                if c.name.startswith("boolean")]
    assert booleans_needed([DIR_POOL]) == {}


LAB_LIBVIRTD = 'listen_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"   # lab only\n'


def test_libvirtd_on_tcp_without_auth_is_reported():
    (check,) = listen_checks(_out("ss_lab_host.txt"), {"/etc/libvirt/libvirtd.conf": LAB_LIBVIRTD})
    assert not check.ok and check.detail.startswith(
        "16509 listening on 198.18.4.11, auth_tcp = none (/etc/libvirt/libvirtd.conf); anyone who reaches it")
    sasl = listen_checks(_out("ss_lab_host.txt"), {"/etc/libvirt/libvirtd.conf": "listen_tcp = 1\n"})[0]
    assert sasl.ok and "sasl (default)" in sasl.detail and "not encrypted" in sasl.detail
    (tls,) = listen_checks(_out("ss_tls_only.txt"), {})
    assert tls.ok and tls.detail == "16509 (TCP without TLS) not listening beyond loopback; TLS on 16514"


# A student's host: the migration range and libvirt opened in the zone of the LAN interface, to anyone.
STUDENT_ZONES = """FedoraServer (default, active)
  target: default
  icmp-block-inversion: no
  interfaces: enp6s0
  sources:
  services: cockpit dhcpv6-client libvirt ssh
  ports: 49152-49216/tcp
  protocols:
  rich rules:
"""
PEER_ONLY_ZONES = """FedoraServer (default, active)
  target: default
  interfaces: enp6s0
  sources:
  services: ssh
  ports:
  rich rules:
	rule family="ipv4" source address="10.140.92.125" port port="16509" protocol="tcp" accept
	rule family="ipv4" source address="10.140.92.125" port port="49152-49216" protocol="tcp" accept
"""


def test_exposure_flags_the_migration_range_open_to_everyone():
    checks = {c.name: c for c in exposure_checks(firewalld_decider(STUDENT_ZONES, "enp6s0"),
                                                  {"hostb": "10.140.92.125"})}
    migration = checks["exposure migration 49152-49216"]
    assert not migration.ok and migration.detail.startswith("the migration range is open to everyone - peers: hostb")
    assert "49152 open by zone FedoraServer" in migration.detail
    assert not checks["exposure libvirt TCP 16509"].ok
    assert checks["exposure SSH 22"].ok  # SSH may face the admins' world
    assert checks["exposure VNC 5900-5999"].ok and checks["exposure VNC 5900-5999"].detail == \
        "peers: none; world: closed"


def test_exposure_to_peers_only_passes():
    checks = {c.name: c for c in exposure_checks(firewalld_decider(PEER_ONLY_ZONES, "enp6s0"),
                                                  {"hostb": "10.140.92.125", "hostc": "10.140.92.126"})}
    assert all(c.ok for c in checks.values()), checks
    assert checks["exposure migration 49152-49216"].detail == "peers: hostb; world: closed"


def test_exposure_on_the_labs_recorded_nft_ruleset():
    """The lab's host table (tests/fast/data/practica_nft_ruleset.json): libvirt open to any source."""
    decide = nft_decider((DATA.parent / "practica_nft_ruleset.json").read_text(), "eth0")
    checks = {c.name: c for c in exposure_checks(decide, {"hosta": "198.18.4.11", "hostb": "198.18.4.12"})}
    assert not checks["exposure libvirt TCP 16509"].ok
    assert checks["exposure migration 49152-49216"].ok
    assert checks["exposure migration 49152-49216"].detail.startswith("peers: hosta; world: closed")


def test_no_firewall_means_everything_faces_the_world():
    checks = {c.name: c for c in host_side_checks([], HostOutputs(), {}, {"hostb": "10.0.0.2"})}
    assert not checks["exposure migration 49152-49216"].ok
    assert "no firewall" in checks["exposure migration 49152-49216"].detail
