"""The VM page's forms over libvirt's test driver, as a browser without JavaScript sends them
(the session cookie and the hidden `csrf` field): the XML edit flow of `vm edit` (validated
before it is applied, errors shown in the form, nothing changed), disks and NICs attached and
detached through the CLI's operations, the VM's backups, and the lab page's place."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from vpd.backup import manifest as mf  # noqa: E402
from vpd.core import journal  # noqa: E402

from .test_web_api import bearer, two_host_inventory, wait_job, web_client  # noqa: E402


@pytest.fixture
def site(tmp_path: Path, monkeypatch):
    """test_web_api's two hosts: hosta runs `web` and has `db` shut off, hostb has `solo`."""
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    with web_client(two_host_inventory(tmp_path)) as served:
        yield served


def login(client, token: str) -> str:
    """Log in like a browser; the csrf value the pages put in their forms."""
    client.post("/login", data={"token": token, "next": "/vms"})
    page = client.get("/vms/db?host=hosta").text
    found = re.search(r'name="csrf" value="([0-9a-f]*)"', page)
    return found.group(1) if found else ""


def inactive_xml(client, token: str, name: str) -> str:
    return client.get(f"/api/v1/vms/{name}/xml", params={"inactive": True}, headers=bearer(token)).json()["xml"]


def test_edit_flow_validates_before_applying(site):
    client, op, view = site
    login(client, view)
    assert client.get("/vms/web/edit").status_code == 403  # the editor shows secrets: operators only
    assert 'id="edit-link"' not in client.get("/vms/web").text
    csrf = login(client, op)
    assert csrf and 'id="edit-link"' in client.get("/vms/web").text
    page = client.get("/vms/web/edit").text
    before = inactive_xml(client, op, "web")
    base = re.search(r'name="base" value="([0-9a-f]+)"', page).group(1)
    assert "&lt;name&gt;web&lt;/name&gt;" in page and 'id="edit-form"' in page

    def post(xml: str, **extra):
        return client.post("/vms/web/edit?host=hosta", data={"xml": xml, "base": base, "csrf": csrf, **extra},
                           follow_redirects=False)

    # Broken XML: 400, the message in the page, the user's text kept, the definition unchanged.
    broken = before.replace("<memory", "<memoryx", 1)
    r = post(broken)
    assert r.status_code == 400 and "the edited definition is not valid" in r.text and 'id="edit-error"' in r.text
    assert "&lt;memoryx" in r.text and inactive_xml(client, op, "web") == before
    r = post(before.replace("<name>web</name>", "<name>other</name>"))
    assert r.status_code == 400 and "renaming is not an edit" in r.text
    # No CSRF value (another site's form): refused, nothing changed.
    r = client.post("/vms/web/edit?host=hosta", data={"xml": before.replace("</name>", "</name><title>x</title>"),
                                                      "base": base}, follow_redirects=False)
    assert r.status_code == 403 and inactive_xml(client, op, "web") == before
    # Unchanged (a browser sends CRLF): no change, said on the VM page.
    r = post(before.replace("\n", "\r\n"))
    assert r.status_code == 303 and r.headers["location"].endswith("edited=unchanged")
    # A good edit: applied through the operation (journaled), the VM page says when it applies.
    r = post(before.replace("</name>", "</name>\n  <description>edited in the browser</description>"))
    assert r.status_code == 303 and r.headers["location"] == "/vms/web?host=hosta&edited=next-boot"
    assert "edited in the browser" in inactive_xml(client, op, "web")
    row = journal.entries(1)[0]
    assert (row["operation"], row["target"], row["status"]) == ("vm.edit", "hosta/web", "ok")
    assert "applies at the VM&#39;s next boot" in client.get(r.headers["location"]).text
    # The editor was opened on the definition before that edit: applying over it is refused.
    r = post(before.replace("</name>", "</name>\n  <title>stale</title>"))
    assert r.status_code == 409 and "changed since this editor was opened" in r.text
    assert "stale" not in inactive_xml(client, op, "web")


def test_edit_through_the_rest_api(site):
    client, op, view = site
    before = inactive_xml(client, op, "db")
    edited = before.replace("</name>", "</name>\n  <description>by the api</description>")
    assert client.put("/api/v1/vms/db/xml", json={"xml": edited}, headers=bearer(view)).status_code == 403
    r = client.put("/api/v1/vms/db/xml", json={"xml": edited}, headers=bearer(op))
    assert r.status_code == 202
    assert wait_job(client, op, r.json()["job"])["result"]["applies"] == "now"  # db is shut off
    r = client.put("/api/v1/vms/db/xml", json={"xml": edited.replace("<uuid>", "<uuid>0")}, headers=bearer(op))
    failed = wait_job(client, op, r.json()["job"])
    assert failed["state"] == "failed" and failed["error"]["status"] == 400


