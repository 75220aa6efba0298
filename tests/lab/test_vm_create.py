"""`vpd vm create` on a lab host with real guests: an imported foreign image, a spec file with
two disks and a NIC, the serial-log history, and `vm edit`."""
from __future__ import annotations

import os
import subprocess

import pytest

from vpd.core import paths
from vpd.lab import hostproc, layout
from vpd.vm.console import serial_log_path
from vpd.xml.network import Network, NetworkBridge

from .conftest import VPD, vpd, vpd_json
from .guest_disk import channel
from .migration_helpers import connect, holder

pytestmark = pytest.mark.lab

MADE = [("hostb", "cimp"), ("hosta", "cspec")]


@pytest.fixture(scope="module")
def made(lab):
    yield
    for host, name in MADE:
        vpd("vm", "destroy", name, "--host", host)
        vpd("vm", "undefine", name, "--host", host, "--remove-storage")


def test_import_a_vmdk_image_and_boot_it(made, tmp_path):
    # A VMware-format copy of a lab guest's disk, outside any pool: vpd converts it into the pool.
    vpd_json("vm", "create", "cimp", "--host", "hostb", "--lab-guest", "--disk", f"size=16M,pool={layout.SHARED_POOL}")
    image = tmp_path / "disk.vmdk"
    # The shared pool's directory as the machine (not a lab host) sees it.
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", str(paths.lab_dir() / "shared" / "cimp.qcow2"), str(image)],
                   check=True)
    vpd_json("vm", "undefine", "cimp", "--host", "hostb", "--remove-storage")
    # What a deleted VM of that name wrote: virtlogd appends, so a new VM must start the file afresh.
    stale = hostproc.host_path(holder("hostb"), serial_log_path("cimp"))
    stale.write_text("STALE-OLD-VM console output\n")

    created = vpd_json("vm", "create", "cimp", "--host", "hostb", "--lab-guest",
                       "--disk", f"import={image},pool={layout.SHARED_POOL}", "--start", "--wait-boot")
    assert created["disks"] == [f"{layout.SHARED_MOUNT}/cimp.qcow2"] and created["boot_id"]
    history = vpd_json("vm", "console", "cimp", "--host", "hostb", "--log")
    assert history["source"].endswith("cimp-serial0.log")
    assert f"VPD-BOOT-MARKER bootid={created['boot_id']}" in history["output"]
    assert "STALE-OLD-VM" not in history["output"]


def test_spec_file_with_two_disks_and_a_nic(made, tmp_path, conns, lab_inventory):
    # An isolated network (no addresses, so no DHCP server) for the NIC to join.
    net = Network(name="vpdiso", bridge=NetworkBridge(name="vpdiso0"))
    conns.get(lab_inventory.get("hosta")).networkCreateXML(net.to_xml_string())
    try:
        spec = tmp_path / "vm.toml"
        spec.write_text(f'name = "cspec"\nhost = "hosta"\nmemory = 160\nlab_guest = true\nstart = true\n'
                        f'wait_boot = true\n'
                        f'[[disks]]\nsize = "32M"\npool = "{layout.SHARED_POOL}"\n'
                        f'[[disks]]\nsize = "16M"\npool = "{layout.SHARED_POOL}"\nformat = "raw"\n'
                        f'[[networks]]\nnetwork = "vpdiso"\nmac = "52:54:00:76:70:01"\n')
        created = vpd_json("vm", "create", "--spec", str(spec))
        assert created["macs"] == ["52:54:00:76:70:01"] and len(created["disks"]) == 2
        with channel(conns, lab_inventory, "cspec") as ch:
            assert {"sda", "sdb"} <= set(ch.disks())
            assert ch.run("cat /sys/class/net/eth0/address").output.strip() == "52:54:00:76:70:01"

        # The same MAC again is refused before anything is made.
        clash = vpd("vm", "create", "cspec2", "--host", "hosta", "--lab-guest", "--network",
                    "network=vpdiso,mac=52:54:00:76:70:01")
        assert clash.returncode == 2 and "already in use" in clash.stderr
        vpd_json("vm", "destroy", "cspec", "--host", "hosta")
    finally:
        conns.get(lab_inventory.get("hosta")).networkLookupByName("vpdiso").destroy()


def test_edit_applies_a_valid_change_only(made):
    env = dict(os.environ, EDITOR="sed -i s/163840/262144/g")
    done = subprocess.run([*VPD, "vm", "edit", "cspec", "--host", "hosta", "--json"], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert vpd_json("vm", "info", "cspec", "--host", "hosta")["memory_mib"] == 256
    env["EDITOR"] = "sed -i s/<vcpu/<vcpux/"
    bad = subprocess.run([*VPD, "vm", "edit", "cspec", "--host", "hosta"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 2 and "your edit is kept" in bad.stderr


def test_a_uefi_clone_gets_its_own_copy_of_the_nvram(lab):
    hosta = connect("hosta")
    nvram = hostproc.host_path(holder("hosta"), "/var/lib/libvirt/qemu/nvram")
    try:
        vpd_json("vm", "create", "cuefi", "--host", "hosta", "--boot", "uefi",
                 "--disk", f"size=16M,pool={layout.SHARED_POOL}")
        # libvirt writes the VM's NVRAM from the firmware's template when it first starts it.
        hosta.lookupByName("cuefi").create()
        hosta.lookupByName("cuefi").destroy()
        cloned = vpd_json("vm", "clone", "cuefi", "cuefi2", "--host", "hosta")
        assert cloned["nvram"] == "/var/lib/libvirt/qemu/nvram/cuefi2_VARS.fd"
        assert (nvram / "cuefi2_VARS.fd").read_bytes() == (nvram / "cuefi_VARS.fd").read_bytes()
        hosta.lookupByName("cuefi2").create()  # QEMU takes the copy as its firmware's variable store
        hosta.lookupByName("cuefi2").destroy()
        vpd_json("vm", "undefine", "cuefi2", "--host", "hosta", "--remove-storage")
        assert not (nvram / "cuefi2_VARS.fd").exists() and (nvram / "cuefi_VARS.fd").exists()
    finally:
        for dom in hosta.listAllDomains():
            if dom.name() in ("cuefi2", "cuefi"):
                if dom.isActive():
                    dom.destroy()
                vpd("vm", "undefine", dom.name(), "--host", "hosta", "--remove-storage")
