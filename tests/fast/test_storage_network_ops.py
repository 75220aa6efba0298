"""Pools, volumes, networks and a VM's disks and NICs through the operation layer, on libvirt's
test driver: what is journaled (and planned), locks, undo, VMs found without --host, MACs
checked on every host, and lookups that tell 'missing' from 'the connection dropped'."""
from __future__ import annotations

import json
from pathlib import Path

import libvirt
import pytest

from vpd.connect.inventory import Host
from vpd.core import journal
from vpd.core.errors import NotFound, VpdError
from vpd.network import networks
from vpd.network import operations as net_ops
from vpd.ops import Session
from vpd.ops.locks import Busy, LockSet, object_key
from vpd.storage import operations as storage_ops
from vpd.storage import pools

from .conftest import run_vpd
from .test_operation_layer import two_hosts  # noqa: F401  (fixture: hosta runs web, hostb has solo)


def _single(tmp_path: Path) -> Path:
    inv = tmp_path / "one.toml"
    inv.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\nfqdn = "t1.vpd.lab"\n')
    return inv


def _latest(operation: str) -> dict:
    return journal.entries(1, operation)[0]


# --- pools, volumes, networks: journaled through the layer ----------------------------------

def test_pool_create_cli_journals_the_pool_before_making_it(test_inventory):
    made = json.loads(run_vpd("pool", "create", "pj1", "--host", "t1", "--type", "dir", "--path", "/pj1", "--json",
                              inventory=test_inventory, check_rc=0).stdout)
    assert made["changed"] and made["pool"] == "pj1" and made["type"] == "dir"
    row = _latest("pool.create")
    assert (row["target"], row["status"]) == ("t1/pj1", "ok")
    assert row["objects"] == [{"kind": "pool", "name": "pj1", "host": "t1", "type": "dir"}]
    assert row["args"]["path"] == "/pj1" and row["result"]["steps"] == ["define", "build", "start"]


def test_idempotent_create_plans_nothing_and_hosts_go_by_fqdn(tmp_path):
    with Session(_single(tmp_path)) as s:
        assert storage_ops.pool_create(s, "pj2", "t1.vpd.lab", "dir", path="/pj2")["changed"]
        assert storage_ops.pool_create(s, "pj2", "t1", "dir", path="/pj2")["changed"] is False
        again = _latest("pool.create")
        assert again["target"] == "t1/pj2" and again["objects"] == []
        made = storage_ops.vol_create(s, "pj2", "a.qcow2", "t1", "4M")
        assert made["changed"] and made["format"] == "qcow2"
        row = _latest("vol.create")
        assert row["target"] == "t1/pj2/a.qcow2"
        assert row["objects"] == [{"kind": "volume", "name": "a.qcow2", "host": "t1", "pool": "pj2"}]
        storage_ops.vol_clone(s, "pj2", "a.qcow2", "b.qcow2", "t1")
        row = _latest("vol.clone")
        assert row["target"] == "t1/pj2/a.qcow2" and row["args"]["new_name"] == "b.qcow2"
        assert [o["name"] for o in row["objects"]] == ["b.qcow2"]
        assert storage_ops.vol_info(s, "pj2", "b.qcow2", "t1")["used_by"] == []
        assert storage_ops.vol_delete(s, "pj2", "b.qcow2", "t1")["deleted"]
        with pytest.raises(NotFound, match="no volume 'b.qcow2'"):
            storage_ops.vol_delete(s, "pj2", "b.qcow2", "t1")
        assert _latest("vol.delete")["status"] == "failed"


def test_a_locked_pool_is_busy(tmp_path):
    holder = LockSet([object_key("pool", "t1", "default-pool")],
                     {"journal_id": 9, "operation": "pool.delete", "pid": 1}).acquire()
    try:
        with Session(_single(tmp_path)) as s:
            with pytest.raises(Busy, match=r"pool t1/default-pool is busy: pool.delete started by PID 1 at "
                                           r".* \(journal #9\)"):
                storage_ops.pool_stop(s, "default-pool", "t1")
    finally:
        holder.release()


