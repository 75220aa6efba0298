"""The web console's REST API (FastAPI TestClient = httpx) over libvirt's test driver: tokens
and roles, CSRF, jobs running the CLI's operations, errors mapped like the CLI's, OpenAPI."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from vpd.core import events, journal  # noqa: E402
from vpd.core.errors import VpdError  # noqa: E402
from vpd.web import create_app  # noqa: E402
from vpd.web.tokens import TokenStore  # noqa: E402

from .test_operation_layer import _node  # noqa: E402


def two_host_inventory(tmp_path: Path) -> Path:
    """hosta runs `web` and has `db` shut off; hostb has `solo` shut off (test-driver node files)."""
    a = _node(tmp_path / "a.xml", {"web": ("52:54:00:00:00:01", True), "db": ("52:54:00:00:00:02", False)})
    b = _node(tmp_path / "b.xml", {"solo": ("52:54:00:00:00:03", False)})
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[[hosts]]\nname = "hosta"\nuri = "{a}"\n\n[[hosts]]\nname = "hostb"\nuri = "{b}"\n')
    return inv


def tokens() -> tuple[str, str]:
    """An operator and a viewer token in this test's VPD_HOME."""
    store = TokenStore()
    return store.create("operator")[1], store.create("viewer")[1]


@contextmanager
def web_client(inventory: Path) -> Iterator[tuple[TestClient, str, str]]:
    """(client, operator token, viewer token) of an app over `inventory`."""
    op, view = tokens()
    app = create_app(str(inventory))
    with TestClient(app) as client:
        client.app_state = app.state
        yield client, op, view


@pytest.fixture
def web(tmp_path: Path, monkeypatch):
    """An app over two_host_inventory. Yields (client, operator token, viewer token)."""
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    with web_client(two_host_inventory(tmp_path)) as served:
        yield served


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def wait_job(client, token: str, job_id: str) -> dict:
    client.app_state.jobs.wait(job_id, timeout=20)
    r = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token))
    assert r.status_code == 200
    return r.json()


def vm_state(client, token: str, name: str) -> str:
    return client.get(f"/api/v1/vms/{name}", headers=bearer(token)).json()["state"]


def test_no_token_401_bad_token_401(web):
    client, _, _ = web
    r = client.get("/api/v1/vms")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "token" in r.json()["error"] and r.json()["hint"]
    assert client.get("/api/v1/vms", headers=bearer("vpd_0000_nope")).status_code == 401
    assert client.post("/api/v1/vms/db/actions/start").status_code == 401


def test_lists_hosts_and_vms_across_the_inventory(web):
    client, _, view = web
    vms = client.get("/api/v1/vms", headers=bearer(view)).json()
    assert {(v["host"], v["name"], v["state"]) for v in vms["vms"]} == {
        ("hosta", "web", "running"), ("hosta", "db", "shut off"), ("hostb", "solo", "shut off")}
    hosts = client.get("/api/v1/hosts", headers=bearer(view)).json()["hosts"]
    assert [h["name"] for h in hosts] == ["hosta", "hostb"] and all(h["reachable"] for h in hosts)
    detail = client.get("/api/v1/hosts/hostb", headers=bearer(view)).json()
    assert [v["name"] for v in detail["vms"]] == ["solo"]
    info = client.get("/api/v1/vms/solo", headers=bearer(view)).json()
    assert info["host"] == "hostb" and info["interfaces"][0]["mac"] == "52:54:00:00:00:03"
    assert "<name>solo</name>" in client.get("/api/v1/vms/solo/xml", headers=bearer(view)).json()["xml"]


def test_viewer_gets_403_and_nothing_changes(web):
    client, _, view = web
    before = len(journal.entries(100))
    r = client.post("/api/v1/vms/db/actions/start", headers=bearer(view))
    assert r.status_code == 403 and "viewer" in r.json()["error"]
    r = client.post("/api/v1/migrations", json={"vm": "web", "to": "hostb"}, headers=bearer(view))
    assert r.status_code == 403
    assert vm_state(client, view, "db") == "shut off"
    assert len(journal.entries(100)) == before and client.app_state.jobs.list() == []


