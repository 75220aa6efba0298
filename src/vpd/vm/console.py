"""A guest's serial ports as byte streams, through libvirt (virDomainOpenConsole).

Going through libvirt, not a local pty or socket, means it works for any host
of the inventory and keeps working after the guest migrates."""
from __future__ import annotations

import queue
import time

import libvirt

from ..connect.hostfiles import HostFiles
from ..connect.inventory import Host
from ..connect.libvirt_conn import ensure_event_loop
from ..core.errors import VpdError


class ConsoleStream:
    """Non-blocking console stream; bytes arrive on libvirt's event thread into a queue."""

    def __init__(self, dom: libvirt.virDomain, device: str | None = "serial0"):
        ensure_event_loop()
        self._chunks: queue.Queue[bytes | None] = queue.Queue()
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

    def __enter__(self) -> ConsoleStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SERIAL_LOG_DIR = "/var/log/libvirt/qemu"


def serial_log_path(vm_name: str) -> str:
    """Where a vpd-made VM's serial0 output is kept (by virtlogd, on the VM's host), so
    `vpd vm console --log` shows the guest's history, not only what it writes now."""
    return f"{SERIAL_LOG_DIR}/{vm_name}-serial0.log"


def start_fresh_log(conn: libvirt.virConnect, host: Host, vm_name: str, files: HostFiles | None = None) -> None:
    """Before a new VM is defined (no domain of that name on the host): virtlogd appends to its
    log (<log append='on'>, so the history outlives reboots), and a file a deleted VM of the same
    name left would show as the new one's history. Only vpd's own path for that name, only on a
    QEMU host (the test driver runs no guest and writes no log)."""
    if conn.getType() != "QEMU":
        return
    (files or HostFiles(host)).remove_file(serial_log_path(vm_name))


DETACH = b"\x1d"  # Ctrl-], as virsh console


def attach(dom: libvirt.virDomain, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """An interactive serial console: keys go to the guest, its output to the terminal, until
    Ctrl-] (or end of input when stdin is not a terminal). The terminal is restored whatever happens."""
    import os
    import select
    import termios
    import threading
    import tty

    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    done = threading.Event()
    with ConsoleStream(dom, "serial0") as stream:
        def pump_out() -> None:
            try:
                while not done.is_set():
                    chunk = stream.recv(0.2)
                    if chunk:
                        os.write(stdout_fd, chunk)
            except VpdError:
                done.set()

        reader = threading.Thread(target=pump_out, daemon=True)
        reader.start()
        try:
            if saved is not None:
                tty.setraw(stdin_fd)
            while not done.is_set():
                ready, _, _ = select.select([stdin_fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(stdin_fd, 1024)
                if data.split(DETACH)[0]:
                    stream.send(data.split(DETACH)[0])
                if not data or DETACH in data:
                    break
        finally:
            done.set()
            if saved is not None:
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
            reader.join(timeout=1)
