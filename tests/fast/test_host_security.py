"""`vpd host check security`: the checks over recorded libvirt XML, and the command on test:///default."""
from __future__ import annotations

import json

from vpd.host.security import driver_checks, guest_checks

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