def test_device_forms_run_the_cli_operations(site):
    client, op, view = site
    csrf = login(client, view)
    page = client.get("/vms/db?host=hosta").text
    assert 'id="disk-attach"' not in page and 'data-action="iface-detach"' not in page
    r = client.post("/vms/db/interfaces/52:54:00:00:00:02/detach?host=hosta", data={"csrf": csrf})
    assert r.status_code == 403 and "viewer" in r.text
    csrf = login(client, op)
    page = client.get("/vms/db?host=hosta").text
    assert 'id="disk-attach"' in page and 'id="iface-attach"' in page
    assert 'action="/vms/db/interfaces/52%3A54%3A00%3A00%3A00%3A02/detach?host=hosta"' in page
    # Without JavaScript: a redirect to the job's page, which follows it (it refreshes itself).
    r = client.post("/vms/db/interfaces/52%3A54%3A00%3A00%3A00%3A02/detach?host=hosta", data={"csrf": csrf},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/jobs/")
    job = wait_job(client, op, r.headers["location"].rsplit("/", 1)[1])
    # The test driver cannot detach: the job fails with libvirt's reason, journaled as the CLI's.
    assert job["kind"] == "vm.iface.detach" and job["state"] == "failed" and "virDomainDetachDeviceFlags" in \
        job["error"]["error"]
    assert journal.entries(1)[0]["operation"] == "vm.iface.detach"
    assert "virDomainDetachDeviceFlags" in client.get(r.headers["location"]).text
    # With htmx: the job's fragment in place; wrong input is said at once, nothing runs.
    jobs = len(client.app_state.jobs.list())
    htmx = {"HX-Request": "true", "X-Requested-With": "vpd"}
    r = client.post("/vms/db/disks?host=hosta", data={"target": "vdb"}, headers=htmx)
    assert r.status_code == 400 and "exactly one of a volume" in r.text
    r = client.post("/vms/db/interfaces?host=hosta", data={"source": "default", "model": "nope"}, headers=htmx)
    assert r.status_code == 400 and "NIC model" in r.text
    r = client.post("/vms/db/disks?host=hosta", data={"target": "vdb", "vol": "p/x", "apply_to": "sometimes"},
                    headers=htmx)
    assert r.status_code == 400 and "apply to" in r.text
    assert len(client.app_state.jobs.list()) == jobs
    r = client.post("/vms/db/interfaces?host=hosta", data={"source": "default"}, headers=htmx)
    assert r.status_code == 202 and "vm.iface.attach" in r.text
    job = wait_job(client, op, client.app_state.jobs.list()[0].id)
    assert job["state"] == "failed" and "no network named 'default' on hosta" in job["error"]["error"]
    r = client.post("/vms/nosuch/disks/vdb/detach", data={"csrf": csrf})
    assert r.status_code == 404 and "nosuch" in r.text


def _write_backup(root: Path, vm: str, backup_id: str, uuid: str) -> None:
    where = root / vm / backup_id
    where.mkdir(parents=True)
    m = mf.Manifest(id=backup_id, vm=vm, uuid=uuid, host="hosta", created="2026-12-04T10:00:00Z", kind="full",
                    method="offline-copy", guest_state="shut off", domain_sha256="0" * 64,
                    disks=[mf.DiskCopy(target="vda", file="vda.qcow2", source="/images/db.qcow2", virtual_size=2**20,
                                       sha256="0" * 64, bytes=3 * 2**20)])
    (where / mf.MANIFEST).write_text(m.model_dump_json())


def test_vm_page_lists_its_backups(site, tmp_path: Path):
    client, op, view = site
    login(client, view)
    page = client.get("/vms/db?host=hosta").text
    assert 'id="backups"' in page and "the journal knows no backup of db" in page
    root = tmp_path / "backups"
    _write_backup(root, "db", "20261204T100000Z", "0" * 32)
    _write_backup(root, "web", "20261204T110000Z", "1" * 32)
    page = client.get("/vms/db", params={"host": "hosta", "backups_in": str(root)}).text
    assert 'data-backup="20261204T100000Z"' in page and 'data-backup="20261204T110000Z"' not in page
    assert f"{root}/db/20261204T100000Z" in page
    # A directory the journal saw a backup of db go to is listed without asking.
    with journal.record("backup.create", target="hosta/db", to=str(root)):
        pass
    assert 'data-backup="20261204T100000Z"' in client.get("/vms/db?host=hosta").text
    page = client.get("/vms/db", params={"host": "hosta", "backups_in": str(tmp_path / "none")}).text
    assert "is not a directory on hosta" in page


def test_lab_page_plugged_in_by_the_lab(site):
    client, op, view = site
    login(client, view)
    page = client.get("/vms").text
    assert '<a href="/lab">Lab</a>' in page  # the lab registers its page through vpd.web.pages
    page = client.get("/lab").text
    assert 'id="no-lab"' in page and "no lab is up" in page
    csrf = login(client, op)
    r = client.post("/lab/hosts/hosta/power", data={"on": "false", "csrf": csrf}, follow_redirects=False)
    job = wait_job(client, op, r.headers["location"].rsplit("/", 1)[1])
    assert job["kind"] == "lab.host-down" and job["error"]["error"] == "no lab is up"
