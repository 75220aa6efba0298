"""known_hosts parsing for `host prepare --set-fqdn` (pure): the key a peer already trusts for
a host's old name or address, in plain and hashed files (hashed by ssh-keygen itself)."""
from __future__ import annotations

import subprocess

import libvirt

from vpd.connect.inventory import Host
from vpd.connect.libvirt_conn import explain, host_key_problem
from vpd.connect.ssh import INNER_SSH_FAILED, Runner, inner_ssh
from vpd.core.errors import HostUnreachable, VpdError
from vpd.hostprep.known_hosts import host_field_matches, keys_for

KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB" + "b" * 43
KEY_C = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC" + "c" * 43
PLAIN = (f"# the lab's file\nhostb.vpd.lab,hostb,198.18.2.12 {KEY_B}\nhostc.vpd.lab {KEY_C}\n"
         f"@revoked hostb.vpd.lab {KEY_C}\n[hostb.vpd.lab]:2222 {KEY_C}\n")


def test_keys_for_old_names_and_address():
    assert keys_for(PLAIN, ["hostb.vpd.lab"]) == [KEY_B]
    assert keys_for(PLAIN, ["198.18.2.12"]) == [KEY_B]  # the address alone is enough
    assert keys_for(PLAIN, ["hostz.vpd.lab"]) == []
    assert keys_for(PLAIN, ["hostb", "hostc.vpd.lab"]) == [KEY_B, KEY_C]


def test_patterns_and_negation():
    assert host_field_matches("*.vpd.lab,!hostc.vpd.lab", "hostb.vpd.lab")
    assert not host_field_matches("*.vpd.lab,!hostc.vpd.lab", "hostc.vpd.lab")
    assert host_field_matches("[HostB.vpd.lab]:22", "hostb.vpd.lab")
    assert not host_field_matches("[hostb.vpd.lab]:2222", "hostb.vpd.lab")


def test_hashed_lines_written_by_ssh_keygen(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"hostb.vpd.lab {KEY_B}\n198.18.2.13 {KEY_C}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    hashed = path.read_text()
    assert "hostb" not in hashed and hashed.startswith("|1|")
    assert keys_for(hashed, ["hostb.vpd.lab"]) == [KEY_B]
    assert keys_for(hashed, ["198.18.2.13"]) == [KEY_C]
    assert keys_for(hashed, ["hostz.vpd.lab"]) == []


HOSTA = Host(name="hosta", uri="qemu+ssh://root@198.18.2.11/system", address="198.18.2.11")
# What a peer-to-peer migration reports when libvirtd on the source cannot verify the destination.
P2P = ("operation failed: Failed to connect to remote libvirt URI qemu+ssh://root@hostz.vpd.lab/system"
       "?keyfile=/root/.ssh/vpd-grant-1: Cannot recv data: Host key verification failed.: Connection reset by peer")


def test_a_migration_hop_that_refuses_a_host_key_is_named_as_the_sources_own():
    message, hint, own = host_key_problem(HOSTA, P2P)
    assert message.startswith("hosta -> hostz.vpd.lab: SSH host key verification failed: root on hosta")
    assert not own and "--set-fqdn hostz.vpd.lab" in hint
    explained = explain(HOSTA, _error(P2P))
    assert type(explained) is VpdError and explained.message == message
    assert "inventory" not in (explained.hint or "")  # not vpd's own SSH identity


def test_vpds_own_hop_that_refuses_a_host_key_points_at_the_inventory():
    own = explain(HOSTA, _error("Cannot recv data: Host key verification failed.: Connection reset by peer"))
    assert isinstance(own, HostUnreachable) and own.message.startswith("vpd -> hosta:")
    assert "ssh_known_hosts" in (own.hint or "")
    assert host_key_problem(HOSTA, "Connection refused") is None


def _error(message: str) -> libvirt.libvirtError:
    """A real libvirt error carrying `message` (as libvirt would raise it)."""
    conn = libvirt.open("test:///default")
    try:
        conn.lookupByName("no-such-domain")
    except libvirt.libvirtError as exc:
        exc.err = (*exc.err[:2], message, *exc.err[3:])
        return exc
    finally:
        conn.close()
    raise AssertionError("the test driver found a domain that does not exist")


def test_an_ssh_run_on_a_host_keeps_its_failure_apart_from_vpds_own():
    """ssh's exit 255 from a command vpd runs on a host would read as vpd's SSH to that host
    failing: inner_ssh turns it into 254 (here: a refused connection on loopback)."""
    local = Runner(Host(name="here", uri="test:///default"))
    out = local.run(inner_ssh(["-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-p", "1", "root@127.0.0.1", "true"]),
                    check=False)
    assert out.returncode == INNER_SSH_FAILED, (out.returncode, out.stderr)
    assert "refused" in out.stderr
