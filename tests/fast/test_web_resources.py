"""The web API's resources beyond VMs and migrations, over libvirt's test driver: for each
group a read, a change through a job (a viewer refused, the operator's job journaled as the
CLI's), and errors mapped like the CLI's (400 wrong request, 404 unknown, 500 failed)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")


from vpd.core import journal  # noqa: E402
from vpd.xml.domain import lab_guest_domain  # noqa: E402

from .test_web_api import bearer, wait_job, web, web_client  # noqa: E402, F401  (web: a fixture)


@pytest.fixture
def api(web):  # noqa: F811  (the imported fixture, requested by name)
    """test_web_api's app: hosta runs `web` and has `db` shut off, hostb has `solo` shut off."""
    return web


@pytest.fixture
def guest_web(tmp_path: Path, monkeypatch):
    """One test-driver host `t` with `g1`, a shut-off guest with a qcow2 disk (snapshots need one)."""
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    guest = lab_guest_domain("g1", kernel="/k", initrd="/i", cmdline="x", disk_path="/images/g1.qcow2",
                             domain_type="test").to_xml_string()
    node = tmp_path / "node.xml"
    node.write_text(f"<node>{guest}</node>")
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[[hosts]]\nname = "t"\nuri = "test://{node}"\n')
    with web_client(inv) as served:
        yield served


def act(client, token: str, method: str, url: str, **kw) -> dict:
    """A change as the operator: 202, then the finished job."""
    r = client.request(method, url, headers=bearer(token), **kw)
    assert r.status_code == 202, r.text
    return wait_job(client, token, r.json()["job"])


def refused(client, token: str, method: str, url: str, **kw) -> None:
    """A viewer's change: 403, no job, no journal entry."""
    before, jobs = len(journal.entries(1000)), len(client.app_state.jobs.list())
    r = client.request(method, url, headers=bearer(token), **kw)
    assert r.status_code == 403 and "viewer" in r.json()["error"], r.text
    assert len(journal.entries(1000)) == before and len(client.app_state.jobs.list()) == jobs


def ok(job: dict) -> dict:
    assert job["state"] == "succeeded", job["error"]
    return job["result"]


def test_pools_and_volumes(api):
    client, op, view = api
    pools = client.get("/api/v1/pools", params={"all": True}, headers=bearer(view)).json()
    assert [h["host"] for h in pools["hosts"]] == ["hosta", "hostb"]
    body = {"name": "p1", "host": "hosta", "type": "dir", "path": "/p1"}
    refused(client, view, "POST", "/api/v1/pools", json=body)
    made = ok(act(client, op, "POST", "/api/v1/pools", json=body))
    assert made["changed"] and made["pool"] == "p1"
    info = client.get("/api/v1/pools/p1", params={"host": "hosta"}, headers=bearer(view)).json()
    assert info["type"] == "dir" and info["state"] == "running"
    assert journal.entries(1)[0]["operation"] == "pool.create"
    # volumes in it
    vol = {"host": "hosta", "pool": "p1", "name": "a.qcow2", "size": "4M"}
    refused(client, view, "POST", "/api/v1/volumes", json=vol)
    assert ok(act(client, op, "POST", "/api/v1/volumes", json=vol))["format"] == "qcow2"
    ok(act(client, op, "POST", "/api/v1/volumes/p1/a.qcow2/clone", params={"host": "hosta"},
           json={"new_name": "b.qcow2"}))
    listed = client.get("/api/v1/volumes", params={"pool": "p1", "host": "hosta"}, headers=bearer(view)).json()
    assert sorted(v["name"] for v in listed["hosts"][0]["volumes"]) == ["a.qcow2", "b.qcow2"]
    # a failed operation (the test driver cannot resize): the job fails with 500 and libvirt's reason
    failed = act(client, op, "POST", "/api/v1/volumes/p1/b.qcow2/resize", params={"host": "hosta"},
                 json={"size": "8M"})
    assert failed["state"] == "failed" and failed["error"]["status"] == 500
    assert "virStorageVolResize" in failed["error"]["error"]
    ok(act(client, op, "DELETE", "/api/v1/volumes/p1/b.qcow2", params={"host": "hosta"}))
    r = client.get("/api/v1/volumes/p1/b.qcow2", params={"host": "hosta"}, headers=bearer(view))
    assert r.status_code == 404 and r.json()["kind"] == "NotFound"
    ok(act(client, op, "POST", "/api/v1/pools/p1/actions/stop", params={"host": "hosta"}))
    assert client.get("/api/v1/pools/p1", params={"host": "hosta"}, headers=bearer(view)).json()["state"] != "running"
    # errors: a wrong type is 400 at once, an unknown host 404 at once, a missing pool fails its job with 404
    r = client.post("/api/v1/pools", json={**body, "type": "zfs"}, headers=bearer(op))
    assert r.status_code == 400 and "type" in r.json()["error"]
    assert client.post("/api/v1/pools", json={**body, "host": "hostz"}, headers=bearer(op)).status_code == 404
    assert client.get("/api/v1/pools/p1", headers=bearer(view)).status_code == 400  # host is required
    failed = act(client, op, "POST", "/api/v1/pools/nosuch/actions/start", params={"host": "hosta"})
    assert failed["state"] == "failed" and failed["error"]["status"] == 404