def test_operator_starts_a_vm_through_a_job(web):
    client, op, _ = web
    seen: list[events.Event] = []
    unsubscribe = events.subscribe(seen.append)
    try:
        r = client.post("/api/v1/vms/db/actions/start", headers=bearer(op))
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["kind"] == "vm.start" and job["target"] == "hosta/db" and r.headers["location"] == job["href"]
        done = wait_job(client, op, job["job"])
        events.emit("elsewhere", "not this job's")  # emitted outside the job: not in its stream
    finally:
        unsubscribe()
    assert done["state"] == "succeeded", done
    assert done["result"]["host"] == "hosta" and done["result"]["action"] == "start"
    assert vm_state(client, op, "db") == "running"
    entry = journal.entries(1)[0]  # the same operation as `vpd vm start`: journaled, locked
    assert (entry["operation"], entry["target"], entry["status"]) == ("vm.start", "hosta/db", "ok")
    # Its event stream: the state changes were already sent; the stream ends with the job.
    with client.stream("GET", f"/api/v1/jobs/{job['job']}/events", headers=bearer(op)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    assert "event: end" in text and '"succeeded"' in text and "not this job's" not in text


def test_job_events_stream_the_jobs_progress(web):
    """Progress emitted inside a job (by its operation) reaches that job's SSE stream, with its id."""
    client, op, _ = web
    jobs = client.app_state.jobs

    def work():
        for i in range(3):
            events.emit("demo", f"step {i}", i, 3)
        return {"ok": True}

    job = jobs.submit("demo", "x", "test", work)
    jobs.wait(job.id)
    with client.stream("GET", f"/api/v1/jobs/{job.id}/events", headers=bearer(op)) as stream:
        text = "".join(stream.iter_text())
    progress = [json.loads(block.split("data: ", 1)[1]) for block in text.split("\n\n")
                if block.startswith("id: ") and "event: progress" in block]
    assert [p["step"] for p in progress] == ["step 0", "step 1", "step 2"]
    assert all(p["scope"] == job.id for p in progress)
    with client.stream("GET", f"/api/v1/jobs/{job.id}/events",
                       headers={**bearer(op), "Last-Event-ID": "1"}) as stream:
        again = "".join(stream.iter_text())
    assert "step 2" in again and "step 0" not in again


def test_errors_map_like_the_cli(web):
    client, op, _ = web
    r = client.post("/api/v1/vms/nosuch/actions/start", headers=bearer(op))
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "no VM named 'nosuch' on any host" and body["hint"] and body["kind"] == "NotFound"
    assert client.get("/api/v1/vms/nosuch", headers=bearer(op)).status_code == 404
    assert client.get("/api/v1/hosts/hostz", headers=bearer(op)).status_code == 404
    r = client.post("/api/v1/vms/bad name!/actions/start", headers=bearer(op))
    assert r.status_code == 400 and r.json()["kind"] == "UsageError"
    assert client.post("/api/v1/vms/db/actions/explode", headers=bearer(op)).status_code == 400
    r = client.post("/api/v1/migrations", json={"vm": "web", "to": "hostz"}, headers=bearer(op))
    assert r.status_code == 404 and "hostz" in r.json()["error"]
    r = client.post("/api/v1/migrations", json={"vm": "web", "to": "hostb", "max_downtime_ms": 0},
                    headers=bearer(op))
    assert r.status_code == 400 and "max-downtime" in r.json()["error"]
    assert client.get("/api/v1/jobs/none", headers=bearer(op)).status_code == 404
    # A failed operation: the job fails with the CLI's message; the journal says failed.
    r = client.post("/api/v1/vms/solo/actions/resume", headers=bearer(op))
    failed = wait_job(client, op, r.json()["job"])
    assert failed["state"] == "failed" and failed["error"]["error"] == "VM solo is shut off, not paused"
    assert failed["error"]["status"] == 500 and journal.entries(1)[0]["status"] == "failed"


def test_busy_vm_answers_409_in_the_job(web):
    from vpd.ops.locks import LockSet, vm_key

    client, op, _ = web
    held = LockSet([vm_key("db")], {"journal_id": 7, "operation": "vm.clone", "pid": 1}).acquire()
    try:
        r = client.post("/api/v1/vms/db/actions/start", headers=bearer(op))
        failed = wait_job(client, op, r.json()["job"])
    finally:
        held.release()
    assert failed["error"]["status"] == 409 and "busy: vm.clone started by PID 1" in failed["error"]["error"]


def test_cookie_session_needs_the_csrf_header(web):
    client, op, _ = web
    r = client.post("/login", data={"token": op, "next": "/vms"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/vms"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/api/v1/vms").status_code == 200  # the cookie reads
    r = client.post("/api/v1/vms/db/actions/start")  # a cross-site form could send this
    assert r.status_code == 403 and "X-Requested-With" in r.json()["error"]
    assert vm_state(client, op, "db") == "shut off"
    r = client.post("/api/v1/vms/db/actions/start", headers={"X-Requested-With": "vpd"})
    assert r.status_code == 202
    assert wait_job(client, op, r.json()["job"])["state"] == "succeeded"


def test_read_only_server_refuses_operators(tmp_path, monkeypatch, test_inventory):
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    _, op = TokenStore().create("operator")
    with TestClient(create_app(str(test_inventory), read_only=True)) as client:
        assert client.get("/api/v1/vms", headers=bearer(op)).status_code == 200
        r = client.post("/api/v1/vms/test/actions/destroy", headers=bearer(op))
        assert r.status_code == 403 and "read-only" in r.json()["error"]


def test_revoked_token_is_refused_at_once(web):
    client, _, view = web
    store = TokenStore()
    assert client.get("/api/v1/journal", headers=bearer(view)).status_code == 200
    store.revoke(view.split("_")[1])
    assert client.get("/api/v1/journal", headers=bearer(view)).status_code == 401
    assert store.verify(view) is None and all(t.role == "operator" for t in store.list())
    assert view not in (Path(store.path).read_text())  # only hashes are kept


def test_pages_show_state_without_javascript(web):
    client, op, view = web
    assert client.get("/vms", follow_redirects=False).headers["location"].startswith("/login")
    client.post("/login", data={"token": view, "next": "/vms"})
    page = client.get("/vms").text
    assert 'data-vm="solo"' in page and "shut off" in page and "data-action" not in page  # a viewer: no buttons
    # Containers beside the VMs: these hosts run no incusd, and the table says so once.
    assert 'id="containers"' in page and "no containers" in page and "no incusd answers on hosta, hostb" in page
    assert "no incusd answers on hostb" in client.get("/fragments/ct-rows?host=hostb").text
    assert "hostb" in client.get("/hosts").text
    assert "&lt;name&gt;web&lt;/name&gt;" in client.get("/vms/web?host=hosta").text  # the XML, escaped
    assert client.get("/vms/nosuch").status_code == 404
    r = client.post("/vms/db/actions/start?host=hosta", headers={"X-Requested-With": "vpd"})
    assert r.status_code == 403 and "viewer" in r.text
    client.post("/login", data={"token": op, "next": "/vms"})
    assert 'data-action="start"' in client.get("/vms").text
    r = client.post("/vms/db/actions/start?host=hosta", headers={"X-Requested-With": "vpd"})
    assert r.status_code == 202 and "vm.start" in r.text
    client.app_state.jobs.wait(client.app_state.jobs.list()[0].id)
    assert "vm.start" in client.get("/journal").text


# --- the schema: every CLI group gets its resource -------------------------------------

# The API resource that covers each top-level CLI command.
RESOURCE_OF_CLI = {
    "vm": "vms", "host": "hosts", "migrate": "migrations", "history": "migrations", "journal": "journal",
    "pool": "pools", "vol": "volumes", "iscsi": "iscsi", "net": "networks", "snapshot": "snapshots",
    "backup": "backups", "restore": "backups", "template": "templates", "export": "ovf", "import": "ovf",
    "cluster": "clusters", "ha": "clusters", "access": "access", "lab": "lab", "ct": "containers",
    "recover": "recovery", "practica": "practicas",
}
# CLI commands whose resource is not in the API yet: delete a name when its router lands.
NOT_YET: set[str] = set()


def test_openapi_has_a_resource_for_every_cli_group(web):
    from vpd.cli.main import COMMAND_MODULES

    client, _, _ = web
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    # A resource is any named segment of a path: /vms/{name}/snapshots is the snapshots resource.
    resources = {seg for p in paths for seg in p.split("/")[3:] if seg and not seg.startswith("{")}
    assert "jobs" in resources and "/api/v1/jobs/{job_id}/events" in paths
    for cmd in sorted(set(COMMAND_MODULES) - {"web"}):
        assert cmd in RESOURCE_OF_CLI, f"new CLI command {cmd!r}: name its API resource in RESOURCE_OF_CLI"
        resource = RESOURCE_OF_CLI[cmd]
        if cmd in NOT_YET:
            assert resource not in resources, f"/api/v1/{resource} exists: remove {cmd!r} from NOT_YET"
        else:
            assert resource in resources, f"`vpd {cmd}` has no /api/v1/{resource} in the OpenAPI schema"


def test_recovery_is_planned_for_viewers_and_run_by_operators(web):
    client, op, view = web
    planned = client.get("/api/v1/recovery", headers=bearer(view))
    assert planned.status_code == 200 and planned.json()["dry_run"] is True
    assert client.post("/api/v1/recovery", headers=bearer(view)).status_code == 403
    r = client.post("/api/v1/recovery", headers=bearer(op))
    assert r.status_code == 202
    done = wait_job(client, op, r.json()["job"])
    assert done["state"] == "succeeded" and done["result"]["entries"] == []


def test_practicas_are_readable_by_viewers(web):
    client, _, view = web
    listed = client.get("/api/v1/practicas", headers=bearer(view))
    assert listed.status_code == 200 and len(listed.json()["practicas"]) >= 7
    shown = client.get("/api/v1/practicas/4?lang=en", headers=bearer(view))
    assert shown.status_code == 200 and shown.json()["number"] == 4
    assert client.get("/api/v1/practicas/99", headers=bearer(view)).status_code in (400, 404)


def test_migration_dialog_dry_run_and_its_report_without_javascript(web):
    """The VM page offers operators the migrate dialog (destinations: the other hosts); a dry run's
    report renders as named checks (ok/warn/NO, detail, fix) for the dialog, on the job page, and
    — kept by the journal even though the preflight failed — on the VM page without JavaScript."""
    client, op, view = web
    page = client.get("/vms/web", headers=bearer(op)).text
    assert 'id="migrate-dialog"' in page and '<option value="hostb">' in page and "No migration of web" in page
    assert "migrate-dialog" not in client.get("/vms/web", headers=bearer(view)).text
    assert 'href="/vms/web?host=hosta#migrate"' in client.get("/vms", headers=bearer(op)).text
    assert "#migrate" not in client.get("/vms", headers=bearer(view)).text
    r = client.post("/api/v1/migrations", json={"vm": "web", "to": "hostb", "dry_run": True}, headers=bearer(op))
    assert r.status_code == 202
    job = wait_job(client, op, r.json()["job"])
    assert job["state"] == "failed" and job["error"]["report"]["dry_run"]  # the test driver's hosts fail checks
    for html in (client.get(f"/fragments/jobs/{job['id']}/migration-report", headers=bearer(view)).text,
                 client.get(f"/jobs/{job['id']}", headers=bearer(view)).text,
                 client.get("/vms/web", headers=bearer(view)).text):
        assert 'data-check="migration ports hosta-&gt;hostb"' in html  # named, not a crash on a host without address
        assert '<td class="verdict">NO</td>' in html and "give hostb an `address` in the inventory" in html
        assert "preflight failed" in html
    assert "Last migration" in client.get("/vms/web", headers=bearer(view)).text
    assert "Last migration" not in client.get("/vms/db", headers=bearer(view)).text
    assert journal.entries(1, "migrate")[0]["result"]["report"]["preflight"]


class BytePipe:
    """A console in memory (no libvirt): what the guest writes is queued for recv, what the
    bridge sends is kept; None queued is the guest closing."""

    def __init__(self):
        import queue

        self.from_guest: queue.Queue = queue.Queue()
        self.to_guest: queue.Queue = queue.Queue()
        self.closed = False

    def recv(self, timeout: float) -> bytes:
        import queue

        try:
            chunk = self.from_guest.get(timeout=timeout)
        except queue.Empty:
            return b""
        if chunk is None:
            raise VpdError("the guest console closed")
        return chunk

    def send(self, data: bytes) -> None:
        self.to_guest.put(data)

    def close(self) -> None:
        self.closed = True


def _refused(client, path: str, headers: dict) -> tuple[str, int]:
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(path, headers=headers) as ws:
        notice = ws.receive_text()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    return notice, closed.value.code


def test_console_websocket_is_for_operators_from_this_site(web):
    client, op, view = web
    path = "/api/v1/vms/web/console"
    assert _refused(client, path, {})[1] == 4401
    notice, code = _refused(client, path, bearer(view))
    assert code == 4403 and "viewer" in notice
    cookie = {"cookie": f"vpd_session={op}"}
    notice, code = _refused(client, path, {**cookie, "origin": "http://evil.example"})
    assert code == 4403 and "from this site" in notice
    assert _refused(client, path, cookie)[1] == 4403  # a browser always sends an Origin
    # Allowed through: the test driver has no console to open, and `db` is not running.
    notice, code = _refused(client, path, {**cookie, "origin": "http://testserver"})
    assert code == 4404 and "virDomainOpenConsole" in notice
    notice, code = _refused(client, "/api/v1/vms/db/console", bearer(op))
    assert code == 4404 and "not running" in notice
    assert _refused(client, "/api/v1/vms/nope/console", bearer(op))[1] == 4404


def test_console_websocket_bridges_bytes_both_ways(web):
    """The bridge over an in-memory pipe: keys reach the guest, the guest's bytes the browser,
    and the guest closing ends the websocket with a notice (and closes the stream)."""
    client, op, _ = web
    pipe = BytePipe()
    client.app_state.console_opener = lambda ws, name, host: pipe
    with client.websocket_connect("/api/v1/vms/web/console", headers=bearer(op)) as ws:
        ws.send_bytes(b"root\r")
        assert pipe.to_guest.get(timeout=5) == b"root\r"
        ws.send_text("ls\r")
        assert pipe.to_guest.get(timeout=5) == b"ls\r"
        pipe.from_guest.put(b"login: \x1b[0m\xc3\xa9")
        assert ws.receive_bytes() == b"login: \x1b[0m\xc3\xa9"
        pipe.from_guest.put(None)
        assert "console closed: the guest console closed" in ws.receive_text()
    assert pipe.closed


def test_console_page_history_for_viewers_terminal_for_operators(web):
    client, op, view = web
    page = client.get("/vms/web/console", headers=bearer(view)).text
    assert 'id="terminal"' not in page and "History" in page and "viewers see the history" in page
    page = client.get("/vms/web/console", headers=bearer(op)).text
    assert 'data-ws="/api/v1/vms/web/console?host=hosta"' in page and "xterm.js" in page
    assert 'href="/vms/web/console?host=hosta"' in client.get("/vms/web", headers=bearer(view)).text
