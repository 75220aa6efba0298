"""Bonds inside guests (`vm create ... --bond`, Práctica 8): the request checked per mode by
network/bond.py's rules, the lab guest's kernel argument, the cloud-init network-config v2
(NICs matched by MAC and renamed), the lab guest's initramfs carrying the driver and guest/bond,
and the CLI refusing a bad --bond with exit 2 before reaching any host."""
from __future__ import annotations

import pytest
import yaml

from vpd.core.errors import UsageError
from vpd.vm import guest_bond, guest_image
from vpd.vm.spec import CloudInitRequest, NicRequest, VmRequest

from .conftest import run_vpd

MACS = ["52:54:00:aa:00:01", "52:54:00:aa:00:02", "52:54:00:AA:00:03"]


def test_all_ports_and_the_kernel_argument():
    bond = guest_bond.parse("bond0:mode=1,miimon=50,primary=eth1,ports=all,addr=198.19.48.10/24", 3)
    assert bond.spec.mode == "active-backup" and bond.spec.ports == ("eth0", "eth1", "eth2")
    assert bond.kernel_arg() == ("vpd.bond=bond0:mode=active-backup,miimon=50,primary=eth1,"
                                 "ports=eth0+eth1+eth2,addr=198.19.48.10/24")
    assert " " not in bond.kernel_arg()


def test_lacp_options_reach_the_guest():
    bond = guest_bond.parse("b1:mode=802.3ad,ports=eth1+eth2,xmit-hash-policy=layer3+4,lacp_rate=fast", 3)
    assert bond.kernel_arg() == ("vpd.bond=b1:mode=802.3ad,miimon=100,xmit_hash_policy=layer3+4,lacp_rate=fast,"
                                 "ports=eth1+eth2")


@pytest.mark.parametrize(("text", "nics", "why"), [
    ("bond0:mode=active-backup,ports=all", 1, "at least two NICs"),
    ("bond0", 2, "expected NAME:"),
    ("bond0:ports=all", 2, "mode= is required"),
    ("bond0:mode=fast,ports=all", 2, "unknown bond mode"),
    ("bond0:mode=balance-rr,primary=eth0,ports=all", 2, "--primary applies"),
    ("bond0:mode=active-backup,primary=eth5,ports=all", 2, "not one of the ports"),
    ("bond0:mode=active-backup,ports=eth0+eth3", 2, "not a NIC of the VM"),
    ("bond0:mode=active-backup,ports=eth0", 2, "at least two ports"),
    ("bond0:mode=active-backup,lacp_rate=fast,ports=all", 2, "802.3ad only"),
    ("bond0:mode=active-backup,miimon=0,ports=all", 2, "miimon must be"),
    ("bond0:mode=active-backup,miimon=x,ports=all", 2, "miimon must be"),
    ("bond0:mode=active-backup,ports=all,addr=10.0.0.300/24", 2, "IPv4 address"),
    ("bond0:mode=active-backup,ports=all,addr=198.19.48.10", 2, "prefix"),
    ("bond0:mode=active-backup,ports=all,speed=10", 2, "bad item"),
    ("bond0:mode=active-backup,mode=balance-rr,ports=all", 2, "given twice"),
    ("bad name:mode=active-backup,ports=all", 2, "bond name"),
])
def test_bad_bonds_are_refused(text, nics, why):
    with pytest.raises(UsageError, match=why):
        guest_bond.parse(text, nics)


def test_network_config_matches_nics_by_mac():
    bond = guest_bond.parse("bond0:mode=active-backup,miimon=100,primary=eth0,ports=eth0+eth1,addr=dhcp", 3)
    config = yaml.safe_load(bond.network_config(MACS))
    assert config["version"] == 2
    assert config["ethernets"]["eth0"] == {"match": {"macaddress": MACS[0]}, "set-name": "eth0",
                                           "dhcp4": False, "dhcp6": False}
    # A NIC outside the bond keeps DHCP; MACs are matched lower-case, as the kernel shows them.
    assert config["ethernets"]["eth2"] == {"match": {"macaddress": MACS[2].lower()}, "set-name": "eth2",
                                           "dhcp4": True}
    assert config["bonds"]["bond0"] == {"interfaces": ["eth0", "eth1"], "dhcp4": True, "parameters": {
        "mode": "active-backup", "mii-monitor-interval": 100, "primary": "eth0"}}
    static = guest_bond.parse("bond0:mode=4,ports=all,xmit_hash_policy=layer2+3,lacp_rate=fast,addr=10.1.2.3/24", 2)
    b = yaml.safe_load(static.network_config(MACS[:2]))["bonds"]["bond0"]
    assert b["addresses"] == ["10.1.2.3/24"] and b["dhcp4"] is False
    assert b["parameters"] == {"mode": "802.3ad", "mii-monitor-interval": 100,
                               "transmit-hash-policy": "layer2+3", "lacp-rate": "fast"}


