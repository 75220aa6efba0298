"""A guest's serial ports as byte streams, through libvirt (virDomainOpenConsole).

Going through libvirt, not a local pty or socket, means it works for any host
of the inventory and keeps working after the guest migrates."""
from __future__ import annotations

import queue
import time

import libvirt

from ..connect.libvirt_conn import ensure_event_loop
from ..core.errors import VpdError


class ConsoleStream:
    """Non-blocking console stream; bytes arrive on libvirt's event thread into a queue."""

    def __init__(self, dom: libvirt.virDomain, device: str | None = "serial0"):
        ensure_event_loop()
        self._chunks: "queue.Queue[bytes | None]" = queue.Queue()
        self._stream = dom.connect().newStream(libvirt.VIR_STREAM_NONBLOCK)
        try:
            dom.openConsole(device, self._stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        except libvirt.libvirtError as exc:
            raise VpdError(f"cannot open console {device or 'console0'} of {dom.name()}: "
                           f"{exc.get_error_message()}") from None
        self._stream.eventAddCallback(
            libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP,
            self._on_event, None)
        self._closed = False

    def _on_event(self, stream: libvirt.virStream, events: int, _opaque) -> None:
        if events & libvirt.VIR_STREAM_EVENT_READABLE:
            while True:
                try:
                    data = stream.recv(65536)
                except libvirt.libvirtError:
                    data = b""
                if data == -2:  # would block: drained
                    return
                if not data:
                    break
                self._chunks.put(data)
        # error, hangup or EOF: tell readers, stop watching
        self._chunks.put(None)
        try:
            stream.eventRemoveCallback()
        except libvirt.libvirtError:
            pass

    def recv(self, timeout: float) -> bytes:
        """Bytes received within `timeout` seconds (b'' if none). Raises once the stream ended."""
        try:
            chunk = self._chunks.get(timeout=timeout)
        except queue.Empty:
            return b""
        if chunk is None:
            self._chunks.put(None)
            raise VpdError("the guest console closed (guest stopped or moved?)")
        return chunk

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = self._stream.send(bytes(view))
            if sent == -2:  # would block
                time.sleep(0.005)
                continue
            view = view[sent:]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.eventRemoveCallback()
        except libvirt.libvirtError:
            pass
        try:
            self._stream.finish()
        except libvirt.libvirtError:
            try:
                self._stream.abort()
            except libvirt.libvirtError:
                pass

    def __enter__(self) -> "ConsoleStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
