#!/usr/bin/env python3
"""Screenshots of the web console's main pages for the README: docs/screenshots/*.png.

    .venv/bin/python scripts/screenshots.py                      # over a throw-away test:// inventory
    .venv/bin/python scripts/screenshots.py --inventory lab.toml --vm mvp4   # over a real one (the demo lab)

Serves `vpd web` on a free loopback port with an operator token of a throw-away VPD_HOME,
drives Debian's headless Chromium (/usr/bin/chromium) with Playwright at 1280x800 — the
laptop size issue 13 asks the pages to fit — and writes hosts, vms, migrate (the VM page's
migrate dialog after its preflight), vm (its disks and NICs), edit (the XML editor), console,
display (the graphical console: over the throw-away inventory a real QEMU whose VNC the VM
`desk` points at), journal, and lab while a lab is up."""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
DOMAIN = ("<domain type='test'><name>{name}</name><memory>{kib}</memory><vcpu>{vcpus}</vcpu>"
          "<os><type>hvm</type></os><devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/"
          "{name}.qcow2'/><target dev='vda' bus='virtio'/><driver name='qemu' type='qcow2'/></disk>"
          "<interface type='network'><mac address='{mac}'/><source network='default'/></interface>"
          "<serial type='pty'><target port='0'/></serial></devices>{state}</domain>")
SHUTOFF = "<test:runstate xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>5</test:runstate>"


VNC = ("<graphics type='vnc' port='{port}' autoport='no' listen='127.0.0.1'>"
       "<listen type='address' address='127.0.0.1'/></graphics>")


def start_vnc_guest() -> tuple[subprocess.Popen, int] | None:
    """A real QEMU (TCG, no disk: its firmware's screen) with VNC on a free loopback port."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([qemu, "-machine", "pc", "-m", "64", "-nodefaults", "-vga", "std", "-display", "none",
                             "-vnc", f"127.0.0.1:{port - 5900}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def demo_inventory(root: Path, vnc_port: int | None = None) -> Path:
    """Two test-driver hosts with a few VMs: what the pages look like without a lab."""
    hosts = {"hosta": [("web1", 2, 1024, True), ("web2", 2, 1024, True), ("db", 4, 4096, False)],
             "hostb": [("mvp4", 1, 512, True), ("backup", 1, 512, False)]}
    if vnc_port:
        hosts["hostb"].append(("desk", 1, 256, True))
    text, mac = "", 0
    for host, vms in hosts.items():
        node = "".join(DOMAIN.format(name=n, vcpus=c, kib=m * 1024, mac=f"52:54:00:00:00:{(mac := mac + 1):02x}",
                                     state="" if up else SHUTOFF) for n, c, m, up in vms)
        if vnc_port:  # desk's display is the QEMU start_vnc_guest started
            disk_end = "desk.qcow2'/><target dev='vda' bus='virtio'/><driver name='qemu' type='qcow2'/></disk>"
            node = node.replace(disk_end, disk_end + VNC.format(port=vnc_port))
        (root / f"{host}.xml").write_text(f"<node>{node}</node>")
        text += f'[[hosts]]\nname = "{host}"\nuri = "test://{root / host}.xml"\n\n'
    (root / "inventory.toml").write_text(text)
    return root / "inventory.toml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inventory", help="inventory file (default: a throw-away test:// one)")
    ap.add_argument("--vm", default="web1", help="the VM whose page, dialog and console are shown")
    ap.add_argument("--display-vm", help="a VM with VNC graphics whose graphical console is shown")
    ap.add_argument("--out", default=str(HERE / "docs" / "screenshots"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vpd-shots-"))
    os.environ["VPD_HOME"] = str(tmp / "home")  # its own tokens and journal
    sys.path.insert(0, str(HERE / "src"))
    import uvicorn
    from playwright.sync_api import sync_playwright

    from vpd.web import create_app
    from vpd.web.tokens import TokenStore

    guest = None if args.inventory else start_vnc_guest()
    inventory = args.inventory or str(demo_inventory(tmp, guest[1] if guest else None))
    _, token = TokenStore().create("operator")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(inventory), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.goto(f"{url}/login")
            page.fill("#token", token)
            page.click("form.login button[type=submit]")
            page.wait_for_url(f"{url}/vms")

            def shot(name: str) -> None:
                page.screenshot(path=str(out / f"{name}.png"))
                print(f"{out / name}.png {(out / f'{name}.png').stat().st_size // 1024} KiB")

            page.goto(f"{url}/hosts")
            shot("hosts")
            page.goto(f"{url}/vms")
            shot("vms")
            page.goto(f"{url}/vms/{args.vm}")
            page.click("#migrate-open")
            page.click("#migrate-dialog button[data-run=check]")
            page.wait_for_selector("#migrate-report table.preflight tr[data-check]", timeout=60_000)
            shot("migrate")
            page.goto(f"{url}/vms/{args.vm}")
            page.evaluate("document.getElementById('disks').previousElementSibling.scrollIntoView()")
            shot("vm")
            page.goto(f"{url}/vms/{args.vm}/edit")
            shot("edit")
            page.goto(f"{url}/vms/{args.vm}/console")
            page.wait_for_timeout(1500)
            shot("console")
            display_vm = args.display_vm or ("desk" if guest else None)
            if display_vm:
                page.goto(f"{url}/vms/{display_vm}/display")
                page.wait_for_selector("#screen[data-state=connected]", timeout=20_000)
                page.wait_for_timeout(2500)  # the firmware draws its screen
                shot("display")
            page.goto(f"{url}/journal")
            shot("journal")
            page.goto(f"{url}/lab")
            if page.locator("#no-lab").count() == 0:  # only over a lab's inventory while it is up
                shot("lab")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        if guest:
            guest[0].kill()
            guest[0].wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
