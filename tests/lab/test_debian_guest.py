"""The Debian test guest (issue 14): vpd's minimal Debian 12 boots on a lab host under TCG and
cloud-init gives it the hostname, user and key asked for; then the QEMU guest agent and `vm ssh`
on it (cloud-init user and key, qemu-ga): vm ip and vm exec through the agent, vm fs, a quiesced
snapshot and a quiesced backup (thawed after, Ctrl-C included), what migration validation asks
the agent, and `vm ssh -- hostname` through the host with the host key recorded from the first
boot's console. One guest for the whole module (the `debian_guest` fixture)."""
from __future__ import annotations

import ipaddress
import json
import posixpath
import signal
import subprocess
import sys
import time

import libvirt
import pytest

from vpd.migration import validate
from vpd.vm import agent, guest_ssh
from vpd.vm.inventory import volume_by_path
from vpd.xml.domain import Domain

from .conftest import vpd, vpd_json

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def deb(debian_guest):
    return debian_guest


def test_cloud_init_gives_hostname_user_and_key(debian_guest):
    proc = debian_guest.ssh("hostname", "-f")
    assert proc.returncode == 0 and proc.stdout.strip() == debian_guest.hostname, proc.stderr
    status = debian_guest.ssh("cloud-init", "status", "--wait", timeout=180)
    assert "status: done" in status.stdout, (status.stdout, status.stderr)
    # The image was sealed: the guest made its own identity at first boot.
    ids = debian_guest.ssh("cat", "/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key.pub")
    machine_id, host_key = ids.stdout.split("\n")[:2]
    assert len(machine_id) == 32 and host_key.startswith("ssh-ed25519 ")
    sudo = debian_guest.ssh("sudo", "-n", "id", "-u")
    assert sudo.stdout.strip() == "0", sudo.stderr


def _dom(conns, lab_inventory, deb):
    return conns.get(lab_inventory.get(deb.host)).lookupByName(deb.name)


def test_ip_exec_and_fs_through_the_agent(deb):
    found = vpd_json("vm", "ip", deb.name)
    assert found["source"] == "agent", found
    first = found["addresses"][0]
    assert first["vm_nic"] and first["family"] == "ipv4" and ipaddress.ip_address(first["address"])

    proc = vpd("vm", "exec", deb.name, "--json", "--", "hostname", "-f")  # --json before the guest's argv
    assert proc.returncode == 0, proc.stdout
    ran = json.loads(proc.stdout)
    assert (ran["exit_code"], ran["stdout"].strip()) == (0, deb.hostname)
    # Exactly this argv (no shell in between), and its exit code is vpd's.
    failed = vpd("vm", "exec", deb.name, "--host", deb.host, "--", "sh", "-c", 'echo "$1" >&2; exit 3', "sh", "a b;c")
    assert failed.returncode == 3 and failed.stderr == "a b;c\n", failed.stderr

    filesystems = {f["mountpoint"]: f for f in vpd_json("vm", "fs", deb.name)["filesystems"]}
    root = filesystems["/"]
    assert root["type"] == "ext4" and 0 < root["used_bytes"] < root["total_bytes"]


def test_what_migration_validation_asks_the_agent(deb, conns, lab_inventory):
    probe = validate.guest_probe(_dom(conns, lab_inventory, deb))
    assert probe["source"] == "agent" and len(probe["boot_id"]) == 36 and probe["uptime"] > 0
    assert "/" in {f["mountpoint"] for f in probe["filesystems"]}


def test_quiesced_snapshot_and_backup_leave_the_guest_thawed(deb, conns, lab_inventory, tmp_path):
    dom = _dom(conns, lab_inventory, deb)
    ga = agent.GuestAgent(dom)
    taken = vpd_json("snapshot", "create", deb.name, "q1", "--quiesce")
    try:
        assert (taken["kind"], taken["quiesced"], taken["memory"]) == ("external", True, False)
        assert ga.command("guest-fsfreeze-status") == "thawed"
    finally:
        vpd_json("snapshot", "delete", deb.name, "q1")

    root = "/var/lib/libvirt/images/vpd-agent-backups"
    made = vpd_json("backup", deb.name, "--to", root, "--quiesce", timeout=600)
    try:
        assert made["quiesced"] and made["method"] == "backup-api"
        assert ga.command("guest-fsfreeze-status") == "thawed"
        assert posixpath.dirname(made["path"]) == posixpath.join(root, deb.name)
    finally:
        vpd("vm", "exec", deb.name, "--", "true")  # the guest still writes
        for cp in dom.listAllCheckpoints(0):
            cp.delete(0)
        from vpd.connect.hostfiles import HostFiles

        HostFiles(lab_inventory.get(deb.host)).remove_tree(root)

    # Interrupted while frozen: thawed all the same.
    with pytest.raises(KeyboardInterrupt):
        with agent.frozen(dom) as count:
            assert count >= 1 and ga.command("guest-fsfreeze-status") == "frozen"
            raise KeyboardInterrupt
    assert ga.command("guest-fsfreeze-status") == "thawed"


