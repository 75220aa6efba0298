"""The graphical console: the websocket /api/v1/vms/{name}/vnc bridged to a real QEMU's VNC
server (TCG, no disk, stopped with -S; its password set as libvirt would), the RFB handshake
seen from the browser's side, view-only enforced by the bridge, refusals, and the page."""
from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from vpd.connect import rfb  # noqa: E402

from .test_web_api import bearer, web_client  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
PASSWORD = "s3cret"
DOMAIN = """<domain type='test'><name>{name}</name><memory>65536</memory><vcpu>1</vcpu>
<os><type>hvm</type></os><devices>{graphics}</devices></domain>"""
VNC = ("<graphics type='vnc' port='{port}' autoport='no' listen='127.0.0.1' passwd='{password}'>"
       "<listen type='address' address='127.0.0.1'/></graphics>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def qemu_vnc():
    """A real QEMU whose VNC server listens on the loopback with a password; its port."""
    if QEMU is None:
        pytest.skip("no qemu-system-x86_64 (scripts/setup.sh installs it)")
    port = free_port()
    # -vnc takes a display number (port - 5900); the password as libvirt hands it to QEMU (a secret).
    proc = subprocess.Popen([QEMU, "-machine", "none", "-S", "-nodefaults", "-display", "none",
                             "-object", f"secret,id=vncpw,data={PASSWORD}",
                             "-vnc", f"127.0.0.1:{port - 5900},password-secret=vncpw"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "qemu ended"
                assert time.monotonic() < deadline, "QEMU's VNC server did not listen"
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def display_inventory(tmp_path: Path, port: int) -> Path:
    """One test-driver host `t`: `desk` runs with a VNC display on `port`, `plain` runs headless,
    `off` has a display (stopped by the fixtures: the test driver starts every VM it reads)."""
    node = tmp_path / "node.xml"
    off = VNC.format(port=-1, password="x").replace("autoport='no'", "autoport='yes'")
    node.write_text("<node>" + DOMAIN.format(name="desk", graphics=VNC.format(port=port, password=PASSWORD))
                    + DOMAIN.format(name="plain", graphics="") + DOMAIN.format(name="off", graphics=off) + "</node>")
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[[hosts]]\nname = "t"\nuri = "test://{node}"\n')
    return inv


@pytest.fixture
def display_site(tmp_path: Path, monkeypatch, qemu_vnc):
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    with web_client(display_inventory(tmp_path, qemu_vnc)) as served:
        client, op, view = served
        r = client.post("/api/v1/vms/off/actions/destroy", headers=bearer(op))
        client.app_state.jobs.wait(r.json()["job"], timeout=20)
        yield served


def browser_handshake(ws) -> tuple[int, int, bytes]:
    """What noVNC does, as bytes: the version, security None, ClientInit (not shared: the bridge
    shares anyway). Returns the ServerInit's width, height and desktop name."""
    assert ws.receive_bytes() == b"RFB 003.008\n"
    ws.send_bytes(b"RFB 003.008\n")
    assert ws.receive_bytes() == bytes([1, rfb.SEC_NONE])
    ws.send_bytes(bytes([rfb.SEC_NONE]))
    assert ws.receive_bytes() == b"\0\0\0\0"
    ws.send_bytes(b"\x00")
    init = b""
    while len(init) < 24 or len(init) < 24 + struct.unpack(">I", init[20:24])[0]:
        init += ws.receive_bytes()
    width, height = struct.unpack(">HH", init[:4])
    return width, height, init[24:]


def test_operator_reaches_qemu_vnc_through_the_websocket(display_site):
    client, op, _ = display_site
    with client.websocket_connect("/api/v1/vms/desk/vnc", headers=bearer(op)) as ws:
        width, height, name = browser_handshake(ws)  # vpd answered QEMU's password challenge
        assert width > 0 and height > 0 and name.startswith(b"QEMU")
        ws.send_bytes(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))  # FramebufferUpdateRequest
        update = ws.receive_bytes()
        assert update[0] == 0  # FramebufferUpdate: the screen comes back


def test_viewer_watches_and_qemu_vnc_with_a_wrong_password_is_refused(display_site, monkeypatch):
    client, op, view = display_site
    with client.websocket_connect("/api/v1/vms/desk/vnc", headers=bearer(view)) as ws:
        assert browser_handshake(ws)[2].startswith(b"QEMU")
    from vpd.web.api import display

    real = display.locate_display
    client.app_state.display_locator = lambda ws, name, host: {**real(ws, name, host), "password": "wrong"}
    with client.websocket_connect("/api/v1/vms/desk/vnc", headers=bearer(op)) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
    assert closed.value.code == 4404 and "refused vpd's authentication" in closed.value.reason


class RecordingVncServer:
    """A minimal RFB 3.8 server without authentication that records what a client sends after
    ClientInit: to see which of a viewer's messages the bridge lets through."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.client_init = b""
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.sendall(b"RFB 003.008\n")
            self._recv(conn, 12)
            conn.sendall(bytes([1, rfb.SEC_NONE]))
            self._recv(conn, 1)
            conn.sendall(b"\0\0\0\0")
            self.client_init = self._recv(conn, 1)
            conn.sendall(struct.pack(">HH16sI", 8, 8, bytes(16), 4) + b"fake")
            while chunk := conn.recv(4096):
                self.received += chunk

    def close(self) -> None:
        self.sock.close()


def test_a_viewers_input_never_reaches_the_display(display_site):
    client, op, view = display_site
    server = RecordingVncServer()
    from vpd.web.api import display

    real = display.locate_display
    client.app_state.display_locator = lambda ws, name, host: {**real(ws, name, host), "port": server.port,
                                                               "password": None}
    key = struct.pack(">BBxxI", 4, 1, 0x61)  # KeyEvent 'a' down
    pointer = struct.pack(">BBHH", 5, 1, 10, 10)
    cut = struct.pack(">BxxxI", 6, 3) + b"abc"
    update = struct.pack(">BBHHHH", 3, 1, 0, 0, 8, 8)
    encodings = struct.pack(">BxHii", 2, 2, 0, -223)
    try:
        with client.websocket_connect("/api/v1/vms/desk/vnc", headers=bearer(view)) as ws:
            assert browser_handshake(ws)[2] == b"fake"
            stream = encodings + key + pointer + cut + update
            for i in range(0, len(stream), 5):  # split across frames anywhere: the bridge reassembles
                ws.send_bytes(stream[i:i + 5])
            deadline = time.monotonic() + 10
            while len(server.received) < len(encodings + update) and time.monotonic() < deadline:
                time.sleep(0.02)
        assert server.client_init == b"\x01"  # shared, though the browser asked for exclusive
        assert bytes(server.received) == encodings + update
    finally:
        server.close()


def test_view_only_filter_keeps_only_picture_requests():
    keep = rfb.ViewOnlyFilter()
    fence = struct.pack(">BxxxIB", 248, 0, 2) + b"ok"
    size = struct.pack(">BxHHBx", 251, 640, 480, 1) + bytes(16)
    qemu_key = struct.pack(">BBHII", 255, 0, 1, 0x61, 30)
    pixel_format = bytes([0]) + bytes(19)
    assert keep.feed(fence[:3]) == b"" and keep.feed(fence[3:] + size + qemu_key + pixel_format) == fence + pixel_format
    assert keep.dropped == 2
    with pytest.raises(rfb.RfbError, match="unknown type 7"):
        keep.feed(b"\x07\x00")


def test_vnc_password_response_is_des_with_mirrored_key_bits():
    # FIPS 81's worked example; then the password's bytes with their bits mirrored ("a" 0x61 -> 0x86).
    assert rfb.des_encrypt_block(bytes.fromhex("133457799bbcdff1"), bytes.fromhex("0123456789abcdef")) == \
        bytes.fromhex("85e813540f0ab405")
    challenge = bytes(range(16))
    key = bytes([0x86, 0x46, 0xa6, 0, 0, 0, 0, 0])  # "abe", zero-padded
    assert rfb.vnc_auth_response("abe", challenge) == rfb.des_encrypt_block(key, challenge[:8]) + \
        rfb.des_encrypt_block(key, challenge[8:])


def test_refusals_and_the_page(display_site):
    client, op, view = display_site

    def closed_with(path: str, headers: dict) -> tuple[int, str]:
        with client.websocket_connect(path, headers=headers) as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_bytes()
        return closed.value.code, closed.value.reason

    assert closed_with("/api/v1/vms/desk/vnc", {})[0] == 4401
    cookie = {"cookie": f"vpd_session={view}"}
    code, reason = closed_with("/api/v1/vms/desk/vnc", {**cookie, "origin": "http://evil.example"})
    assert code == 4403 and "from this site" in reason
    code, reason = closed_with("/api/v1/vms/plain/vnc", bearer(op))
    assert code == 4404 and "has no VNC or SPICE display" in reason
    code, reason = closed_with("/api/v1/vms/off/vnc", bearer(op))
    assert code == 4404 and "not running" in reason
    # The pages: a link from the VM page, noVNC for everyone, view-only for a viewer.
    assert 'id="display-link"' in client.get("/vms/desk", headers=bearer(view)).text
    assert 'id="display-link"' not in client.get("/vms/plain", headers=bearer(view)).text
    page = client.get("/vms/desk/display", headers=bearer(view)).text
    assert 'data-ws="/api/v1/vms/desk/vnc?host=t"' in page and 'data-view-only="true"' in page
    assert "/static/display.js" in page and "View only" in page
    page = client.get("/vms/desk/display", headers=bearer(op)).text
    assert 'data-view-only="false"' in page and 'id="display-cad"' in page
    page = client.get("/vms/plain/display", headers=bearer(op)).text
    assert "has no VNC or SPICE display" in page and 'id="screen"' not in page