def test_networks(api):
    client, op, view = api
    body = {"name": "n1", "host": "hosta", "mode": "isolated", "subnet": "198.19.91.0/24"}
    refused(client, view, "POST", "/api/v1/networks", json=body)
    made = ok(act(client, op, "POST", "/api/v1/networks", json=body))
    assert made["created"]
    nets = client.get("/api/v1/networks", params={"host": "hosta"}, headers=bearer(view)).json()
    assert [n["name"] for n in nets["hosts"][0]["networks"] if n["name"] == "n1"] == ["n1"]
    # a read that fails on the host is a 500 with libvirt's reason (the test driver keeps no leases)
    r = client.get("/api/v1/networks/n1/leases", params={"host": "hosta"}, headers=bearer(view))
    assert r.status_code == 500 and "virNetworkGetDHCPLeases" in r.json()["error"]
    ok(act(client, op, "POST", "/api/v1/networks/n1/actions/autostart", params={"host": "hosta"}))
    ok(act(client, op, "DELETE", "/api/v1/networks/n1", params={"host": "hosta"}))
    assert client.get("/api/v1/networks/n1/leases", headers=bearer(view)).status_code == 404
    r = client.post("/api/v1/networks", json={**body, "subnet": "300.1.1.0/24"}, headers=bearer(op))
    assert r.status_code == 400 and r.json()["kind"] == "UsageError"
    r = client.post("/api/v1/networks/n1/actions/start", params={"host": "hosta", "force": True}, headers=bearer(op))
    assert r.status_code == 400


def test_vm_disks_and_interfaces(api):
    client, op, view = api
    ok(act(client, op, "POST", "/api/v1/pools", json={"name": "p2", "host": "hosta", "type": "dir", "path": "/p2"}))
    ok(act(client, op, "POST", "/api/v1/volumes", json={"host": "hosta", "pool": "p2", "name": "d.qcow2",
                                                          "size": "4M"}))
    disk = {"vol": "p2/d.qcow2", "target": "vdb"}
    refused(client, view, "POST", "/api/v1/vms/db/disks", json=disk)
    # the test driver cannot attach: the job fails (500, libvirt's reason), journaled, nothing attached
    failed = act(client, op, "POST", "/api/v1/vms/db/disks", json=disk)
    assert failed["state"] == "failed" and failed["error"]["status"] == 500 and "vdb" in failed["error"]["error"]
    row = journal.entries(1)[0]
    assert (row["operation"], row["target"], row["status"]) == ("vm.disk.attach", "hosta/db", "failed")
    disks = client.get("/api/v1/vms/db/disks", headers=bearer(view)).json()
    assert disks["host"] == "hosta" and disks["disks"] == []
    refused(client, view, "DELETE", "/api/v1/vms/db/disks/vdb")
    detached = ok(act(client, op, "DELETE", "/api/v1/vms/db/disks/vdb"))  # none there: a no-op with a note
    assert detached["changed"] is False and detached["note"]
    nics = client.get("/api/v1/vms/db/interfaces", headers=bearer(view)).json()
    assert [n["mac"] for n in nics["interfaces"]] == ["52:54:00:00:00:02"]
    # a MAC another host's VM has: refused at the job's start, nothing attached
    r = client.post("/api/v1/vms/db/interfaces", json={"network": "default", "mac": "52:54:00:00:00:03"},
                    headers=bearer(op))
    failed = wait_job(client, op, r.json()["job"])
    assert failed["state"] == "failed" and failed["error"]["status"] == 400 and "solo" in failed["error"]["error"]
    r = client.post("/api/v1/vms/db/disks", json={"target": "vdc"}, headers=bearer(op))
    assert r.status_code == 400 and "exactly one" in r.json()["error"]
    assert client.post("/api/v1/vms/nosuch/disks", json=disk, headers=bearer(op)).status_code == 404


