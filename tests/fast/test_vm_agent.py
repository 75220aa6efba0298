"""The guest agent's side that needs no guest: argv checks, the parsing of the agent's answers
(shapes as qemu-ga 7.2 of Debian 12 sends them), and `vpd vm ip|exec|fs` over libvirt's test
driver (whose domifaddr answers; it has no agent, so exec and fs fail clearly)."""
from __future__ import annotations

import base64
import gc
import json

import libvirt
import pytest
from click.testing import CliRunner

from vpd.cli import main as cli_main
from vpd.core.errors import UsageError
from vpd.ops import explain
from vpd.vm import agent
from vpd.xml.domain import Domain


@pytest.fixture
def env(tmp_path, monkeypatch):
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n')
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VPD_INVENTORY", str(inv))
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()
    # Errors kept by the CLI runner hold domains (and their connections) in reference cycles: while
    # one lives, test:///default stays this process's one shared instance for the next tests.
    gc.collect()


def vpd(*args: str):
    return CliRunner().invoke(cli_main.cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("argv", [["ls -l"], ["df -h | tail -1"], ["echo $HOME"], ["a;b"], [""], []])
def test_a_shell_string_or_nothing_is_refused(argv):
    with pytest.raises(UsageError):
        agent.check_argv(argv)


def test_argv_words_may_hold_anything_after_the_program():
    assert agent.check_argv(["sh", "-c", "df -h | tail -1"]) == ["sh", "-c", "df -h | tail -1"]
    assert agent.check_argv(["/usr/bin/printf", "%s\n", "a b; c"])[2] == "a b; c"


def test_exec_status_decoded_and_signal_as_a_shell_reports_it():
    done = {"exited": True, "exitcode": 3, "out-data": base64.b64encode("héllo\n".encode()).decode(),
            "err-data": base64.b64encode(b"\xffbad\n").decode()}
    result = agent.parse_exec_status(["x"], 42, done, 0.1234)
    assert (result.exit_code, result.signal, result.stdout, result.pid) == (3, None, "héllo\n", 42)
    assert result.stderr == "\ufffdbad\n" and not result.truncated
    killed = agent.parse_exec_status(["sleep"], 7, {"exited": True, "signal": 9, "out-truncated": True}, 1)
    assert (killed.exit_code, killed.signal, killed.stdout, killed.truncated) == (137, 9, "", True)


def test_fsinfo_sizes_and_use_as_df_rounds():
    answer = [
        {"name": "vda", "mountpoint": "/", "type": "ext4", "used-bytes": 700_000_000, "total-bytes": 2_040_373_248,
         "disk": [{"serial": "", "bus-type": "virtio", "bus": 0, "unit": 0, "target": 0, "dev": "/dev/vda",
                   "pci-controller": {"bus": 0, "slot": 4, "domain": 0, "function": 0}}]},
        {"name": "vdb1", "mountpoint": "/boot", "type": "ext2", "disk": []},
    ]
    root, boot = agent.parse_fsinfo(list(reversed(answer)))  # sorted by mount point
    assert (root.mountpoint, root.type, root.disks, root.use_percent) == ("/", "ext4", ["/dev/vda"], 35)
    assert (boot.used_bytes, boot.total_bytes, boot.use_percent, boot.device) == (None, None, None, "vdb1")
    assert root.to_dict()["use_percent"] == 35


def test_addresses_skip_loopback_and_link_local_and_put_the_vms_nics_first():
    answer = {"lo": {"hwaddr": "00:00:00:00:00:00", "addrs": [{"addr": "127.0.0.1", "prefix": 8, "type": 0},
                                                             {"addr": "::1", "prefix": 128, "type": 1}]},
              "docker0": {"hwaddr": "02:42:00:00:00:01", "addrs": [{"addr": "172.17.0.1", "prefix": 16, "type": 0}]},
              "eth0": {"hwaddr": "52:54:00:AA:BB:CC",
                       "addrs": [{"addr": "fe80::5054:ff:feaa:bbcc", "prefix": 64, "type": 1},
                                 {"addr": "2001:db8::5", "prefix": 64, "type": 1},
                                 {"addr": "198.19.0.23", "prefix": 24, "type": 0}]}}
    found = agent.parse_interface_addresses(answer, {"52:54:00:aa:bb:cc"})
    assert [(a.interface, a.address, a.vm_nic) for a in found] == [
        ("eth0", "198.19.0.23", True), ("eth0", "2001:db8::5", True), ("docker0", "172.17.0.1", False)]
    assert agent.first_ipv4({"addresses": [a.to_dict() for a in found]}) == "198.19.0.23"


def test_agent_channel_state_is_read_from_the_running_xml():
    xml = ("<domain type='kvm'><name>g</name><memory>131072</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
           "<devices><channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/x'/>"
           "<target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/></channel></devices></domain>")
    [channel] = Domain.from_xml(xml).devices.channels
    assert (channel.target.name, channel.target.state) == ("org.qemu.guest_agent.0", "disconnected")


def test_vm_ip_says_which_source_answered_and_explains_it(env):
    result = vpd("vm", "ip", "test", "--json", "--explain")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["source"] == "agent" and out["addresses"][0]["address"] == "192.168.122.3"
    assert out["explain"] == ["virsh -c test:///default domifaddr test --source agent"]
    shown = vpd("vm", "ip", "test", "--explain").stdout
    assert "from the guest agent" in shown and "# nothing changed; what vpd read, by hand:" in shown


def test_a_stopped_vm_has_no_address(env):
    env.defineXML(env.lookupByName("test").XMLDesc(0).replace("<name>test</name>", "<name>agentoff</name>")
                  .replace(env.lookupByName("test").UUIDString(), "0b8a5f3e-6c1d-4a57-9a8e-2f4b1c3d5e70"))
    try:
        result = vpd("vm", "ip", "agentoff", "--json")
        assert result.exit_code == 2 and "not running" in json.loads(result.stdout)["error"]
    finally:
        env.lookupByName("agentoff").undefine()


def test_exec_refuses_a_shell_string_before_anything_and_fails_clearly_without_an_agent(env):
    refused = vpd("vm", "exec", "test", "--", "ls -l")
    assert refused.exit_code == 2 and "never through a shell" in refused.output
    no_agent = vpd("vm", "exec", "test", "--json", "--", "true")
    assert no_agent.exit_code == 1
    assert json.loads(no_agent.stdout)["kind"] == "AgentError"
    assert vpd("vm", "fs", "test").exit_code == 1


def test_agent_commands_are_explained_as_virsh_qemu_agent_command():
    step = {"kind": "libvirt", "uri": "qemu+tcp://hosta/system", "call": "libvirt_qemu.qemuAgentCommand",
            "object": {"type": "domain", "name": "web"}, "args": ['{"execute":"guest-exec","arguments":{}}', 10],
            "query": False}
    assert explain.script([step]) == [
        "virsh -c qemu+tcp://hosta/system qemu-agent-command web '{\"execute\":\"guest-exec\",\"arguments\":{}}' "
        "--timeout 10"]
    read = {**step, "args": ['{"execute":"guest-get-fsinfo"}', 10], "query": True}
    assert explain.script([read]) == [] and len(explain.reads([read])) == 1
    freeze = {"kind": "libvirt", "uri": "qemu:///system", "call": "virDomain.fsFreeze",
              "object": {"type": "domain", "name": "web"}, "args": [None, 0]}
    assert explain.script([freeze]) == ["virsh -c qemu:///system domfsfreeze web"]


def test_snapshot_quiesce_needs_a_running_guest_with_an_agent(env):
    env.defineXML(env.lookupByName("test").XMLDesc(0).replace("<name>test</name>", "<name>quiet</name>")
                  .replace(env.lookupByName("test").UUIDString(), "0b8a5f3e-6c1d-4a57-9a8e-2f4b1c3d5e71"))
    try:
        stopped = vpd("snapshot", "create", "quiet", "s1", "--quiesce", "--json")
        assert stopped.exit_code == 2 and "not running" in json.loads(stopped.stdout)["error"]
        assert env.lookupByName("quiet").snapshotNum(0) == 0
    finally:
        env.lookupByName("quiet").undefine()
    no_agent = vpd("snapshot", "create", "test", "s1", "--quiesce", "--json")
    assert no_agent.exit_code == 1 and json.loads(no_agent.stdout)["kind"] == "AgentError"
    assert env.lookupByName("test").snapshotNum(0) == 0


def test_migration_validation_reports_the_guests_filesystems():
    from vpd.migration.validate import filesystems_check

    root = {"mountpoint": "/", "type": "ext4", "used_bytes": 700 * 2**20, "total_bytes": 2000 * 2**20,
            "use_percent": 35}
    same = filesystems_check([root], [root])
    assert same.ok and same.detail == "/ ext4 700 MiB of 2000 MiB used (35%)"
    gone = filesystems_check([root, {**root, "mountpoint": "/srv"}], [root])
    assert not gone.ok and "was ['/', '/srv']" in gone.detail
