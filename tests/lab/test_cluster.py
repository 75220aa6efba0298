"""Práctica 7 for real: a two-node Pacemaker + Corosync cluster on the session
lab, fenced by the lab's power switch, with a real guest made highly available.

The tests run in order on one cluster (creating one costs ~45 s): create and
status, bad input, HA enable with no guest reboot, live moves (ha move,
standby), a host's death (fenced, the guest boots on the survivor with its disk
intact), a cut link (exactly one survivor, the guest never on two hosts), and
destroy (hosts back as they were)."""
from __future__ import annotations

import json
import re
import time

import pytest
from pyroute2 import IPRoute

from vpd.core import paths
from vpd.lab import control, layout

from . import cluster_helpers as h
from .conftest import started_argvs, vpd, vpd_json, vpd_traced

pytestmark = pytest.mark.lab

CLUSTER = "labc"
VM = "havm"
SLOW = 600


@pytest.fixture(scope="module")
def cluster(lab):
    made, trace = vpd_traced("cluster", "create", CLUSTER, "--hosts", "hosta,hostb", "--fence", "fence_vpdlab",
                             "--json", timeout=SLOW)
    assert made.returncode == 0, (made.stdout, made.stderr)
    created = json.loads(made.stdout)
    try:
        yield {**created, "trace": trace}
    finally:
        # Whatever a test left behind: hosts powered, the cluster gone, the guest removed.
        state = control.load_state()
        for hs in state.hosts:
            if not hs.powered:
                vpd("lab", "host-up", hs.name)
        vpd("cluster", "destroy", CLUSTER, timeout=SLOW)
        for host in ("hosta", "hostb"):
            vpd("vm", "destroy", VM, "--host", host)
            vpd("vm", "undefine", VM, "--host", host, "--remove-storage")


@pytest.fixture(scope="module")
def ha_vm(cluster):
    made = vpd_json("vm", "create", VM, "--host", "hosta", "--lab-guest", "--disk",
                    f"size=32M,pool={layout.SHARED_POOL}", "--start", "--wait-boot", timeout=SLOW)
    h.write_disk_marker(VM, "hosta", "written-before-the-failure")
    enabled = vpd_json("ha", "enable", VM, "--cluster", CLUSTER, timeout=SLOW)
    return {"made": made, "enabled": enabled}


def status() -> dict:
    return vpd_json("cluster", "status", CLUSTER)


def test_create_makes_a_quorate_fenced_cluster(cluster):
    assert cluster["hosts"] == ["hosta", "hostb"] and cluster["warnings"] == []
    s = status()
    json.dumps(s)  # valid JSON, every field serializable
    assert s["quorate"] and s["dc"] in ("hosta", "hostb")
    assert {m["name"]: m["state"] for m in s["members"]} == {"hosta": "online", "hostb": "online"}
    fence = next(r for r in s["resources"] if r["id"] == f"fence-{CLUSTER}")
    assert fence["agent"] == "stonith:fence_vpdlab" and fence["running_on"]
    # The password is random and nowhere in vpd's output or journal.
    journal = vpd("journal", "--json").stdout
    assert "hacluster:" not in journal and "hacluster:" not in json.dumps({**cluster, "trace": ""})
    # It went to chpasswd and pcs host auth on stdin, and is in the argv of no process vpd started.
    written = set(re.findall(r"hacluster(?::|\\n)([A-Za-z0-9_-]{32})\\n", cluster["trace"]))
    assert len(written) == 1, written
    password = written.pop()
    argvs = started_argvs(cluster["trace"])
    assert any("chpasswd" in a for a in argvs) and not [a for a in argvs if password in a]
    print(f"\ncluster create: {cluster['seconds']} s")


