"""`vpd vm ssh` without a guest: what creation records (kept by libvirt in the domain's
metadata), the host keys read from a console log as cloud-init prints them, and the ssh_config
vpd writes, read back by ssh itself (`ssh -G`)."""
from __future__ import annotations

import gc
import subprocess
from pathlib import Path

import libvirt
import pytest
from click.testing import CliRunner

from vpd.cli import main as cli_main
from vpd.connect.inventory import Host
from vpd.core.errors import UsageError, VpdError
from vpd.vm import guest_ssh
from vpd.vm.spec import CloudInitRequest
from vpd.xml.domain import guest_domain


def keygen(path: Path, kind: str = "ed25519") -> tuple[str, str]:
    """A fresh key pair: (public key line, `ssh-keygen -l` fingerprint)."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@deb", "-f", str(path)], check=True)
    fp = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], capture_output=True, text=True, check=True)
    return Path(f"{path}.pub").read_text().strip(), fp.stdout.split()[1]


def console(keys: list[str], prints: list[str], tag: str = "<14>Dec  4 23:29:48 cloud-init: ") -> str:
    """What cloud-init's keys_to_console writes on a serial console, as the Debian test guest's
    log shows it: fingerprints through logger (prefixed), the keys bare, CR LF line ends."""
    return "\r\n".join([
        tag + "#" * 61, tag + "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
        *(tag + f"256 {p} root@deb (ED25519)" for p in prints),
        tag + "-----END SSH HOST KEY FINGERPRINTS-----", tag + "#" * 61,
        "-----BEGIN SSH HOST KEY KEYS-----", *keys, "-----END SSH HOST KEY KEYS-----",
    ]) + "\r\n"


def test_creation_records_the_user_and_key_in_metadata_libvirt_keeps(tmp_path):
    public, _ = keygen(tmp_path / "id")
    seed = CloudInitRequest(user="alice", ssh_key_file=str(tmp_path / "id.pub"), hostname="web1").seed("web1")
    assert (seed.user, seed.ssh_keys, seed.ssh_key_file) == ("alice", (public,), str(tmp_path / "id.pub"))
    xml = guest_ssh.with_access(guest_domain("sshrec", kernel="/k", initrd="/i", cmdline="c",
                                             domain_type="test").to_xml_string(),
                                seed.user, seed.ssh_keys, seed.ssh_key_file)
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(xml)
        access = guest_ssh.access_of(dom.XMLDesc(0))
        dom.undefine()
    finally:
        conn.close()
    assert access == guest_ssh.GuestAccess("alice", (public,), str(tmp_path / "id.pub"))
    assert access.identity() == str(tmp_path / "id")
    assert CloudInitRequest(hostname="h").seed("h").user is None


def test_the_last_keys_cloud_init_printed_are_taken_and_match_their_fingerprints(tmp_path):
    old, old_fp = keygen(tmp_path / "old")
    new, new_fp = keygen(tmp_path / "new")
    # A log that outlived an earlier VM of the same name: its keys come first.
    # Upstream cloud-init tags every line `ec2:`: both read the same.
    log = "Booting...\n" + console([old], [old_fp], tag="<14>Dec  4 22:10:01 ec2: ") + "reboot\n" \
        + console([new], [new_fp]) + "login: "
    keys, prints = guest_ssh.console_host_keys(log)
    assert [f"{k.type} {k.key}" for k in keys] == [" ".join(new.split()[:2])]
    assert prints == [new_fp] and keys[0].fingerprint == new_fp
    assert guest_ssh.matching(keys, prints, "console") == keys
    with pytest.raises(VpdError, match="match none"):
        guest_ssh.matching(keys, [old_fp], "console")
    # A block cut short (the guest still printing) is not taken.
    assert guest_ssh.console_host_keys(log + console([old], [old_fp]).rsplit("-----END", 1)[0]) == (keys, prints)
    assert guest_ssh.console_host_keys("no keys here") == ([], [])


def test_host_keys_recorded_by_set_metadata_read_back():
    keys = [guest_ssh.HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIBo")]
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(guest_domain("sshkeys", kernel="/k", initrd="/i", cmdline="c",
                                          domain_type="test").to_xml_string())
        assert guest_ssh.host_keys_of(dom.XMLDesc(0)) == ([], None)
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, guest_ssh.host_keys_element(keys, "console"), "vpd",
                        guest_ssh.HOST_KEYS_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        assert guest_ssh.host_keys_of(dom.XMLDesc(0)) == (keys, "console")
        dom.undefine()
    finally:
        conn.close()


def ssh_g(config: Path, alias: str) -> dict[str, str]:
    """The options ssh itself resolves for `alias` from the file (`ssh -G`)."""
    out = subprocess.run(["ssh", "-G", "-F", str(config), alias], capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_ssh_config_goes_through_the_host_and_checks_the_recorded_key(tmp_path, monkeypatch):
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    host = Host(name="hosta", uri="qemu+tcp://198.18.5.11/system", address="198.18.5.11",
                ssh_identity=str(tmp_path / "lab key"), ssh_known_hosts=str(tmp_path / "known_hosts"), lab=True)
    keys = [guest_ssh.HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIBo")]
    plan = guest_ssh.prepare(host, "0b8a5f3e-6c1d-4a57-9a8e-2f4b1c3d5e6f", "198.19.0.23", "alice",
                             str(tmp_path / "id"), keys, ["printf", "%s\n", "a b; c"], batch=True)
    assert plan.argv[:4] == ["ssh", "-F", str(plan.config), "vpd-guest"]
    # The guest's shell gets each word quoted: it runs exactly this argv.
    assert plan.argv[4:] == ["--", "printf '%s\n' 'a b; c'"]
    assert plan.known_hosts.read_text() == f"vpd-0b8a5f3e-6c1d-4a57-9a8e-2f4b1c3d5e6f {keys[0].type} {keys[0].key}\n"
    seen = ssh_g(plan.config, "vpd-guest")
    assert (seen["hostname"], seen["user"], seen["proxyjump"]) == ("198.19.0.23", "alice", "vpd-jump")
    assert (seen["stricthostkeychecking"], seen["hostkeyalias"]) == ("true", "vpd-0b8a5f3e-6c1d-4a57-9a8e-2f4b1c3d5e6f")
    assert seen["userknownhostsfile"] == str(plan.known_hosts) and seen["identityfile"] == str(tmp_path / "id")
    jump = ssh_g(plan.config, "vpd-jump")
    assert (jump["hostname"], jump["user"], jump["identityfile"]) == ("198.18.5.11", "root", str(tmp_path / "lab key"))
    assert jump["userknownhostsfile"] == str(tmp_path / "known_hosts")
    with pytest.raises(UsageError, match="quote"):
        guest_ssh.prepare(host, "u", "198.19.0.23", "alice", '/tmp/a"b', keys, [], batch=False)


def test_vm_ssh_needs_a_user_when_creation_recorded_none(tmp_path, monkeypatch):
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n')
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VPD_INVENTORY", str(inv))
    result = CliRunner().invoke(cli_main.cli, ["vm", "ssh", "test", "--", "hostname"], catch_exceptions=False)
    assert result.exit_code == 2 and "--user" in result.output
    result = CliRunner().invoke(cli_main.cli, ["vm", "ssh", "test", "--json"], catch_exceptions=False)
    assert result.exit_code == 2 and "needs a COMMAND" in result.output
    gc.collect()  # the runner's kept errors hold connections: test:///default must not stay shared