def test_net_create_cli_journals_the_network(test_inventory):
    made = json.loads(run_vpd("net", "create", "nj1", "--host", "t1", "--mode", "routed", "--subnet",
                              "198.19.77.0/24", "--json", inventory=test_inventory, check_rc=0).stdout)
    assert made["created"] and made["name"] == "nj1" and made["route_hint"].startswith("ip route add 198.19.77.0/24")
    row = _latest("net.create")
    assert (row["target"], row["status"], row["args"]["subnet"]) == ("t1/nj1", "ok", "198.19.77.1/24")
    assert row["objects"] == [{"kind": "network", "name": "nj1", "host": "t1", "mode": "routed"}]
    stopped = json.loads(run_vpd("net", "stop", "default", "--host", "t1", "--force", "--json",
                                 inventory=test_inventory, check_rc=0).stdout)
    assert stopped["action"] == "stop" and stopped["changed"] and stopped["cut_off"] == ["test"]
    assert _latest("net.stop")["args"] == {"force": True}


def test_a_network_that_fails_its_check_is_undone_and_the_undo_journaled(tmp_path, monkeypatch):
    def broken(net, host, spec):
        raise VpdError(f"network {spec.name} started but its bridge is missing")

    monkeypatch.setattr(networks, "_validate_started", broken)
    with Session(_single(tmp_path)) as s:
        with pytest.raises(VpdError, match="bridge is missing"):
            net_ops.net_create(s, "nj2", "t1", "isolated", subnet="198.19.78.0/24")
        with pytest.raises(NotFound):
            networks.find_network(s.connection(s.host("t1")), s.host("t1"), "nj2")
    row = _latest("net.create")
    assert row["status"] == "failed" and row["objects"][0]["name"] == "nj2"
    assert "undo: stop and undefine network nj2: done" in row["notes"]


def test_a_dropped_connection_is_a_failure_not_not_found():
    host = Host(name="t1", uri="test:///default")
    conn = libvirt.open(host.uri)
    conn.close()
    for find in (pools.find_pool, networks.find_network):
        with pytest.raises(VpdError) as caught:
            find(conn, host, "default")
        assert not isinstance(caught.value, NotFound) and caught.value.exit_code == 1


# --- a VM's NICs and disks: found anywhere, MACs unique everywhere ---------------------------

def test_iface_attach_refuses_a_mac_used_on_another_host(two_hosts):  # noqa: F811
    before = len(journal.entries(10_000, "vm.iface.attach"))
    proc = run_vpd("vm", "iface", "attach", "web", "--network", "default", "--mac", "52:54:00:00:00:03", "--json",
                   inventory=two_hosts)
    assert proc.returncode == 2, proc.stderr
    assert "52:54:00:00:00:03 is already in use by hostb/solo" in json.loads(proc.stdout)["error"]
    assert len(journal.entries(10_000, "vm.iface.attach")) == before  # refused before anything was opened


def test_iface_attach_of_the_vms_own_mac_is_no_clash(two_hosts):  # noqa: F811
    # db is defined on both hosts with the same MAC (a migration that kept the source's
    # definition): its own MAC, on the source it already has, is a no-op, not a clash.
    proc = run_vpd("vm", "iface", "attach", "db", "--network", "default", "--mac", "52:54:00:00:00:02", "--json",
                   inventory=two_hosts, check_rc=0)
    result = json.loads(proc.stdout)
    assert result["changed"] is False and result["host"] == "hostb"
    assert _latest("vm.iface.attach")["target"] == "hostb/db"


def test_vm_disk_and_iface_list_find_the_vm_without_host(two_hosts):  # noqa: F811
    proc = run_vpd("vm", "disk", "list", "solo", "--json", inventory=two_hosts, check_rc=0)
    assert json.loads(proc.stdout) == {"host": "hostb", "vm": "solo", "disks": []}
    listed = json.loads(run_vpd("vm", "iface", "list", "web", "--json", inventory=two_hosts, check_rc=0).stdout)
    assert listed["host"] == "hosta" and [i["mac"] for i in listed["interfaces"]] == ["52:54:00:00:00:01"]
    shown = run_vpd("vm", "disk", "list", "solo", inventory=two_hosts, check_rc=0)
    assert "Disks of solo on hostb" in shown.stdout and "solo is on hostb" in shown.stderr  # where it was found
    missing = run_vpd("vm", "disk", "list", "nosuch", inventory=two_hosts)
    assert missing.returncode == 2 and "on any host" in missing.stderr