def test_a_request_must_tell_the_guest(tmp_path):
    nets = [NicRequest(network="default"), NicRequest(network="default")]
    with pytest.raises(UsageError, match="needs --lab-guest or --cloud-init"):
        VmRequest(networks=nets, bond="bond0:mode=1,ports=all").guest_bond()
    net_file = tmp_path / "net.yaml"
    net_file.write_text("version: 2\n")
    ci = CloudInitRequest(hostname="g1", network_config_file=str(net_file))
    with pytest.raises(UsageError, match="cannot go with --network-config"):
        VmRequest(networks=nets, cloud_init=ci, bond="bond0:mode=1,ports=all").guest_bond()
    # The seed gets the bond's network-config.
    request = VmRequest(networks=[NicRequest(network="default", mac=m) for m in MACS[:2]],
                        cloud_init=CloudInitRequest(hostname="g1"), bond="bond0:mode=0,ports=all,addr=dhcp",
                        disks=[{"size": "1G"}])
    spec = request.to_spec("g1", network_config=request.guest_bond().network_config(MACS[:2]))
    assert spec.seed is not None and "balance-rr" in (spec.seed.network_config or "")


def test_the_lab_guest_loads_bonding_without_a_default_bond(tmp_path):
    kernel = guest_image.find_guest_kernel()
    order = guest_image._modules_in_load_order(guest_image._modules_dir(kernel), guest_image.GUEST_MODULES)
    names = [guest_image._module_name(p.name) for p in order]
    # Its dependency (tls) comes first, as modules.dep says.
    assert "bonding" in names and all(names.index(d) < names.index("bonding") for d in ("tls",) if d in names)
    assert guest_image.MODULE_PARAMS["bonding"] == "max_bonds=0"
    script = (guest_image.GUEST_SOURCES / "bond").read_text()
    assert "/sys/class/net/bonding_masters" in script


def test_cli_refuses_a_bad_bond_with_exit_2(test_inventory):
    proc = run_vpd("vm", "create", "g1", "--host", "t1", "--lab-guest", "--network", "network=default",
                   "--network", "network=default", "--bond", "bond0:mode=balance-rr,primary=eth0,ports=all",
                   inventory=test_inventory)
    assert proc.returncode == 2 and "--primary applies" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_files_read_in_one_round_trip(tmp_path):
    """guest_files' one-command read, run by a real shell as the guest's channel runs it."""
    import subprocess

    from vpd.vm import guest_files

    (tmp_path / "bond0").write_text("Bonding Mode: fault-tolerance (active-backup)\nweird 'quote'\n")
    paths = [str(tmp_path / "bond0"), str(tmp_path / "missing file")]
    out = subprocess.run(["sh", "-c", guest_files.channel_script(paths)], capture_output=True, text=True).stdout
    files = guest_files.parse_channel_output(out, paths)
    assert files == {paths[0]: "Bonding Mode: fault-tolerance (active-backup)\nweird 'quote'\n", paths[1]: None}


def test_every_nic_gets_a_mac_before_the_network_config_is_written():
    request = VmRequest(networks=[NicRequest(network="default"), NicRequest(network="default", mac=MACS[0]),
                                  NicRequest(network="default")], cloud_init=CloudInitRequest(hostname="g1"),
                        bond="bond0:mode=1,ports=eth0+eth2")
    taken = {MACS[1]}
    filled = request.with_all_macs(taken)
    macs = [n.mac for n in filled.networks]
    assert macs[1] == MACS[0] and all(macs) and len(set(macs)) == 3 and MACS[1] not in macs
    assert request.networks[0].mac is None  # the request itself is left as given
    config = yaml.safe_load(filled.guest_bond().network_config(macs))
    assert [config["ethernets"][f"eth{i}"]["match"]["macaddress"] for i in range(3)] == macs
    assert config["bonds"]["bond0"]["interfaces"] == ["eth0", "eth2"]