def test_snapshots(guest_web):
    client, op, view = guest_web
    refused(client, view, "POST", "/api/v1/vms/g1/snapshots", json={"name": "s1"})
    taken = ok(act(client, op, "POST", "/api/v1/vms/g1/snapshots", json={"name": "s1"}))
    assert taken["host"] == "t" and taken["snapshot"] == "s1"
    assert journal.entries(1)[0]["operation"] == "snapshot.create"
    ok(act(client, op, "POST", "/api/v1/vms/g1/snapshots", json={"name": "s2"}))
    snaps = client.get("/api/v1/vms/g1/snapshots", headers=bearer(view)).json()
    assert snaps["current"] == "s2" and [s["name"] for s in snaps["snapshots"]] == ["s1", "s2"]
    ok(act(client, op, "POST", "/api/v1/vms/g1/snapshots/s1/revert"))
    assert client.get("/api/v1/vms/g1/snapshots", headers=bearer(view)).json()["current"] == "s1"
    ok(act(client, op, "DELETE", "/api/v1/vms/g1/snapshots/s2"))
    assert [s["name"] for s in client.get("/api/v1/vms/g1/snapshots", headers=bearer(view)).json()["snapshots"]] \
        == ["s1"]
    r = client.post("/api/v1/vms/g1/snapshots", json={"name": "bad name"}, headers=bearer(op))
    assert r.status_code == 400 and r.json()["kind"] == "UsageError"
    failed = act(client, op, "POST", "/api/v1/vms/g1/snapshots", json={"name": "s1"})  # taken: exit 2 class
    assert failed["state"] == "failed" and failed["error"]["status"] == 400 and "already" in failed["error"]["error"]
    assert client.get("/api/v1/vms/nosuch/snapshots", headers=bearer(view)).status_code == 404


def test_templates(api):
    client, op, view = api
    # templates
    refused(client, view, "POST", "/api/v1/templates", json={"vm": "db"})
    ok(act(client, op, "POST", "/api/v1/templates", json={"vm": "db"}))
    names = [t["name"] for t in client.get("/api/v1/templates", headers=bearer(view)).json()["templates"]]
    assert names == ["db"]
    ok(act(client, op, "POST", "/api/v1/templates/db/unseal"))
    assert client.get("/api/v1/templates", headers=bearer(view)).json()["templates"] == []


