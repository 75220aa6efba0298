"""Customised clones: per-clone seeds (hostnames and addresses numbered with --count, network-config
v2 matched by MAC), addresses checked against the network before anything is made, vpd's address
metadata seen inventory-wide, and a failed seed upload leaves neither clone nor volume."""
from __future__ import annotations

import gc
import ipaddress
import subprocess
from pathlib import Path

import libvirt
import pytest
import yaml
from lxml import etree

from vpd.connect.inventory import Host
from vpd.core.errors import UsageError
from vpd.vm import cloudinit, customize
from vpd.vm.clone import clone_vms
from vpd.vm.identity import _host_identities
from vpd.xml.domain import lab_guest_domain
from vpd.xml.pool import dir_pool
from vpd.xml.volume import volume

from .conftest import run_vpd

HOST = Host(name="t", uri="test:///default")
NET = """<network><name>lan</name><bridge name='vbr9'/>
  <ip address='198.19.6.1' prefix='24'><dhcp><range start='198.19.6.100' end='198.19.6.200'/>
  <host mac='52:54:00:00:00:99' ip='198.19.6.50'/></dhcp></ip></network>"""


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub")


def test_count_numbers_hostnames_and_addresses(key: Path):
    plan = customize.plan(["web-1", "web-2", "web-3"], hostname="web.lab.example", ip="198.19.6.10/24",
                          gateway="198.19.6.1", dns=["198.19.6.1"], user="alice", ssh_key_file=str(key))
    assert plan is not None
    assert [c.hostname for c in plan.values()] == ["web-1.lab.example", "web-2.lab.example", "web-3.lab.example"]
    assert [str(c.ip) for c in plan.values()] == ["198.19.6.10/24", "198.19.6.11/24", "198.19.6.12/24"]
    # Without --hostname each clone is called as its VM; a single clone keeps the hostname given.
    assert [c.hostname for c in customize.plan(["a-1", "a-2"], user="bob").values()] == ["a-1", "a-2"]
    assert customize.plan(["one"], hostname="db")["one"].hostname == "db"
    assert customize.plan(["x"]) is None


@pytest.mark.parametrize("kw,match", [
    ({"ip": "198.19.6.253/24"}, "do not fit in 198.19.6.0/24"),
    ({"ip": "198.19.6.10"}, "prefix length"),
    ({"ip": "10.0.0.300/24"}, "not an IPv4 address"),
    ({"ip": "198.19.6.10/31"}, "no room"),
    ({"gateway": "198.19.6.1"}, "go with --ip"),
    ({"ip": "198.19.6.10/24", "gateway": "10.1.1.1"}, "not in 198.19.6.0/24"),
    ({"ip": "198.19.6.10/24", "gateway": "198.19.6.11"}, "gateway's address"),
    ({"ip": "198.19.6.10/24", "dns": ["x"]}, "--dns 'x' is not"),
    ({"hostname": "bad_host"}, "not a valid host name"),
    ({"user": "Bad User"}, "not a valid Linux user"),
])
def test_bad_customisations_are_usage_errors(kw, match):
    with pytest.raises(UsageError, match=match):
        customize.plan(["c-1", "c-2", "c-3"], **kw)


def test_seed_matches_the_nic_by_mac_and_has_a_new_instance_id(key: Path):
    c = customize.plan(["c1"], hostname="c1", ip="198.19.6.10/24", gateway="198.19.6.1", dns=["198.19.6.1"],
                       user="alice", ssh_key_file=str(key))["c1"]
    seed = c.seed("c1", "52:54:00:12:34:56")
    label, files = cloudinit.read_iso(cloudinit.build_iso(seed))
    assert label == "cidata"
    net = yaml.safe_load(files["network-config"])
    nic = net["ethernets"]["eth0"]
    assert net["version"] == 2 and nic["match"] == {"macaddress": "52:54:00:12:34:56"}
    assert (nic["addresses"], nic["gateway4"], nic["nameservers"]) == (["198.19.6.10/24"], "198.19.6.1",
                                                                        {"addresses": ["198.19.6.1"]})
    user = yaml.safe_load(files["user-data"])
    assert user["hostname"] == "c1" and user["users"][1]["ssh_authorized_keys"] == [key.read_text().strip()]
    again = yaml.safe_load(c.seed("c1", "52:54:00:12:34:56").meta_data)
    assert yaml.safe_load(files["meta-data"])["instance-id"] != again["instance-id"]
    assert customize.plan(["c2"], hostname="c2")["c2"].network_config("52:54:00:00:00:01") is None  # DHCP


