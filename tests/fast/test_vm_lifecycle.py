"""Lifecycle, info, define and templates on libvirt's test driver; bad input changes nothing."""
from __future__ import annotations

import gc
import json

import libvirt
import pytest
from lxml import etree

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.vm import lifecycle, template
from vpd.vm.clone import clone_vm
from vpd.vm.inventory import find_domain, is_template
from vpd.xml.domain import lab_guest_domain
from vpd.xml.pool import dir_pool
from vpd.xml.volume import volume

from .conftest import run_vpd

HOST = Host(name="t", uri="test:///default")


@pytest.fixture
def conn():
    # test:///default keeps its state while any handle to it lives, and a previous test's
    # exception traceback (a reference cycle) can hold a domain handle until collected.
    gc.collect()
    c = libvirt.open("test:///default")
    pool = c.storagePoolCreateXML(dir_pool("images", "/images").to_xml_string(), 0)
    vol = pool.createXML(volume("vm1.qcow2", 64 * 2**20).to_xml_string(), 0)
    c.defineXML(lab_guest_domain("vm1", kernel="/k", initrd="/i", cmdline="x", disk_path=vol.path(),
                                 domain_type="test", macs={"52:54:00:00:00:01": "default"}).to_xml_string())
    yield c
    c.close()


def _state(conn, name):
    return conn.lookupByName(name).state()[0]


def test_shutdown_waits_until_shut_off(conn):
    dom = conn.lookupByName("vm1")
    dom.create()
    result = lifecycle.shutdown(dom, timeout=5)
    assert result["state"] == "shut off" and not result["forced"] and not dom.isActive()
    with pytest.raises(VpdError, match="not running"):
        lifecycle.shutdown(dom)


class _DeafGuest:
    """The real domain, but its guest ignores ACPI (no acpid): the shutdown request does nothing."""

    def __init__(self, dom):
        self._dom = dom

    def shutdown(self):
        pass

    def __getattr__(self, name):
        return getattr(self._dom, name)


def test_shutdown_timeout_fails_clearly_unless_forced(conn):
    dom = conn.lookupByName("vm1")
    dom.create()
    with pytest.raises(VpdError, match="did not shut down within 0.3 s") as err:
        lifecycle.shutdown(_DeafGuest(dom), timeout=0.3)
    assert err.value.exit_code == 1 and dom.isActive()
    result = lifecycle.shutdown(_DeafGuest(dom), timeout=0.3, force=True)
    assert result["forced"] and not dom.isActive()


@pytest.mark.parametrize("timeout", [0, -1, 4000])
def test_shutdown_timeout_out_of_range_changes_nothing(conn, timeout):
    dom = conn.lookupByName("vm1")
    dom.create()
    with pytest.raises(UsageError):
        lifecycle.shutdown(dom, timeout=timeout)
    assert dom.isActive()


def test_pause_resume_reboot(conn):
    dom = conn.lookupByName("vm1")
    with pytest.raises(VpdError, match="not running"):
        lifecycle.pause(dom)
    dom.create()
    with pytest.raises(VpdError, match="not paused"):
        lifecycle.resume(dom)
    assert lifecycle.pause(dom) == {"state": "paused"}
    assert lifecycle.resume(dom) == {"state": "running"}
    assert lifecycle.reboot(dom) == {"rebooting": True}


def test_console_log_needs_a_running_guest(conn):
    with pytest.raises(VpdError, match="not running"):
        lifecycle.console_log(conn.lookupByName("vm1"), HOST)


def test_autostart_on_and_off(conn):
    dom = conn.lookupByName("vm1")
    assert lifecycle.set_autostart(dom) == {"autostart": True}
    assert lifecycle.set_autostart(dom, disable=True) == {"autostart": False}


def test_info_lists_disks_and_interfaces(conn):
    data = lifecycle.info(conn.lookupByName("vm1"))
    assert data["state"] == "shut off" and data["vcpus"] == 1 and data["memory_mib"] == 128
    assert data["persistent"] and not data["autostart"] and not data["template"]
    assert data["disks"] == [{"target": "hda", "device": "disk", "path": "/images/vm1.qcow2", "format": "qcow2"}]
    assert [(i["mac"], i["source"]) for i in data["interfaces"]] == [("52:54:00:00:00:01", "default")]
    # a stopped guest has no label; the host's model is still told
    assert data["security"] == {"model": "testSecurity", "doi": None, "label": None, "enforcing": None}


def _xml(name, uuid=None):
    return lab_guest_domain(name, kernel="/k", initrd="/i", cmdline="x", domain_type="test",
                            uuid=uuid).to_xml_string()


