"""The lab for real: namespaces, daemons, firewall, shared pool, a guest that boots."""
from __future__ import annotations

import socket
import subprocess

import pytest

from vpd.lab import control, hostproc, layout
from vpd.vm.console import ConsoleStream
from vpd.vm.guest_channel import GuestChannel

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab


def test_up_reports_two_hosts_with_daemons(lab):
    names = [h["name"] for h in lab["hosts"]]
    assert names == ["hosta", "hostb"]
    for h in lab["hosts"]:
        assert h["powered"] and h["libvirt_reachable"], h
        assert all(h["daemons"].values()), h
    print(f"\nlab up: {lab['up_seconds']} s")


def test_up_twice_is_a_usage_error(lab):
    proc = vpd("lab", "up")
    assert proc.returncode == 2 and "already up" in proc.stderr


def test_host_list_shows_distinct_fqdns_and_versions(lab):
    hosts = vpd_json("host", "list")["hosts"]
    assert {h["fqdn"] for h in hosts} == {"hosta.vpd.lab", "hostb.vpd.lab"}
    for h in hosts:
        assert h["reachable"] and h["versions_ok"], h
        assert int(h["libvirt_version"].split(".")[0]) >= 11 and int(h["qemu_version"].split(".")[0]) >= 10


def test_each_host_resolves_every_peer(lab):
    state = control.load_state()
    for hs in state.hosts:
        for peer in state.hosts:
            out = hostproc.run_in_host(hs.holder_pid, ["getent", "hosts", peer.fqdn]).stdout
            assert out.split()[0] == peer.address


def test_shared_pool_is_the_same_directory_on_every_host(lab, lab_inventory, conns):
    token = f"token-{socket.gethostname()}"
    state = control.load_state()
    writer, reader = state.hosts
    hostproc.run_in_host(writer.holder_pid, ["sh", "-c", f"echo {token} > {layout.SHARED_MOUNT}/proof"])
    seen = hostproc.run_in_host(reader.holder_pid, ["cat", f"{layout.SHARED_MOUNT}/proof"]).stdout.strip()
    assert seen == token
    for host in lab_inventory.hosts:
        pool = conns.get(host).storagePoolLookupByName(layout.SHARED_POOL)
        assert pool.isActive()


def test_firewall_is_closed_except_ssh_and_libvirt(lab, lab_inventory):
    from vpd.hostprep.firewall import probe_ports

    states = probe_ports(lab_inventory.get("hosta"), lab_inventory.get("hostb").address, [22, 16509, 49152])
    assert states == {22: "open", 16509: "open", 49152: "filtered"}


def test_ssh_with_the_lab_admin_key(lab):
    status = control.status()
    host = status["hosts"][1]
    proc = subprocess.run(
        ["ssh", "-i", status["admin_key"], "-o", f"UserKnownHostsFile={control.paths.lab_dir() / 'known_hosts'}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         f"root@{host['address']}", "hostname"], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == host["fqdn"]


def test_guest_boots_and_prints_its_marker(lab, lab_inventory, conns):
    created = vpd_json("vm", "create", "mvp4", "--host", "hosta", "--lab-guest",
                       "--disk", "size=64M,pool=CONT_VOL_COMP", "--start", "--wait-boot")
    assert created["domain_type"] == "qemu"  # KVM does not boot here: the probe must say so
    assert created["disk"].startswith(layout.SHARED_MOUNT)
    assert created["boot_id"]
    print(f"\nguest boot (start to marker): {created['boot_seconds']} s")
    vms = vpd_json("vm", "list", "--host", "hosta")["hosts"][0]["vms"]
    assert [(v["name"], v["state"]) for v in vms] == [("mvp4", "running")]
    # The guest's command channel answers on its second serial port.
    dom = conns.get(lab_inventory.get("hosta")).lookupByName("mvp4")
    with ConsoleStream(dom, "serial1") as stream:
        channel = GuestChannel(stream.send, stream.recv)
        channel.wait_ready(timeout=20)
        assert channel.boot_id() == created["boot_id"]
        assert "sda" in channel.disks()


def test_creating_the_same_vm_twice_changes_nothing(lab):
    proc = vpd("vm", "create", "mvp4", "--host", "hosta", "--lab-guest", "--disk", "size=64M,pool=CONT_VOL_COMP")
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_host_down_and_up(lab):
    vpd_json("lab", "host-down", "hostb")
    status = vpd_json("lab", "status")
    b = [h for h in status["hosts"] if h["name"] == "hostb"][0]
    assert not b["powered"] and not b["libvirt_reachable"]
    hosts = {h["name"]: h for h in vpd_json("host", "list")["hosts"]}
    assert hosts["hostb"]["reachable"] is False and hosts["hosta"]["reachable"]
    again = vpd("lab", "host-down", "hostb")
    assert again.returncode == 2
    vpd_json("lab", "host-up", "hostb")
    hosts = {h["name"]: h for h in vpd_json("host", "list")["hosts"]}
    assert hosts["hostb"]["reachable"] and hosts["hostb"]["fqdn"] == "hostb.vpd.lab"