def test_a_vpd_killed_while_the_guest_is_frozen_leaves_recovery_a_thaw(deb, conns, lab_inventory):
    """SIGKILL between the freeze and its thaw (nothing in the process runs): the journaled freeze
    makes `vpd recover` ask the agent and thaw the guest."""
    dom = _dom(conns, lab_inventory, deb)
    ga = agent.GuestAgent(dom)
    code = ("import os, signal, sys\nfrom vpd.ops import Operation, Session\nfrom vpd.vm import agent\n"
            "s = Session()\nh = s.host(sys.argv[1])\nd = s.connection(h).lookupByName(sys.argv[2])\n"
            "with Operation(s, 'backup', target=sys.argv[2]):\n"
            "    with agent.frozen(d, h.name):\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, deb.host, deb.name], capture_output=True, text=True,
                          timeout=120)
    try:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert ga.command("guest-fsfreeze-status") == "frozen"
        out = vpd_json("recover")
        [thawed] = [o for e in out["entries"] for o in e["objects"] if o["kind"] == "freeze"]
        assert (thawed["name"], thawed["action"], thawed["done"]) == (deb.name, "thaw", True), out
        assert ga.command("guest-fsfreeze-status") == "thawed"
    finally:
        if ga.command("guest-fsfreeze-status") == "frozen":
            agent.thaw(dom)


def test_ssh_runs_hostname_as_the_cloud_init_user_checking_the_first_boot_host_key(deb, conns, lab_inventory):
    # cloud-init prints the host keys in its last stage, which may end after SSH already answers.
    deadline = time.monotonic() + 300
    while "-----END SSH HOST KEY KEYS-----" not in vpd_json("vm", "console", deb.name, "--log")["output"]:
        assert time.monotonic() < deadline, "cloud-init printed no host keys on the console"
        time.sleep(2)
    proc = vpd("vm", "ssh", deb.name, "--", "hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == deb.hostname.split(".")[0]  # cloud-init's hostname (its FQDN's first label)
    dom = _dom(conns, lab_inventory, deb)
    keys, source = guest_ssh.host_keys_of(dom.XMLDesc(0))
    assert keys and source == "console"

    # A guest whose key is not the recorded one is refused (as a man in the middle would be).
    wrong = [guest_ssh.HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIL" + "A" * 42)]
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, guest_ssh.host_keys_element(wrong, "console"), "vpd",
                    guest_ssh.HOST_KEYS_NS, flags)
    try:
        refused = vpd("vm", "ssh", deb.name, "--json", "--", "hostname")
        assert refused.returncode == 1 and "Host key verification failed" in \
            json.loads(refused.stdout)["error"], refused.stdout
    finally:
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, guest_ssh.host_keys_element(keys, source), "vpd",
                        guest_ssh.HOST_KEYS_NS, flags)


def test_seed_is_removed_once_cloud_init_has_finished(deb, conns, lab_inventory):
    dom = _dom(conns, lab_inventory, deb)
    [seed_path] = [d.source.reference for d in Domain.from_xml(dom.XMLDesc(0)).disks
                   if d.device == "cdrom" and d.source is not None]
    assert "status: done" in deb.ssh("cloud-init", "status", "--wait", timeout=300).stdout
    removed = vpd_json("vm", "seed-remove", deb.name)
    assert removed["evidence"]["source"] == "guest agent" and removed["evidence"]["finished"]
    assert (removed["seed"], removed["ejected"], removed["detached"], removed["volume_deleted"]) == \
        (seed_path, True, True, True)
    live = [d for d in Domain.from_xml(dom.XMLDesc(0)).disks if d.device == "cdrom"]
    # Ejected: the SATA drive stays in the running guest, with no file (libvirt keeps `<source index=.../>`).
    assert live and all(d.source is None or d.source.reference is None for d in live), dom.XMLDesc(0)
    assert not [d for d in Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).disks
                if d.device == "cdrom"]
    assert volume_by_path(dom.connect(), seed_path) is None
    assert deb.ssh("true").returncode == 0  # the guest runs on
    again = vpd("vm", "seed-remove", deb.name)
    assert again.returncode == 1 and "no cloud-init seed" in again.stderr, again.stderr
