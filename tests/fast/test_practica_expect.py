"""`vpd practica check 2|3|5` grade state made by hand (here with libvirt calls, as virsh makes
them) on libvirt's test driver; `vpd practica run 3` performs Práctica 3 there through vpd's own
commands and validates it."""
from __future__ import annotations

import json
from pathlib import Path

import libvirt
import pytest
from click.testing import CliRunner

from vpd.cli import main as cli_main
from vpd.cluster import pcs
from vpd.cluster import status as st
from vpd.ops import Session
from vpd.practica import expect, run


@pytest.fixture
def tdef(tmp_path, monkeypatch):
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n')
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VPD_INVENTORY", str(inv))
    conn = libvirt.open("test:///default")  # this process's test driver, shared with vpd's connections
    with Session(str(inv)) as session:
        yield conn, session, tmp_path.name[-8:].replace("_", "")


def _define(conn, name: str, devices: str) -> None:
    try:  # a redefinition keeps its UUID, as `virsh edit` does
        uuid = f"<uuid>{conn.lookupByName(name).UUIDString()}</uuid>"
    except libvirt.libvirtError:
        uuid = ""
    conn.defineXML(f"<domain type='test'><name>{name}</name>{uuid}<memory>65536</memory><os><type>hvm</type></os>"
                   f"<devices>{devices}</devices></domain>")


def _goals(session, number, values) -> dict:
    graded = expect.grade(session, number, session.host("t1"), None, values, "en")
    return {g["id"]: g for g in graded["goals"]}


def test_check_3_wants_a_raw_volume_attached_in_the_persistent_definition(tdef):
    conn, session, tag = tdef
    vol = f"v{tag}.img"
    values = {"VM": "test", "POOL": "default-pool", "VOL": vol}
    goals = _goals(session, 3, values)
    assert not goals["volumes"]["ok"] and "vpd vol create default-pool" in goals["volumes"]["checks"][0]["fix"]
    pool = conn.storagePoolLookupByName("default-pool")
    made = pool.createXML(f"<volume><name>{vol}</name><capacity>1048576</capacity>"
                          "<target><format type='qcow2'/></target></volume>", 0)
    goals = _goals(session, 3, values)
    assert not goals["volumes"]["ok"] and "format qcow2" in goals["volumes"]["checks"][0]["detail"]
    made.delete(0)
    path = pool.createXML(f"<volume><name>{vol}</name><capacity>1048576</capacity>"
                          "<target><format type='raw'/></target></volume>", 0).path()
    assert _goals(session, 3, values)["volumes"]["ok"]
    values["VM"] = f"m{tag}"
    assert not _goals(session, 3, values)["attach"]["ok"]
    disk = f"<disk type='file' device='disk'><source file='{path}'/><target dev='vdb' bus='virtio'/></disk>"
    _define(conn, f"m{tag}", disk)  # the learner's `virsh edit`: the disk in the persistent definition
    attach = _goals(session, 3, values)["attach"]
    assert attach["ok"] and attach["checks"][0]["detail"] == "as vdb"


def test_check_5_wants_both_networks_started_autostarted_in_their_modes_and_the_nics(tdef):
    conn, session, tag = tdef
    values = {"VM": "test", "NET1": f"c{tag}", "NET2": f"a{tag}"}
    assert not any(g["ok"] for g in _goals(session, 5, values).values())
    nat = conn.networkDefineXML(f"<network><name>c{tag}</name><forward mode='nat'/>"
                                "<ip address='198.19.141.1' netmask='255.255.255.0'/></network>")
    iso = conn.networkDefineXML(f"<network><name>a{tag}</name><ip address='198.19.142.1' "
                                "netmask='255.255.255.0'/></network>")
    nat.create()
    iso.create()
    networks = _goals(session, 5, values)["networks"]
    assert not networks["ok"]
    assert [c["fix"] for c in networks["checks"] if not c["ok"]] == [f"virsh net-autostart c{tag}",
                                                                     f"virsh net-autostart a{tag}"]
    nat.setAutostart(1)
    iso.setAutostart(1)
    assert _goals(session, 5, values)["networks"]["ok"]
    values["VM"] = f"m{tag}"
    _define(conn, f"m{tag}", f"<interface type='network'><source network='c{tag}'/></interface>")
    nics = _goals(session, 5, values)["nics"]
    assert not nics["ok"] and nics["checks"][1]["fix"] == f"vpd vm iface attach m{tag} --network a{tag}"
    _define(conn, f"m{tag}", "".join(f"<interface type='network'><source network='{n}'/></interface>"
                                     for n in (f"c{tag}", f"a{tag}")))
    assert _goals(session, 5, values)["nics"]["ok"]