def test_each_host_has_its_own_daemons_and_secret(cluster):
    for host in ("hosta", "hostb"):
        assert {"corosync", "pacemakerd"} <= set(h.cluster_processes(host))
        # Its own PID namespace: pcs's `killall -9 corosync ...` there sees one corosync, its own.
        assert len(h.in_host(host, ["pidof", "corosync"]).stdout.split()) == 1
        field = h.in_host(host, ["getent", "shadow", "hacluster"]).stdout.split(":")[1]
        assert field.startswith("$")  # set inside the host ...
    assert open("/etc/shadow").read().count("hacluster:!") == 1  # ... never on the machine


BAD_INPUT = [
    (["cluster", "create", "c2", "--hosts", "hosta,ghost", "--no-fencing"], "ghost"),
    (["cluster", "create", "bad name", "--hosts", "hosta,hostb", "--no-fencing"], "invalid cluster name"),
    (["cluster", "create", "it's", "--hosts", "hosta,hostb", "--no-fencing"], "invalid cluster name"),
    (["cluster", "create", "c2", "--hosts", "hosta,hostb", "--no-fencing"], "already belongs to cluster"),
    (["ha", "enable", "novm", "--cluster", CLUSTER], "no member"),
    (["ha", "move", VM, "--to", "ghost"], ""),
]


def test_bad_input_exits_2_and_changes_nothing(cluster):
    before = status()
    for args, message in BAD_INPUT:
        proc = vpd(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
    after = status()
    assert [r["id"] for r in after["resources"]] == [r["id"] for r in before["resources"]]
    assert [m["state"] for m in after["members"]] == [m["state"] for m in before["members"]]
    for host in ("hosta", "hostb"):  # no second cluster's daemons or config anywhere
        assert "cluster_name: labc" in h.in_host(host, ["cat", "/etc/corosync/corosync.conf"]).stdout


def test_vm_with_a_disk_only_one_host_sees_is_refused(cluster, lab_inventory, conns):
    """A pool under the host's private /var/lib/libvirt/images: not shared storage."""
    from vpd.xml.pool import dir_pool

    conn = conns.get(lab_inventory.get("hosta"))
    pool = conn.storagePoolDefineXML(dir_pool("hostlocal", "/var/lib/libvirt/images").to_xml_string())
    pool.create()
    try:
        vpd_json("vm", "create", "localvm", "--host", "hosta", "--lab-guest", "--disk", "size=16M,pool=hostlocal")
        proc = vpd("ha", "enable", "localvm", "--cluster", CLUSTER)
        assert proc.returncode == 2 and "not on storage every member sees" in proc.stderr, proc.stderr
        assert conn.lookupByName("localvm").isPersistent()  # still libvirt's, untouched
        assert all(r["id"] != "localvm" for r in status()["resources"])
    finally:
        vpd("vm", "undefine", "localvm", "--host", "hosta", "--remove-storage")
        pool.destroy()
        pool.undefine()


def test_ha_enable_keeps_the_guest_running_where_it_was(ha_vm):
    assert ha_vm["enabled"]["running_on"] == ["hosta"]
    assert h.running_on(VM) == ["hosta"]
    assert h.boot_id(VM, "hosta") == ha_vm["made"]["boot_id"]  # not restarted
    assert ha_vm["enabled"]["config"].startswith(layout.SHARED_MOUNT)
    r = next(r for r in status()["resources"] if r["id"] == VM)
    assert r["agent"] == "ocf:heartbeat:VirtualDomain"


def test_ha_move_and_standby_live_migrate_without_reboot(ha_vm):
    boot = ha_vm["made"]["boot_id"]
    moved = vpd_json("ha", "move", VM, "--to", "hostb", timeout=SLOW)
    assert moved["running_on"] == ["hostb"] and h.running_on(VM) == ["hostb"]
    assert h.boot_id(VM, "hostb") == boot
    drained = vpd_json("cluster", "standby", "hostb", timeout=SLOW)
    assert drained["resources"][VM] == ["hosta"]
    assert h.boot_id(VM, "hosta") == boot
    assert next(m for m in status()["members"] if m["name"] == "hostb")["state"] == "standby"
    vpd_json("cluster", "unstandby", "hostb", timeout=SLOW)
    time.sleep(3)
    assert h.running_on(VM) == ["hosta"]  # stickiness: it does not bounce back
    print(f"\nha move: {moved['seconds']} s")


def test_host_failure_fences_it_and_the_guest_boots_on_the_survivor(ha_vm):
    assert h.running_on(VM) == ["hosta"]
    old_boot = h.boot_id(VM, "hosta")
    vpd_json("lab", "host-down", "hosta")
    samples: list = []
    took = h.wait_running_on(VM, "hostb", timeout=180, samples=samples)
    assert all(len(s) <= 1 for s in samples)
    new_boot = h.boot_id(VM, "hostb")  # the guest booted (marker and channel answer)
    assert new_boot != old_boot
    assert h.read_disk_marker(VM, "hostb") == "written-before-the-failure"
    s = status()
    assert any(f["target"] == "hosta" and f["status"] == "success" for f in s["fencing"]), s["fencing"]
    assert {m["name"]: m["state"] for m in s["members"]}["hosta"] == "offline"
    print(f"\nhost death -> guest running on the survivor: {took:.1f} s")
    # Power it back and let it rejoin (a fenced node waits for the admin).
    vpd_json("lab", "host-up", "hosta")
    vpd_json("cluster", "start", "hosta", timeout=SLOW)
    assert h.running_on(VM) == ["hostb"]  # stickiness again


def test_cut_link_leaves_exactly_one_survivor_and_one_guest(ha_vm):
    """The guest runs on hostb; hostb's cable is cut. Both sides lose each other and
    race to fence; the delay makes hosta win: hostb is powered off, the guest
    starts on hosta, and no sample ever sees it on two hosts."""
    assert h.running_on(VM) == ["hostb"]
    state = control.load_state()
    veth = layout.LabHost(state.host("hostb").index, paths.lab_dir()).veth
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=veth)[0], state="down")
    samples: list = []
    h.wait_running_on(VM, "hosta", timeout=180, samples=samples)
    assert all(len(s) <= 1 for s in samples), samples
    state = control.load_state()
    assert state.host("hosta").powered and not state.host("hostb").powered
    for _ in range(10):  # still exactly one, a few seconds on
        assert h.running_on(VM) == ["hosta"]
        time.sleep(0.5)
    s = status()
    assert any(f["target"] == "hostb" and f["status"] == "success" for f in s["fencing"])
    assert not any(f["target"] == "hosta" for f in s["fencing"] if f["status"] == "success")
    vpd_json("lab", "host-up", "hostb")
    vpd_json("cluster", "start", "hostb", timeout=SLOW)


