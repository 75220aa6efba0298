"""The web console on the lab, over one running lab guest with a VNC display: its graphical
console on a remote host (QEMU's VNC on that host's loopback, reached through `ssh -W`), then
an operator migrating it from the VM page's migration dialog in headless Chromium until the
report shows."""
from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fast.test_web_api import bearer, tokens  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from vpd.connect import inventory as inv  # noqa: E402
from vpd.web import create_app  # noqa: E402

from .conftest import vpd_json  # noqa: E402
from .migration_helpers import migration_ports_open, remove_guest  # noqa: E402

pytestmark = pytest.mark.lab
VM = "webdesk"


@pytest.fixture(scope="module")
def desk(lab):
    """A booted lab guest on hosta (a remote host: qemu+ssh) with a VNC display, its disk on
    the shared pool so that it can migrate."""
    vpd_json("vm", "create", VM, "--host", "hosta", "--lab-guest", "--graphics", "vnc", "--disk",
             "size=16M,pool=CONT_VOL_COMP", "--start", "--wait-boot")
    yield VM
    remove_guest(VM)


def test_graphical_console_of_a_remote_vm_through_ssh_and_the_lab_page(desk):
    op, view = tokens()
    with TestClient(create_app(inv.resolve().source)) as client:
        page = client.get(f"/vms/{desk}/display", headers=bearer(view)).text
        assert "VNC on 127.0.0.1:" in page and 'data-view-only="true"' in page  # only hosta itself reaches it
        lab_page = client.get("/lab", headers=bearer(view)).text  # the lab's own page, plugged in
        assert 'data-host="hosta"' in lab_page and 'data-host="hostb"' in lab_page and "firewall backend" in lab_page
        assert 'data-action="power-off"' not in lab_page  # a viewer: no power buttons
        assert 'data-action="power-off"' in client.get("/lab", headers=bearer(op)).text
        for token in (op, view):
            started = time.monotonic()
            with client.websocket_connect(f"/api/v1/vms/{desk}/vnc", headers=bearer(token)) as ws:
                assert ws.receive_bytes() == b"RFB 003.008\n"
                ws.send_bytes(b"RFB 003.008\n")
                assert ws.receive_bytes() == b"\x01\x01"  # None: vpd answered QEMU's password challenge
                ws.send_bytes(b"\x01")
                assert ws.receive_bytes() == b"\0\0\0\0"
                ws.send_bytes(b"\x01")
                init = ws.receive_bytes()
                while len(init) < 24 or len(init) < 24 + struct.unpack(">I", init[20:24])[0]:
                    init += ws.receive_bytes()
                assert init[24:].startswith(b"QEMU")
            print(f"\nVNC through ssh -W to hosta: ServerInit after {time.monotonic() - started:.2f} s")


def test_operator_migrates_from_the_dialog_and_sees_the_report(desk):
    chromium = Path("/usr/bin/chromium")
    pytest.importorskip("playwright")
    if not chromium.exists():
        pytest.skip("no /usr/bin/chromium")
    from fast.test_web_browser import login, serve
    from playwright.sync_api import expect, sync_playwright

    op, _ = tokens()
    with migration_ports_open(), serve(Path(inv.resolve().source)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            page = browser.new_context().new_page()
            login(page, url, op)
            page.goto(f"{url}/vms/{desk}?host=hosta")
            page.click("#migrate-open")
            dialog = page.locator("#migrate-dialog")
            dialog.locator("select[name=to]").select_option("hostb")
            dialog.locator("input[name=persistent]").check()
            dialog.locator("input[name=undefine_source]").check()
            page.on("dialog", lambda d: d.accept())
            started = time.monotonic()
            dialog.locator("button[data-run=migrate]").click()
            expect(dialog.locator("#migrate-report .outcome")).to_contain_text("migrated", timeout=120_000)
            took = time.monotonic() - started
            expect(dialog.locator('#migrate-report tr[data-check="running on destination"]')).to_be_visible()
            print(f"\nmigration from the dialog: report after {took:.1f} s")
        finally:
            browser.close()
    hosts = vpd_json("vm", "list", "--all")["hosts"]
    assert {h["host"]: v["state"] for h in hosts for v in h["vms"] if v["name"] == desk} == {"hostb": "running"}