def test_check_2_catches_a_copied_xml_that_kept_the_disk_and_mac(tdef):
    conn, session, tag = tdef
    devices = ("<disk type='file' device='disk'><source file='/images/x.qcow2'/><target dev='vda'/></disk>"
               "<interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/></interface>")
    _define(conn, f"o{tag}", devices)
    _define(conn, f"k{tag}", devices)  # the copied XML, only renamed (libvirt gave it a new UUID)
    values = {"VM": f"o{tag}", "CLONE": f"k{tag}", "SNAP": "t0"}
    goals = _goals(session, 2, values)
    [shared] = [c for c in goals["clone"]["checks"] if not c["ok"]]
    assert shared["detail"] == f"shares MAC, disk with o{tag}" and shared["fix"].startswith("vpd vm clone")
    assert not goals["templates-snapshots"]["ok"]


def test_practica_run_2_through_vpds_commands_on_the_test_driver(tdef):
    conn, session, tag = tdef

    def call(argv: list[str]) -> dict:
        result = CliRunner().invoke(cli_main.cli, [*argv, "--json", "--explain"])
        if result.exit_code != 0:  # read-only commands have no --explain
            result = CliRunner().invoke(cli_main.cli, [*argv, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    # The seed's starting VM (the lab makes it; here as a learner would, with vpd vm create).
    call(["vm", "create", f"s{tag}", "--host", "t1", "--disk", "size=8M,pool=default-pool", "--boot",
          "kernel=/boot/k", "--memory", "64"])
    report = run.run(session, 2, call, src="t1", dst="t1", lab=False, lang="en",
                     given={"VM": f"s{tag}", "CLONE": f"c{tag}"})
    assert report["ok"] and [s["ok"] for s in report["steps"]] == [True] * len(report["steps"])
    assert report["steps"][0]["outcome"].startswith("skipped")  # the lab's VM: off the lab it is the seed's
    clone = next(s for s in report["steps"] if s["vpd"].startswith("vpd vm clone"))
    assert clone["hand"] == ["virt-clone --original mvp1 --name clon_virt_clone --auto-clone"]
    assert any(d.startswith("virsh -c test:///default define /dev/stdin <<'EOF'") and f"<name>c{tag}</name>" in d
               for d in clone["did"])
    snap = next(s for s in report["steps"] if s["vpd"].startswith("vpd snapshot create"))
    assert any(" snapshot-create " in d for d in snap["did"])
    assert report["questions"][1]["answer"] == f"snapshot t0 of s{tag}: snapshots: t0"


def test_check_7_reads_crm_mon_a_fenced_member_and_a_resource_that_is_no_vm(tmp_path, monkeypatch):
    # crm_mon's answer after hostb was fenced (recorded on the lab), as the pair's hosts give it.
    xml = (Path(__file__).parent / "data" / "crm_mon_fenced.xml").read_text()
    monkeypatch.setattr(pcs, "ask", lambda host, cluster="": st.parse(xml, cluster, asked=host.name))
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[hosts]]\nname = "hosta"\nuri = "test:///default"\n\n'
                   '[[hosts]]\nname = "hostb"\nuri = "test:///default"\n')
    with Session(str(inv)) as session:
        graded = expect.grade(session, 7, session.host("hosta"), session.host("hostb"), {"VM": "d1"}, "en")
    goals = {g["id"]: g for g in graded["goals"]}
    cluster = {c["name"]: c for c in goals["cluster"]["checks"]}
    assert cluster["cluster has quorum and a DC"]["ok"] and cluster["hosta online in the cluster"]["ok"]
    assert not cluster["hostb online in the cluster"]["ok"]
    assert cluster["hostb online in the cluster"]["fix"] == "vpd cluster start hostb"
    fence = goals["fencing"]["checks"][0]
    assert goals["fencing"]["ok"] and "fence-lab (stonith:fence_vpdlab) on hosta" in fence["detail"]
    ha = goals["ha-vm"]["checks"][0]
    assert not ha["ok"] and ha["detail"] == "ocf:pacemaker:Dummy Started on hosta"