def test_ha_disable_gives_the_guest_back_to_libvirt_still_running(ha_vm, lab_inventory, conns):
    where = h.running_on(VM)
    boot = h.boot_id(VM, where[0])
    out = vpd_json("ha", "disable", VM, timeout=SLOW)
    assert out["running_on"] == where
    time.sleep(3)
    assert h.running_on(VM) == where and h.boot_id(VM, where[0]) == boot
    assert conns.get(lab_inventory.get(where[0])).lookupByName(VM).isPersistent()
    assert all(r["id"] != VM for r in status()["resources"])
    vpd_json("ha", "enable", VM, "--cluster", CLUSTER, timeout=SLOW)  # for destroy to give back


def test_destroy_leaves_the_hosts_as_create_found_them(cluster):
    out = vpd_json("cluster", "destroy", CLUSTER, timeout=SLOW)
    assert out["problems"] == [] and out["vms_given_back"]
    for host in ("hosta", "hostb"):
        assert h.cluster_processes(host) == []
        assert "cluster_name: debian" in h.in_host(host, ["cat", "/etc/corosync/corosync.conf"]).stdout
        assert h.in_host(host, ["getent", "shadow", "hacluster"]).stdout.split(":")[1] == "!"
        assert "vpd-cluster" not in h.in_host(host, ["nft", "list", "ruleset"]).stdout
    assert vpd("cluster", "status", CLUSTER).returncode == 2
    assert h.running_on(VM) == []  # disabled first, then given back stopped
