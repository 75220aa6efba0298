"""A local terminal joined to an incusd operation's websockets: `vpd ct exec` on a TTY and
`vpd ct console`.

incusd gives two websockets per such operation: "0" carries the pty's bytes both ways,
"control" takes window resizes. When the process ends, incusd sends an empty text message on
"0" and finishes the operation only once the client has closed its websockets."""
from __future__ import annotations

import os
import select
import shutil
import signal
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from websockets.exceptions import WebSocketException

from .client import IncusClient, resize_message

DETACH = b"\x01q"  # ctrl-a q, as `incus console` detaches


def terminal_size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
        return size.columns, size.lines
    except OSError:
        fallback = shutil.get_terminal_size()
        return fallback.columns, fallback.lines


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The local terminal hands every key to the container (ctrl-c included) until we leave."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: keys typed ahead still go to the container
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class DetachScanner:
    """Finds the detach keys in what the user types, across reads; returns what to forward."""

    def __init__(self, keys: bytes | None):
        self.keys = keys
        self.held = b""
        self.detached = False

    def feed(self, data: bytes) -> bytes:
        if not self.keys:
            return data
        buf = self.held + data
        at = buf.find(self.keys)
        if at >= 0:
            self.detached = True
            self.held = b""
            return buf[:at]
        # Keep a trailing prefix of the keys until the next read says what follows it.
        for n in range(len(self.keys) - 1, 0, -1):
            if buf.endswith(self.keys[:n]):
                self.held = buf[-n:]
                return buf[:-n]
        self.held = b""
        return buf


def attach(client: IncusClient, op_id: str, fds: dict[str, str], *, stdin_fd: int = 0, stdout_fd: int = 1,
           detach: bytes | None = None, on_ready: Callable[[], None] | None = None) -> bool:
    """Pump bytes until the process ends (True) or the user detaches / stdin ends (False).
    `on_ready` runs once both websockets are open (what is typed from then on arrives)."""
    with client.websocket(op_id, fds["control"]) as control, client.websocket(op_id, fds["0"]) as data:
        ended = threading.Event()
        if on_ready is not None:
            on_ready()

        def from_container() -> None:
            try:
                for message in data:
                    if isinstance(message, str):  # the end-of-output marker
                        break
                    os.write(stdout_fd, message)
            except (WebSocketException, OSError):
                pass
            ended.set()

        def on_resize(*_: object) -> None:
            try:
                control.send(resize_message(*terminal_size(stdout_fd)))
            except (WebSocketException, OSError):
                pass

        reader = threading.Thread(target=from_container, daemon=True)
        reader.start()
        previous = signal.signal(signal.SIGWINCH, on_resize) if threading.current_thread() is threading.main_thread() \
            else None
        scanner = DetachScanner(detach)
        try:
            with raw_mode(stdin_fd):
                while not ended.is_set():
                    ready, _, _ = select.select([stdin_fd], [], [], 0.1)
                    if not ready:
                        continue
                    chunk = os.read(stdin_fd, 4096)
                    if not chunk:
                        break
                    forward = scanner.feed(chunk)
                    if forward:
                        data.send(forward)
                    if scanner.detached:
                        break
        finally:
            if previous is not None:
                signal.signal(signal.SIGWINCH, previous)
        finished = ended.is_set()
    reader.join(timeout=5)
    return finished