def test_define_new_and_replace_keeps_uuid(conn):
    assert lifecycle.define(conn, HOST, _xml("fresh"))["replaced"] is False
    uuid = conn.lookupByName("vm1").UUIDString()
    with pytest.raises(UsageError, match="already exists"):
        lifecycle.define(conn, HOST, _xml("vm1"))
    result = lifecycle.define(conn, HOST, _xml("vm1").replace("<vcpu>1</vcpu>", "<vcpu>2</vcpu>"), replace=True)
    assert result == {"name": "vm1", "uuid": uuid, "replaced": True}
    assert conn.lookupByName("vm1").info()[3] == 2


@pytest.mark.parametrize("xml,match", [
    ("<domain", "not a valid domain"),
    ("<domain type='test'><name>x</name></domain>", "not a valid domain"),
    ("<domain type='test'><name>a b</name><memory>131072</memory><vcpu>1</vcpu></domain>", "invalid domain name"),
])
def test_define_refuses_bad_xml_and_changes_nothing(conn, xml, match):
    before = sorted(conn.listDefinedDomains())
    with pytest.raises(UsageError, match=match):
        lifecycle.define(conn, HOST, xml)
    assert sorted(conn.listDefinedDomains()) == before


@pytest.mark.parametrize("xml,fields", [
    ("<domain type='test'><name>x</name></domain>", ["memory: field required", "vcpu: field required"]),
    ("<domain type='test'><memory>131072</memory><vcpu>1</vcpu></domain>", ["name: field required"]),
    ("<domain type='test'><name>x</name><memory>lots</memory><vcpu>1</vcpu></domain>", ["memory/value"]),
    ("<domain type='test'><name>x</name><memory>1</memory><vcpu>1</vcpu><devices><disk type='file'/></devices>"
     "</domain>", ["devices/disks[0]/target: field required"]),
])
def test_define_names_the_missing_field(conn, xml, fields):
    with pytest.raises(UsageError) as err:
        lifecycle.define(conn, HOST, xml)
    for field in fields:
        assert field in err.value.message


def test_vm_define_cli_names_the_missing_field(test_inventory, tmp_path):
    path = tmp_path / "d.xml"
    path.write_text("<domain type='test'><name>x</name><vcpu>1</vcpu></domain>")
    proc = run_vpd("vm", "define", str(path), "--host", "t1", inventory=test_inventory)
    assert proc.returncode == 2 and "memory: field required" in proc.stderr, proc.stderr


def test_define_replace_refuses_another_uuid(conn):
    with pytest.raises(UsageError, match="UUID"):
        lifecycle.define(conn, HOST, _xml("vm1", uuid="11111111-2222-3333-4444-555555555555"), replace=True)


def test_template_cannot_start_and_clones_are_plain_vms(conn):
    dom = conn.lookupByName("vm1")
    dom.setAutostart(1)
    assert template.seal(dom) == {"template": "vm1", "autostart_disabled": True}
    assert is_template(dom) and not dom.autostart()
    with pytest.raises(UsageError, match="is a template"):
        lifecycle.start(dom)
    with pytest.raises(UsageError, match="template"):
        lifecycle.set_autostart(dom)
    with pytest.raises(UsageError, match="already"):
        template.seal(dom)
    clone_vm(conn, HOST, "vm1", "full")
    clone_vm(conn, HOST, "vm1", "thin", linked=True)
    assert not is_template(conn.lookupByName("full"))
    lifecycle.start(conn.lookupByName("full"))
    infos = template._templates(HOST, conn)
    assert [(t.name, t.disks, t.linked_clones) for t in infos] == [("vm1", ["/images/vm1.qcow2"],
                                                                    ["/images/thin.qcow2"])]
    assert template.unseal(dom) == {"vm": "vm1", "linked_clones": ["/images/thin.qcow2"]}
    assert not is_template(dom)
    # Unsealed, but its disk is still the base of "thin": starting stays refused.
    with pytest.raises(UsageError, match="linked clones"):
        lifecycle.start(dom)


def test_running_vm_cannot_become_a_template(conn):
    dom = conn.lookupByName("vm1")
    dom.create()
    with pytest.raises(UsageError, match="running"):
        template.seal(dom)
    assert not is_template(dom)
    with pytest.raises(UsageError, match="not a template"):
        template.unseal(dom)


# The CLI: each run opens its own test:///default, where only the running domain "test" exists.

