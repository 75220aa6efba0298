"""The serial console in the browser: a websocket bridging a VM's serial0 (vm.console.ConsoleStream
over libvirt's virStream) to xterm.js. Typing into a console is an action: only an operator, on a
server not read-only; a browser's cookie counts only from this site's own pages (the Origin of the
websocket handshake must be this server — browsers send no CSRF header on a websocket)."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ...core.errors import VpdError
from ...vm import operations as vm_ops
from ..auth import identify

router = APIRouter(prefix="/vms", tags=["vms"])

# Close codes (4000-4999: the application's own), shown by the page.
UNAUTHORIZED, FORBIDDEN, UNAVAILABLE = 4401, 4403, 4404


class ByteStream(Protocol):
    """What the bridge needs of a console: ConsoleStream, or any in-memory pipe."""

    def recv(self, timeout: float) -> bytes: ...  # b'' when nothing came; raises VpdError at the end
    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def refusal(ws: WebSocket, watch: bool = False) -> tuple[int, str] | None:
    """Why this websocket may not type into a console (close code, reason), or None. `watch`:
    only looking is asked (any valid token)."""
    who = identify(ws)  # type: ignore[arg-type]  # reads headers, cookies and app state only
    if who is None:
        return UNAUTHORIZED, "this needs a token: log in again"
    if not watch and ws.app.state.read_only:
        return FORBIDDEN, "this console is read-only (vpd web --read-only): the serial console needs an operator"
    if not watch and not who.can_act:
        return FORBIDDEN, f"token {who.token_id} is a viewer's: typing into a console needs an operator token"
    if who.via == "cookie":
        origin = ws.headers.get("origin")
        if origin is None or urlsplit(origin).netloc != ws.headers.get("host"):
            return FORBIDDEN, f"a console opened with the session cookie must come from this site (origin {origin})"
    return None


def open_console(ws: WebSocket, name: str, host: str | None) -> ByteStream:
    """The VM's serial0 through libvirt (blocking: run in a thread)."""
    from ...vm.console import ConsoleStream

    found = vm_ops.locate(ws.app.state.backend.session(), name, host)
    if not found.domain.isActive():
        raise VpdError(f"VM {name} on {found.host.name} is not running: its serial console is closed")
    return ConsoleStream(found.domain, "serial0")


async def bridge(ws: WebSocket, stream: ByteStream, poll: float = 0.2) -> str:
    """Guest output to the websocket (binary frames), the websocket's frames (keys) to the guest,
    until either side ends. Returns why it ended."""
    async def guest_to_browser() -> str:
        while True:
            try:
                chunk = await asyncio.to_thread(stream.recv, poll)
            except VpdError as exc:
                return exc.message
            if chunk:
                await ws.send_bytes(chunk)

    async def browser_to_guest() -> str:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return "the browser left"
            data = message.get("bytes") or (message.get("text") or "").encode()
            if data:
                await asyncio.to_thread(stream.send, data)

    tasks = [asyncio.ensure_future(guest_to_browser()), asyncio.ensure_future(browser_to_guest())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


@router.websocket("/{name}/console")
async def vm_console(ws: WebSocket, name: str, host: str | None = None) -> None:
    """Serial console (serial0) of VM `name`: binary frames both ways, the guest's bytes and the
    keys typed; text frames from the server are notices (why it refused or ended). Operators only."""
    await ws.accept()
    refused = refusal(ws)
    if refused is not None:
        await ws.send_text(refused[1])
        await ws.close(code=refused[0], reason=refused[1][:120])
        return
    try:
        stream = await asyncio.to_thread(ws.app.state.console_opener, ws, name, host)
    except VpdError as exc:
        await ws.send_text(exc.message)
        await ws.close(code=UNAVAILABLE, reason=exc.message[:120])
        return
    try:
        why = await bridge(ws, stream)
    finally:
        await asyncio.to_thread(stream.close)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.send_text(f"console closed: {why}")
        await ws.close(code=1000)
