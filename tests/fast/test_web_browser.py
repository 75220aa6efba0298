"""The console in a real browser: Debian's headless Chromium driven by Playwright (its own
browser download needs the internet). Log in with a token, list VMs, start one and see its
state change without a reload; a viewer gets no action and is refused one."""
from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytest.importorskip("playwright")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (scripts/setup.sh installs it)", allow_module_level=True)

import uvicorn  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

# Every wait returns as soon as the page gets there; the deadline is for a machine under load.
expect.set_options(timeout=30_000)

from vpd.web import create_app  # noqa: E402

from .test_web_api import tokens, two_host_inventory  # noqa: E402
from .test_web_display import display_inventory, qemu_vnc  # noqa: E402, F401  (qemu_vnc: a fixture)


@contextmanager
def serve(inventory: Path):
    """vpd web under uvicorn on a free loopback port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(str(inventory)), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def console(tmp_path: Path, monkeypatch):
    """vpd web under uvicorn on a free loopback port, over two test-driver hosts."""
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    inv = two_host_inventory(tmp_path)
    op, view = tokens()
    with serve(inv) as url:
        yield url, op, view


def login(page, url: str, token: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#token", token)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{url}/vms")


def test_browser_operator_starts_a_vm_viewer_cannot(console):
    url, op, view = console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_context().new_page()
            login(page, url, op)
            rows = page.locator("#vm-rows tr[data-vm]")
            expect(rows).to_have_count(3)
            db = page.locator('#vm-rows tr[data-vm="db"]')
            expect(db.locator("td.state")).to_have_text("shut off")
            page.evaluate("window.__sameDocument = 1")  # gone if the page reloads
            db.locator('button[data-action="start"]').click()
            expect(page.locator("#flash")).to_contain_text("vm.start")
            expect(db.locator("td.state")).to_have_text("running", timeout=60_000)
            expect(db.locator('button[data-action="shutdown"]')).to_be_visible()
            assert page.evaluate("window.__sameDocument") == 1
            expect(page.locator("#flash .job")).to_contain_text("succeeded", timeout=60_000)

            viewer = browser.new_context().new_page()
            login(viewer, url, view)
            expect(viewer.locator("#role")).to_have_text("viewer")
            expect(viewer.locator('#vm-rows tr[data-vm="solo"] td.state')).to_have_text("shut off")
            assert viewer.locator("button[data-action]").count() == 0
            status = viewer.evaluate("""async () => (await fetch('/api/v1/vms/solo/actions/start',
                {method: 'POST', headers: {'X-Requested-With': 'vpd'}})).status""")
            assert status == 403
            time.sleep(0.3)
            expect(viewer.locator('#vm-rows tr[data-vm="solo"] td.state')).to_have_text("shut off")
        finally:
            browser.close()


def _stand_in_migration(session, name, to, opts, source=None):
    """What migrate_vm does as the web sees it (the test driver cannot migrate): progress ticks
    built by migration.run.progress from libvirt-shaped job stats, a policy step, a report."""
    from vpd.core import events
    from vpd.core.checks import Check
    from vpd.migration.migrate import Report
    from vpd.migration.run import progress

    for i, remaining in enumerate((512, 300, 120, 40, 0)):
        step, done, total, data = progress({"data_remaining": remaining * 2**20, "data_processed": (512 - remaining)
                                            * 2**20, "memory_bps": 200 * 2**20, "memory_dirty_rate": 2000,
                                            "memory_iteration": i}, 0.5 * i)
        events.emit("migrate", step, done, total, "MiB", data=data)
        if i == 2:
            events.emit("migrate", "policy: raise-downtime", data={"policy": "raise-downtime", "value": 150})
        time.sleep(0.15)
    return Report(name, "hosta", to, "live", preflight=[Check("versions hosta", True, "libvirt 11")], ok=True,
                  validation=[Check("guest answers on hostb", True, "serial echo")], downtime_ms=42,
                  total_seconds=1.2, job_seconds=0.8, bytes_sent=512 * 2**20, iterations=5,
                  policy_steps=["raise-downtime 150"])


def test_browser_migrate_dialog_runs_the_preflight(console, monkeypatch):
    """The VM page's migrate dialog runs the dry run and shows the preflight's named checks
    (the test driver's hosts fail some: the table shows them with their verdicts and fixes);
    a migration (a stand-in: the test driver cannot migrate) plots its ticks, lists the policy
    step as it arrives and ends with the report."""
    url, op, _ = console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_context().new_page()
            login(page, url, op)
            page.goto(f"{url}/vms/web")
            assert page.evaluate("typeof uPlot") == "function"  # the chart library is served from the package
            page.click("#migrate-open")
            dialog = page.locator("#migrate-dialog")
            expect(dialog).to_be_visible()
            dialog.locator("select[name=to]").select_option("hostb")
            dialog.locator("button[data-run=check]").click()
            checks = dialog.locator("#migrate-report table.preflight tr[data-check]")
            expect(checks.first).to_be_visible(timeout=60_000)
            assert checks.count() >= 5
            expect(dialog.locator('tr[data-check="migration ports hosta->hostb"] td.verdict')).to_have_text("NO")
            expect(page.locator("#migrate-status")).to_contain_text("failed")

            monkeypatch.setattr("vpd.web.api.migrations.migrate_vm", _stand_in_migration)
            page.on("dialog", lambda d: d.accept())  # "Migrate web from hosta to hostb?"
            dialog.locator("button[data-run=migrate]").click()
            expect(dialog.locator("#migrate-chart .uplot canvas")).to_be_visible()
            expect(dialog.locator("#migrate-steps li")).to_have_text("policy: raise-downtime (150)")
            expect(dialog.locator("#migrate-report .outcome")).to_contain_text("migrated", timeout=60_000)
            expect(dialog.locator('#migrate-report tr[data-check="guest answers on hostb"]')).to_be_visible()
            expect(dialog.locator("#migrate-report")).to_contain_text("42 ms")
            plotted = page.evaluate("document.getElementById('migrate-dialog').chart.data")
            assert plotted[0] == [0, 0.5, 1, 1.5, 2] and plotted[1] == [512, 300, 120, 40, 0]  # s, MiB remaining
            assert plotted[2] == [200] * 5  # throughput MiB/s

            # The serial console: xterm.js loads and its websocket reaches the server under uvicorn
            # (the test driver has no console to open: the server's notice shows, nothing hangs).
            page.goto(f"{url}/vms/web/console")
            assert page.evaluate("typeof Terminal") == "function"
            expect(page.locator("#console-status")).to_contain_text("virDomainOpenConsole", timeout=30_000)
            expect(page.locator("#terminal .xterm")).to_be_visible()
        finally:
            browser.close()


def test_browser_graphical_console_shows_a_real_qemu_display(tmp_path: Path, monkeypatch, qemu_vnc):  # noqa: F811
    """noVNC (ES modules served from the package) connects through vpd's websocket to a real
    QEMU's VNC server and shows its screen; a viewer's session is view-only."""
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    op, view = tokens()
    with serve(display_inventory(tmp_path, qemu_vnc)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_context().new_page()
            login(page, url, op)
            page.goto(f"{url}/vms/desk")
            page.click("#display-link")
            screen = page.locator("#screen")
            expect(screen).to_have_attribute("data-state", "connected", timeout=60_000)
            expect(page.locator("#display-status")).to_have_text("connected")
            expect(screen).to_have_attribute("data-desktop", re.compile("^QEMU"))
            expect(screen.locator("canvas")).to_be_visible()
            assert page.evaluate("window.vpdDisplay.viewOnly") is False
            expect(page.locator("#display-cad")).to_be_enabled()

            viewer = browser.new_context().new_page()
            login(viewer, url, view)
            viewer.goto(f"{url}/vms/desk/display")
            expect(viewer.locator("#screen")).to_have_attribute("data-state", "connected", timeout=60_000)
            assert viewer.evaluate("window.vpdDisplay.viewOnly") is True
            # Both share the display: the operator's session is still up.
            expect(screen).to_have_attribute("data-state", "connected")
        finally:
            browser.close()
