"""The cluster's decisions without a cluster: crm_mon's XML read into typed
models, fencing choices, HA placement checks, and bad input refused (exit 2)
before any host is touched."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpd.cluster import create as cl
from vpd.cluster import fencing, ha, pcs
from vpd.cluster import status as st
from vpd.connect.inventory import Host, Inventory
from vpd.core import paths
from vpd.core.errors import NotFound, UsageError, VpdError
from vpd.vm.inventory import pick_host

from .conftest import run_vpd

DATA = Path(__file__).parent / "data"


def fenced() -> st.ClusterStatus:
    return st.parse((DATA / "crm_mon_fenced.xml").read_text(), "c1", asked="hosta")


def test_crm_mon_xml_reads_into_members_resources_and_fencing():
    s = fenced()
    assert s.quorate and s.dc == "hosta"
    assert [(m.name, m.state) for m in s.members] == [("hosta", "online"), ("hostb", "offline")]
    assert st.running_on(s, "d1") == ["hosta"] and st.settled_on(s, "d1", "hosta")
    assert s.resource("fence-lab").agent == "stonith:fence_vpdlab"
    assert [(f.target, f.status, f.by) for f in s.fencing] == [("hostb", "success", "hosta")]
    assert not st.all_online(s, ["hosta", "hostb"]) and st.all_online(s, ["hosta"])
    assert json.loads(json.dumps(s.to_dict()))["members"][1]["state"] == "offline"


def test_failures_unclean_standby_and_disabled_are_read():
    xml = """<pacemaker-result api-version="2.25"><summary>
      <current_dc present="true" name="hostb" with_quorum="false"/></summary>
      <nodes><node name="hosta" online="false" unclean="true"/><node name="hostb" online="true" standby="true"/></nodes>
      <resources><resource id="vm1" resource_agent="ocf:heartbeat:VirtualDomain" role="Stopped" target_role="Stopped"
        active="false"/></resources>
      <failures><failure op_key="vm1_start_0" node="hostb" exitstatus="error" exitreason="boom" status="complete"
        last-rc-change="2026-11-25 17:00:00Z"/></failures>
      <status code="0" message="OK"/></pacemaker-result>"""
    s = st.parse(xml, "c1")
    assert not s.quorate and [m.state for m in s.members] == ["unclean", "standby"]
    assert s.resources[0].disabled and st.running_on(s, "vm1") == []
    assert s.failed_actions[0]["operation"] == "vm1_start_0" and s.failed_actions[0]["reason"] == "boom"
    assert ha.vm_resources(s)[0].id == "vm1"


def test_garbage_is_not_a_status():
    with pytest.raises(VpdError):
        st.parse("<html>", "c1")


def test_fencing_is_required_unless_refused_explicitly():
    with pytest.raises(UsageError, match="needs fencing"):
        fencing.parse(None, (), False)
    assert fencing.parse(None, (), True) is None
    with pytest.raises(UsageError):
        fencing.parse("fence_ipmilan", (), True)
    spec = fencing.parse("fence_ipmilan", ("ip=192.0.2.5", "password=s3cret"), False)
    assert spec.params == {"ip": "192.0.2.5", "password": "s3cret"}
    assert spec.to_dict() == {"agent": "fence_ipmilan", "params": ["ip", "password"]}  # no secret kept


@pytest.mark.parametrize("agent,params", [
    ("fence ipmilan", ()), ("'; reboot", ()), ("../fence_x", ()), ("fence_x", ("noequals",)),
    ("fence_x", ("a=1", "a=2")), ("fence_x", ("Bad Key=1",)), ("fence_x", ("k=line\nbreak",)),
])
def test_bad_fence_input_is_a_usage_error(agent, params):
    with pytest.raises(UsageError):
        fencing.parse(agent, params, False)


def test_two_node_split_brain_has_one_preferred_survivor():
    assert fencing.delay_map(["hosta", "hostb"]) == f"hosta:{fencing.SPLIT_DELAY_S}s;hostb:0s"
    lab = fencing.device_params(fencing.FenceSpec(fencing.LAB_AGENT), ["hosta", "hostb"])
    assert lab["pcmk_host_list"] == "hosta,hostb" and lab["pcmk_reboot_action"] == "off"
    assert "pcmk_delay_base" in lab
    three = fencing.device_params(fencing.FenceSpec("fence_ipmilan", {"ip": "x"}), ["a", "b", "c"])
    assert "pcmk_delay_base" not in three and "pcmk_reboot_action" not in three  # quorum decides with 3


def test_placement_decisions():
    assert pick_host("vm", {"hosta": False}) == "hosta"
    assert pick_host("vm", {"hosta": False, "hostb": True}) == "hostb"
    with pytest.raises(NotFound):
        pick_host("vm", {})
    with pytest.raises(UsageError):
        pick_host("vm", {"hosta": False, "hostb": False})
    with pytest.raises(VpdError):
        pick_host("vm", {"hosta": True, "hostb": True})
    mib = 1024
    assert ha.memory_problems(128 * mib, {"hosta": 0, "hostb": 1024 * mib}, "hosta") == []
    assert ha.memory_problems(128 * mib, {"hosta": 0, "hostb": 150 * mib}, "hosta")  # margin counts
    assert ha.config_path(["/srv/shared/vm1.qcow2"], "vm1") == "/srv/shared/.vpd-ha/vm1.xml"
    with pytest.raises(UsageError):
        ha.config_path([], "vm1")
    assert ha.migration_transport("qemu+tcp://198.18.1.11/system") == "tcp"
    assert ha.migration_transport("qemu+ssh://root@h/system") == "ssh"


def test_resource_definition_allows_live_migration_and_forced_stop():
    argv = ha.resource_argv("vm1", "/s/.vpd-ha/vm1.xml", "tcp")
    assert argv[:4] == ["resource", "create", "vm1", "ocf:heartbeat:VirtualDomain"]
    for item in ("allow-migrate=true", "force_stop=true", "migrate_options=--unsafe",
                 f"resource-stickiness={pcs.STICKINESS}", "config=/s/.vpd-ha/vm1.xml"):
        assert item in argv
    with pytest.raises(UsageError):
        ha.resource_id("1vm")  # pacemaker ids start with a letter
    with pytest.raises(UsageError):
        ha.resource_id("vm 1")


def test_move_target_must_be_an_online_member():
    s = fenced()
    assert ha.move_target_problem(s, "d1", "hosta") is None
    assert "offline" in ha.move_target_problem(s, "d1", "hostb")
    assert "not a member" in ha.move_target_problem(s, "d1", "hostc")
    assert "not highly available" in ha.move_target_problem(s, "nope", "hosta")


def test_sample_corosync_conf_is_set_aside_but_a_real_cluster_refused():
    debian = "totem {\n cluster_name: debian\n}\nnodelist { node { ring0_addr: 127.0.0.1\n name: node1 } }\n"
    assert cl.sample_corosync_conf(debian)
    real = "totem {\n cluster_name: prod\n}\nnodelist { node { ring0_addr: 192.0.2.1 } }\n"
    assert not cl.sample_corosync_conf(real) and cl.existing_cluster(real) == "prod"


def inventory() -> Inventory:
    return Inventory(hosts=[Host(name="hosta", uri="qemu+tcp://198.18.9.11/system", address="198.18.9.11"),
                            Host(name="hostb", uri="qemu+tcp://198.18.9.12/system", address="198.18.9.12"),
                            Host(name="noaddr", uri="qemu+tcp://198.18.9.13/system")])


@pytest.mark.parametrize("names", [["hosta"], ["hosta", "hosta"], ["hosta", "ghost"], ["hosta", "noaddr"],
                                   ["hosta", "../etc"]])
def test_bad_members_are_refused(names):
    with pytest.raises(UsageError):
        cl.check_members(inventory(), names)


@pytest.mark.parametrize("args", [
    ["cluster", "create", "bad name", "--hosts", "hosta,hostb", "--no-fencing"],
    ["cluster", "create", "c'1", "--hosts", "hosta,hostb", "--no-fencing"],
    ["cluster", "create", "c1", "--hosts", "hosta,hostb"],  # no fencing chosen
    ["cluster", "create", "c1", "--hosts", "hosta,,hostb", "--no-fencing"],
    ["cluster", "create", "c1", "--hosts", "hosta,ghost", "--fence", "fence_vpdlab"],
    ["cluster", "status", "nope"],
    ["cluster", "destroy", "nope"],
    ["cluster", "standby", "ghost"],
    ["ha", "enable", "vm1", "--cluster", "nope"],
    ["ha", "move", "vm 1", "--to", "hosta"],
])
def test_cli_bad_input_exits_2_and_touches_nothing(args, tmp_path):
    inv = tmp_path / "inv.toml"
    inv.write_text(inventory().to_toml())
    proc = run_vpd(*args, "--json", inventory=inv)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "error" in json.loads(proc.stdout)
    assert not (paths.state_dir() / "clusters").exists()


def test_pdu_refuses_what_is_not_a_lab_host(monkeypatch):
    from vpd.lab import pdu

    monkeypatch.setattr(pdu.control, "load_state", lambda: None)
    assert pdu.handle("reboot").startswith("error")
    assert pdu.handle("off ../../x y").startswith("error")
    assert pdu.handle("off hosta").startswith("error")  # no lab: nothing to power


def test_missing_packages_are_never_installed_from_inside_a_lab_host():
    # Lab hosts share the machine's /usr: the refusal comes before any command runs.
    lab_host = Host(name="hosta", uri="qemu+tcp://198.18.0.11/system", address="198.18.0.11", lab=True)
    with pytest.raises(VpdError, match="cluster packages missing"):
        cl._install(lab_host, ["pcs"], "apt")
