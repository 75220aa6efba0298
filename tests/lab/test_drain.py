"""`vpd host drain` and `vpd host maintenance` on the session's 2-host lab: two guests on the shared
pool move live and validated, one whose disk is on hosta's own storage (a pool at the same path on
both hosts, so placement cannot tell) is refused by the preflight's token proof and reported while
the others move; maintenance then keeps vpd from placing anything on the host."""
from __future__ import annotations

import json

import pytest

from vpd.xml.pool import dir_pool

from .conftest import vpd, vpd_json
from .migration_helpers import connect, create_guest, migration_ports_open, open_grants, remove_guest, where

pytestmark = pytest.mark.lab

SHARED = ("drn1", "drn2")
LOCAL = "drnl"
LOCAL_POOL = "drainlocal"
LOCAL_DIR = "/var/lib/libvirt/images/drainlocal"  # under each host's own /var/lib/libvirt


@pytest.fixture(scope="module")
def guests(lab):
    pools = []
    try:
        for host in ("hosta", "hostb"):
            pool = connect(host).storagePoolDefineXML(dir_pool(LOCAL_POOL, LOCAL_DIR).to_xml_string())
            pool.build(0)
            pool.create(0)
            pools.append(pool)
        for name in SHARED:
            create_guest(name)
        create_guest(LOCAL, pool=LOCAL_POOL)
        yield
    finally:
        vpd("host", "maintenance", "off", "hosta")
        for name in (*SHARED, LOCAL):
            remove_guest(name)
        for pool in pools:
            pool.refresh(0)
            for vol in pool.listAllVolumes(0):
                vol.delete(0)
            pool.destroy()
            pool.undefine()


def test_drain_moves_the_shared_guests_and_reports_the_refused_one(guests):
    plan = vpd_json("host", "drain", "hosta", "--to", "hostb", "--dry-run")
    # placement sees a pool at the local disk's directory on hostb too: only the preflight can tell
    assert {p["vm"]: p["host"] for p in plan["plan"]["placements"]} == {n: "hostb" for n in (*SHARED, LOCAL)}

    with migration_ports_open():
        proc = vpd("host", "drain", "hosta", "--to", "hostb", "--json", timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    print(f"\ndrain: {report['seconds']} s; " + ", ".join(f"{r['vm']} {r['stage']} {r['seconds']} s "
                                                          f"({r['downtime_ms']} ms)" for r in report["results"]))
    assert sorted(report["moved"]) == list(SHARED) and report["not_moved"] == [LOCAL]
    results = {r["vm"]: r for r in report["results"]}
    for name in SHARED:
        validation = {c["name"] for c in results[name]["report"]["validation"] if c["ok"]}
        assert {"running on destination", "not running on source", "guest did not reboot",
                "disk readable and unchanged"} <= validation, results[name]
        assert where(name) == {"hostb": "running"}
    refused = results[LOCAL]
    assert refused["stage"] == "preflight"
    assert [c["name"] for c in refused["report"]["preflight"] if not c["ok"] and c["blocking"]] == \
        ["shared storage (token proof)"]
    assert where(LOCAL) == {"hosta": "running"}
    assert open_grants() == []


def test_maintenance_on_blocks_placement_there(guests):
    # hosta still runs the guest whose disk is its own: the drain fails, the host stays marked.
    proc = vpd("host", "maintenance", "on", "hosta", "--to", "hostb", "--json", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["maintenance"] and report["drain"]["not_moved"] == [LOCAL]
    assert "hosta" in vpd_json("host", "maintenance-list")

    created = vpd("vm", "create", "drnx", "--host", "hosta", "--lab-guest")
    assert created.returncode == 2 and "hosta is in maintenance" in created.stderr
    back = vpd("migrate", SHARED[0], "--to", "auto", "--dry-run")
    assert back.returncode == 1 and "no host can take drn1" in back.stderr and "hosta: in maintenance" in back.stderr
    assert where(SHARED[0]) == {"hostb": "running"}

    vpd_json("host", "maintenance", "off", "hosta")
    assert vpd_json("host", "maintenance-list") == {}