def test_addresses_are_checked_against_the_network_and_vpds_clones():
    facts = customize.network_facts("lan", NET)
    assert (str(facts.subnet), str(facts.own), facts.reserved) == ("198.19.6.0/24", "198.19.6.1",
                                                                  (ipaddress.IPv4Address("198.19.6.50"),))

    def check(ip: str, leased=None, taken=None):
        return customize.check_addresses(customize.plan(["v"], ip=ip), facts, leased or {}, taken or {})

    assert check("198.19.6.10/24") == []
    for ip, match in [("198.19.7.10/24", "not in network lan's subnet"), ("198.19.6.10/25", "not in network"),
                      ("198.19.6.1/24", "host's own address"), ("198.19.6.150/24", "DHCP range"),
                      ("198.19.6.50/24", "reserved")]:
        with pytest.raises(UsageError, match=match):
            check(ip)
    with pytest.raises(UsageError, match="leased to"):
        check("198.19.6.20/24", leased={"198.19.6.20": "x (DHCP)"})
    with pytest.raises(UsageError, match="already the address of VM hb/old"):
        check("198.19.6.21/24", taken={"198.19.6.21": "hb/old"})
    notes = customize.check_addresses(customize.plan(["v"], ip="10.0.0.5/24"), None, {}, {})
    assert "does not know" in notes[0]


@pytest.fixture
def conn():
    gc.collect()
    c = libvirt.open("test:///default")
    pool = c.storagePoolCreateXML(dir_pool("images", "/images").to_xml_string(), 0)
    vol = pool.createXML(volume("src.qcow2", 64 * 2**20).to_xml_string(), 0)
    c.defineXML(lab_guest_domain("src", kernel="/k", initrd="/i", cmdline="x", disk_path=vol.path(),
                                 domain_type="test", macs={"52:54:00:00:00:01": "default"}).to_xml_string())
    yield c
    c.close()


def test_a_failed_seed_upload_leaves_no_clone_and_no_volume(conn):
    """The test driver cannot upload into volumes: the clones, their disks and seeds all go."""
    plan = customize.plan(["s-1", "s-2"], hostname="s")
    with pytest.raises(libvirt.libvirtError):
        clone_vms(conn, HOST, "src", ["s-1", "s-2"], linked=True, customs=plan)
    assert conn.storagePoolLookupByName("images").listVolumes() == ["src.qcow2"]
    assert conn.listDefinedDomains() == ["src"]


def test_a_leftover_seed_volume_is_refused_before_anything_is_made(conn):
    conn.storagePoolLookupByName("images").createXML(volume("s-cidata.iso", 2**16, fmt="raw").to_xml_string(), 0)
    with pytest.raises(UsageError, match="s-cidata.iso already exists"):
        clone_vms(conn, HOST, "src", ["s"], customs=customize.plan(["s"], hostname="s"))
    assert sorted(conn.storagePoolLookupByName("images").listVolumes()) == ["s-cidata.iso", "src.qcow2"]


def test_the_address_metadata_counts_as_taken(conn):
    dom = conn.lookupByName("src")
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    customize.address_element(ipaddress.IPv4Interface("198.19.6.33/24")), "vpd",
                    customize.ADDRESS_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    found = {name: addresses for name, _u, _m, _d, addresses in _host_identities(conn)}
    assert found["src"] == ["198.19.6.33"]
    assert etree.fromstring(dom.XMLDesc(0).encode()).find("metadata") is not None


@pytest.mark.parametrize("args,match", [
    (["vm", "clone", "a", "b", "--gateway", "198.19.6.1"], "go with --ip"),
    (["vm", "clone", "a", "b", "--ip", "198.19.6.10"], "prefix length"),
    (["vm", "clone", "a", "b", "--count", "300", "--ip", "198.19.6.10/24"], "out of range"),
    (["vm", "create", "a", "--host", "t1", "--lab-guest", "--hostname", "h"], "go with --template"),
    (["vm", "create", "a", "--host", "t1", "--template", "t", "--ssh-key", "/nonexistent.pub"], "cannot read SSH key"),
])
def test_cli_refusals(test_inventory, args, match):
    proc = run_vpd(*args, inventory=test_inventory, check_rc=2)
    assert match in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