def test_backups_ovf_and_iscsi(api, tmp_path: Path):
    client, op, view = api
    empty = tmp_path / "backups"
    empty.mkdir()
    listed = client.get("/api/v1/backups", params={"root": str(empty), "host": "hosta"}, headers=bearer(view))
    assert listed.status_code == 200 and listed.json()["backups"] == []
    ref = {"path": str(empty / "vm1" / "20261125T170000Z"), "host": "hosta"}
    refused(client, view, "POST", "/api/v1/backups/verify", json=ref)
    failed = act(client, op, "POST", "/api/v1/backups/verify", json=ref)
    assert failed["state"] == "failed" and failed["error"]["status"] in (400, 404)
    r = client.post("/api/v1/backups", json={"vm": "nosuch", "to": str(empty)}, headers=bearer(op))
    assert r.status_code == 404
    # ovf: a wrong request is 400 before any job
    r = client.post("/api/v1/ovf/export", json={"vm": "db"}, headers=bearer(op))
    assert r.status_code == 400 and "exactly one" in r.json()["error"]
    refused(client, view, "POST", "/api/v1/ovf/import", json={"package": str(tmp_path / "x.ova"), "host": "hosta"})
    r = client.post("/api/v1/ovf/import", json={"package": "x.ova", "host": "hosta", "wait_boot": True},
                    headers=bearer(op))
    assert r.status_code == 400
    # iscsi
    r = client.post("/api/v1/iscsi/targets", json={"host": "hosta", "iqn": "iqn.2024-01.org.x:t", "allow": ["hostb"]},
                    headers=bearer(op))
    assert r.status_code == 400 and "exactly one" in r.json()["error"]
    r = client.post("/api/v1/iscsi/targets", json={"host": "hosta", "iqn": "iqn.2024-01.org.x:t", "allow": []},
                    headers=bearer(op))
    assert r.status_code == 400


def failed_with(job: dict, status: int, text: str) -> None:
    assert job["state"] == "failed" and job["error"]["status"] == status and text in job["error"]["error"], job


def test_hosts_prepare_access_clusters(api):
    """Groups that need real hosts (SSH, pcs): reads, refusals, and jobs that fail like the CLI."""
    client, op, view = api
    refused(client, view, "POST", "/api/v1/hosts/prepare", json={"hosts": ["hosta"], "dry_run": True})
    assert client.post("/api/v1/hosts/prepare", json={"hosts": ["hostz"]}, headers=bearer(op)).status_code == 404
    assert client.post("/api/v1/hosts/unprepare", json={"hosts": []}, headers=bearer(op)).status_code == 400
    job = act(client, op, "POST", "/api/v1/hosts/prepare", json={"hosts": ["hosta", "hostb"], "dry_run": True})
    failed_with(job, 400, "no address in the inventory for hosta, hostb")
    # access
    assert client.get("/api/v1/access", headers=bearer(view)).json() == {"grants": []}
    grant = {"src": "hosta", "dst": "hostb", "ttl": "10m"}
    refused(client, view, "POST", "/api/v1/access", json=grant)
    r = client.post("/api/v1/access", json={**grant, "ttl": "forever"}, headers=bearer(op))
    assert r.status_code == 400 and r.json()["kind"] == "UsageError"
    assert client.post("/api/v1/access", json={**grant, "dst": "hostz"}, headers=bearer(op)).status_code == 404
    failed_with(act(client, op, "DELETE", "/api/v1/access/nosuch"), 404, "no grant 'nosuch'")
    assert ok(act(client, op, "POST", "/api/v1/access/revoke-expired")) == {"revoked": [], "failed": []}
    # clusters
    assert client.get("/api/v1/clusters", headers=bearer(view)).json() == {"clusters": []}
    assert client.get("/api/v1/clusters/c1", headers=bearer(view)).status_code == 404
    body = {"name": "c1", "hosts": ["hosta", "hostb"], "no_fencing": True}
    refused(client, view, "POST", "/api/v1/clusters", json=body)
    r = client.post("/api/v1/clusters", json={**body, "no_fencing": False}, headers=bearer(op))
    assert r.status_code == 400 and "fencing" in r.json()["error"] and r.json()["hint"]
    assert client.post("/api/v1/clusters", json={**body, "hosts": ["hostz"]}, headers=bearer(op)).status_code == 404
    assert client.delete("/api/v1/clusters/c1", headers=bearer(op)).status_code == 404
    r = client.post("/api/v1/clusters/c1/members/hosta/actions/standby", headers=bearer(op))
    assert r.status_code == 404 and r.json()["error"] == "no cluster named 'c1'"
    assert client.post("/api/v1/clusters/c1/ha", json={"vm": "web"}, headers=bearer(op)).status_code == 404
    assert client.app_state.jobs.list()[0].kind == "access.revoke"  # no cluster job was started


