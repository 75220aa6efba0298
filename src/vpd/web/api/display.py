"""The graphical console in the browser: a websocket bridging noVNC to a VM's VNC server. QEMU's
VNC listens on its host's loopback (vpd's default), which the browser cannot reach: vpd connects
to it — directly for a local host, else through `ssh -W` to that host — authenticates with the
VM's password (the browser never learns it) and relays RFB as binary frames both ways. An
operator's input reaches the guest; a viewer's session is view-only, enforced here (rfb.
ViewOnlyFilter), not by the page. Every client shares the display, none disconnects another."""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ...connect import rfb
from ...connect.ssh import tcp_forward_argv
from ...core.errors import VpdError
from ...vm import operations as vm_ops
from ..auth import identify
from .console import UNAVAILABLE, refusal

router = APIRouter(prefix="/vms", tags=["vms"])

HANDSHAKE_S = 15.0  # connecting through SSH and the server's handshake; a dead host must not hang the page
CHUNK = 1 << 16


@dataclass
class DisplayConnection:
    """A byte stream to the VM's VNC server (a TCP socket, or an `ssh -W` process's pipes)."""
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    process: asyncio.subprocess.Process | None = None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        if self.process is not None:
            if self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.terminate()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 5)


def locate_display(ws: WebSocket, name: str, host: str | None) -> dict:
    """The VM's VNC endpoint and password (blocking: run in a thread)."""
    return vm_ops.display_endpoint(ws.app.state.backend.session(), name, host)


async def open_display(endpoint: dict) -> DisplayConnection:
    """Connect to the display as its host sees it: a local host directly, a remote one through
    SSH (argv, no shell; the inventory's identity, known_hosts and shared connection)."""
    listen = endpoint["listen"]
    address = "127.0.0.1" if listen in ("0.0.0.0", "localhost") else "::1" if listen == "::" else listen
    host = endpoint["host"]
    if host.is_local:
        reader, writer = await asyncio.open_connection(address, endpoint["port"])
        return DisplayConnection(reader, writer)
    process = await asyncio.create_subprocess_exec(
        *tcp_forward_argv(host, address, endpoint["port"]), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert process.stdout is not None and process.stdin is not None
    return DisplayConnection(process.stdout, process.stdin, process)


class FrameReader:
    """Exact byte counts out of the browser's websocket frames (RFB does not align to frames)."""

    def __init__(self, ws: WebSocket):
        self.ws, self.buf = ws, bytearray()

    async def frame(self) -> bytes | None:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        return message.get("bytes") or (message.get("text") or "").encode()

    async def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = await self.frame()
            if data is None:
                raise rfb.RfbError("the browser left during the handshake")
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


async def _browser_handshake(ws: WebSocket, frames: FrameReader) -> None:
    await ws.send_bytes(rfb.client_greeting())
    version = await frames.read(12)
    await ws.send_bytes(rfb.client_security(version))
    result = rfb.client_security_result(await frames.read(1), version)
    if result:
        await ws.send_bytes(result)
    await frames.read(1)  # ClientInit: replaced by SHARED_CLIENT_INIT


async def relay(ws: WebSocket, frames: FrameReader, display: DisplayConnection, view_only: bool) -> str:
    """RFB both ways until either side ends; a viewer's client messages pass ViewOnlyFilter."""
    keep = rfb.ViewOnlyFilter() if view_only else None

    async def display_to_browser() -> str:
        while chunk := await display.reader.read(CHUNK):
            await ws.send_bytes(chunk)
        return "the display closed"

    async def browser_to_display() -> str:
        pending = bytes(frames.buf)
        frames.buf.clear()
        while True:
            data = keep.feed(pending) if keep is not None else pending
            if data:
                display.writer.write(data)
                await display.writer.drain()
            got = await frames.frame()
            if got is None:
                return "the browser left"
            pending = got

    tasks = [asyncio.ensure_future(display_to_browser()), asyncio.ensure_future(browser_to_display())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finished = next(iter(done))
        exc = finished.exception()
        if isinstance(exc, VpdError):
            return exc.message
        if exc is not None and not isinstance(exc, (WebSocketDisconnect, ConnectionError)):
            raise exc
        return finished.result() if exc is None else "the connection broke"
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, ConnectionError):
                await task


def _why(exc: Exception, what: str) -> str:
    if isinstance(exc, VpdError):
        return exc.message
    return f"{what} within {HANDSHAKE_S:g} s" if isinstance(exc, TimeoutError) else f"{what}: {exc}"


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.close(code=code, reason=reason[:120])


@router.websocket("/{name}/vnc")
async def vm_vnc(ws: WebSocket, name: str, host: str | None = None) -> None:
    """Graphical console (VNC) of VM `name` for noVNC: RFB in binary frames, with no
    authentication toward the browser (the token did that). Operators send input; a viewer's
    session (or any on a read-only server) is view-only. Close codes: 4401 no token, 4403 not
    from this site, 4404 no display (the reason says why), 1000 when either side ended."""
    await ws.accept()
    refused = refusal(ws, watch=True)
    if refused is not None:
        await _close(ws, *refused)
        return
    who = identify(ws)  # type: ignore[arg-type]
    view_only = who is None or not who.can_act or ws.app.state.read_only
    try:
        endpoint = await asyncio.to_thread(ws.app.state.display_locator, ws, name, host)
        display = await asyncio.wait_for(open_display(endpoint), HANDSHAKE_S)
    except (TimeoutError, VpdError, OSError) as exc:
        await _close(ws, UNAVAILABLE, _why(exc, "cannot reach the display"))
        return
    try:
        try:
            await asyncio.wait_for(rfb.server_handshake(display.reader, display.writer, endpoint["password"]),
                                   HANDSHAKE_S)
            frames = FrameReader(ws)
            await asyncio.wait_for(_browser_handshake(ws, frames), HANDSHAKE_S)  # a silent client holds no display
            display.writer.write(rfb.SHARED_CLIENT_INIT)
            await display.writer.drain()
        except (TimeoutError, VpdError, OSError) as exc:
            await _close(ws, UNAVAILABLE, _why(exc, "the display did not answer"))
            return
        why = await relay(ws, frames, display, view_only)
    finally:
        await display.close()
    await _close(ws, 1000, why)