def test_cli_info_dumpxml_pause_resume(test_inventory):
    info = json.loads(run_vpd("vm", "info", "test", "--host", "t1", "--json", inventory=test_inventory,
                              check_rc=0).stdout)
    assert info["state"] == "running" and info["host"] == "t1"
    # as `virsh dominfo` shows it: the test driver labels a running guest libvirt-test, enforced
    assert info["security"] == {"model": "testSecurity", "doi": None, "label": "libvirt-test", "enforcing": True}
    shown = run_vpd("vm", "info", "test", "--host", "t1", inventory=test_inventory, check_rc=0).stdout
    assert "security model  testSecurity" in shown and "security label  libvirt-test (enforcing)" in shown
    xml = run_vpd("vm", "dumpxml", "test", "--host", "t1", inventory=test_inventory, check_rc=0).stdout
    assert etree.fromstring(xml.encode()).findtext("name") == "test"
    paused = json.loads(run_vpd("vm", "pause", "test", "--host", "t1", "--json", inventory=test_inventory,
                                check_rc=0).stdout)
    assert paused["result"] == {"state": "paused"}
    run_vpd("vm", "resume", "test", "--host", "t1", inventory=test_inventory, check_rc=1)
    run_vpd("vm", "shutdown", "test", "--host", "t1", "--timeout", "5", inventory=test_inventory, check_rc=0)


def test_cli_define(test_inventory, tmp_path):
    good = tmp_path / "good.xml"
    good.write_text(_xml("fresh"))
    out = json.loads(run_vpd("vm", "define", str(good), "--host", "t1", "--json", inventory=test_inventory,
                             check_rc=0).stdout)
    assert out["name"] == "fresh" and not out["replaced"]
    taken = tmp_path / "taken.xml"
    taken.write_text(_xml("test"))
    assert "already exists" in run_vpd("vm", "define", str(taken), "--host", "t1", inventory=test_inventory,
                                       check_rc=2).stderr
    bad = tmp_path / "bad.xml"
    bad.write_text("<domain>")
    run_vpd("vm", "define", str(bad), "--host", "t1", inventory=test_inventory, check_rc=2)


@pytest.mark.parametrize("args", [
    ("vm", "shutdown", "test", "--host", "t1", "--timeout", "0"),
    ("vm", "info", "nosuch", "--host", "t1"),
    ("vm", "clone", "test", "c", "--host", "t1", "--count", "0"),
    ("vm", "clone", "test", "c", "--host", "t1", "--count", "2", "--mac", "52:54:00:00:00:09"),
    ("vm", "clone", "test", "c", "--host", "t1", "--mac", "01:00:5e:00:00:01"),
    ("vm", "clone", "test", "c", "--host", "t1", "--linked"),  # "test" is running
    ("vm", "create", "c", "--host", "t1", "--template", "test"),  # not a template
    ("vm", "create", "c", "--host", "t1", "--template", "test", "--memory", "256"),
    ("vm", "create", "c", "--host", "t1", "--lab-guest", "--linked"),
    ("template", "create", "test", "--host", "t1"),  # running
    ("template", "unseal", "test", "--host", "t1"),
])
def test_cli_bad_input_exits_2(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_cli_template_list(test_inventory):
    out = json.loads(run_vpd("template", "list", "--json", inventory=test_inventory, check_rc=0).stdout)
    assert out == {"templates": [], "errors": {}}


def test_find_domain_finds_by_name_and_names_the_host_when_absent(conn):
    from vpd.core.errors import NotFound

    assert find_domain(conn, HOST, "vm1").name() == "vm1"
    with pytest.raises(NotFound, match=f"no VM named 'ghost' on {HOST.name}"):
        find_domain(conn, HOST, "ghost")
    with pytest.raises(UsageError):
        find_domain(conn, HOST, "not a name")


def test_listing_tells_persistent_from_transient_vms(conn):
    """`list_vms` learns which VMs are transient in one call per host (not one per VM)."""
    from vpd.connect.libvirt_conn import Connections
    from vpd.vm.inventory import list_vms

    conn.createXML(lab_guest_domain("tvm", kernel="/k", initrd="/i", cmdline="x", domain_type="test",
                                    macs={"52:54:00:00:00:09": "default"}).to_xml_string(), 0)
    try:
        with Connections() as conns:
            [listed] = list_vms(conns, [HOST])
        by_name = {v.name: v for v in listed.vms}
        assert by_name["vm1"].persistent and not by_name["tvm"].persistent
        assert by_name["tvm"].state == "running"
    finally:
        conn.lookupByName("tvm").destroy()


def test_undefine_passes_only_the_flags_the_vm_needs(conn):
    """A driver that keeps no NVRAM or checkpoints (libvirt's test driver) refuses those flags, so a
    plain VM is undefined with none, and one with snapshots with their metadata flag only."""
    plain = conn.defineXML("<domain type='test'><name>plain</name><memory unit='MiB'>64</memory>"
                           "<os><type>hvm</type></os></domain>")
    assert lifecycle.undefine_flags(plain) == 0
    lifecycle.undefine(plain)
    assert "plain" not in conn.listDefinedDomains()
    snapped = conn.defineXML("<domain type='test'><name>snapped</name><memory unit='MiB'>64</memory>"
                             "<os><type>hvm</type></os></domain>")
    snapped.snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
    assert lifecycle.undefine_flags(snapped) == libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    lifecycle.undefine(snapped)
    assert "snapped" not in conn.listDefinedDomains()