def test_lab_and_containers(api):
    client, op, view = api
    r = client.get("/api/v1/lab", headers=bearer(view))
    assert r.status_code == 400 and r.json()["error"] == "no lab is up"
    refused(client, view, "POST", "/api/v1/lab/hosts/hosta/power", json={"on": False})
    failed_with(act(client, op, "POST", "/api/v1/lab/hosts/hosta/power", json={"on": False}), 400, "no lab is up")
    # containers: no incusd on these hosts; each host says so
    hosts = client.get("/api/v1/containers", headers=bearer(view)).json()["hosts"]
    assert [(h["host"], h["containers"]) for h in hosts] == [("hosta", []), ("hostb", [])]
    assert all("did not answer" in h["error"] for h in hosts)
    launch = {"image": "busybox", "name": "c1", "host": "hosta"}
    refused(client, view, "POST", "/api/v1/containers", json=launch)
    r = client.post("/api/v1/containers", json={**launch, "name": "bad name"}, headers=bearer(op))
    assert r.status_code == 400 and "invalid container name" in r.json()["error"]
    r = client.post("/api/v1/containers", json={**launch, "limits": {"limits.cpu": "lots"}}, headers=bearer(op))
    assert r.status_code == 400
    failed_with(act(client, op, "POST", "/api/v1/containers", json=launch), 500, "did not answer")
    failed_with(act(client, op, "DELETE", "/api/v1/containers/c1"), 404, "no container 'c1' on any host")
    r = client.post("/api/v1/containers/c1/actions/stop", json={"timeout": 0}, headers=bearer(op))
    assert r.status_code == 400 and "timeout" in r.json()["error"]


def test_migration_progress_fields_reach_the_jobs_stream(api):
    """What run_job emits per tick arrives in the job's SSE stream with its structured fields."""
    import json

    from vpd.core import events
    from vpd.migration.run import progress

    client, op, _ = api
    jobs = client.app_state.jobs

    def work():
        for remaining in (300, 100, 0):
            step, done, total, data = progress({"data_remaining": remaining * 2**20, "data_processed": 2**20,
                                                "memory_bps": 2**20}, 0.1)
            events.emit("migrate", step, done, total, "MiB", data=data)

    job = jobs.submit("migrate", "hosta/web->hostb", "test", work)
    jobs.wait(job.id)
    with client.stream("GET", f"/api/v1/jobs/{job.id}/events", headers=bearer(op)) as stream:
        text = "".join(stream.iter_text())
    ticks = [json.loads(block.split("data: ", 1)[1]) for block in text.split("\n\n") if "event: progress" in block]
    assert [t["data"]["data_remaining"] for t in ticks] == [300 * 2**20, 100 * 2**20, 0]
    assert all(t["data"]["throughput_bps"] == 2**20 and t["unit"] == "MiB" for t in ticks)


def test_vm_page_lists_snapshots_and_takes_one(guest_web):
    client, op, view = guest_web
    client.post("/login", data={"token": view, "next": "/vms"})
    page = client.get("/vms/g1").text
    assert 'id="snapshots"' in page and "Take snapshot" not in page  # a viewer: the list, no buttons
    r = client.post("/vms/g1/snapshots", data={"snapshot": "s1"}, headers={"X-Requested-With": "vpd"})
    assert r.status_code == 403
    client.post("/login", data={"token": op, "next": "/vms"})
    r = client.post("/vms/g1/snapshots", data={"snapshot": "bad name"}, headers={"X-Requested-With": "vpd"})
    assert r.status_code == 400 and "invalid snapshot name" in r.text
    r = client.post("/vms/g1/snapshots", data={"snapshot": "s1"}, headers={"X-Requested-With": "vpd"})
    assert r.status_code == 202 and "snapshot.create" in r.text
    client.app_state.jobs.wait(client.app_state.jobs.list()[0].id)
    page = client.get("/vms/g1").text
    assert 'data-snapshot="s1"' in page and "/vms/g1/snapshots/s1/revert" in page
    r = client.post("/vms/g1/snapshots/s1/revert", headers={"X-Requested-With": "vpd"})
    assert r.status_code == 202 and "snapshot.revert" in r.text
    assert wait_job(client, op, client.app_state.jobs.list()[0].id)["state"] == "succeeded"
