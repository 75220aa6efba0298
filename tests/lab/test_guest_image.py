"""The lab guest booted by plain QEMU (TCG): boot marker, counter, command
channel, disks, the dirtier and the ACPI power button."""
from __future__ import annotations

import importlib.resources
import re
import select
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from vpd.vm.guest_channel import ConsoleReader, GuestChannel, parse_dirty_status
from vpd.vm.guest_image import GuestImage, build_guest_image

pytestmark = pytest.mark.lab

BOOT_TIME_TARGET_S = 3.0
# Generous: the machine may be busy, and TCG is slow when it is.
BOOT_TIMEOUT_S = 60.0


class UnixSocketTransport:
    """A QEMU serial port exported as a listening Unix socket, as a channel transport."""

    def __init__(self, path: Path, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self._socket.connect(str(path))
                return
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def send(self, data: bytes) -> None:
        self._socket.sendall(data)

    def recv(self, timeout: float) -> bytes:
        readable, _, _ = select.select([self._socket], [], [], timeout)
        if not readable:
            return b""
        data = self._socket.recv(65536)
        if not data:
            raise ConnectionError("QEMU closed the serial port")
        return data

    def close(self) -> None:
        self._socket.close()


@dataclass
class RunningGuest:
    process: subprocess.Popen
    console: ConsoleReader
    channel: GuestChannel
    monitor: Path
    boot_id: str
    boot_seconds: float


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> GuestImage:
    return build_guest_image(tmp_path_factory.mktemp("guest-cache"))


def boot(image: GuestImage, work: Path, cmdline: str, *, virtio: bool = False) -> RunningGuest:
    """Start QEMU and wait for the boot marker; the caller must stop() the guest."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(work / "ide.qcow2"), "64M"], check=True)
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-nographic", "-nodefaults", "-no-reboot",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", cmdline,
        # wait=on: QEMU starts the guest only once the console is connected, so
        # no console output is lost.
        "-serial", f"unix:{work / 'console.sock'},server=on,wait=on",
        "-serial", f"unix:{work / 'channel.sock'},server=on,wait=off",
        "-monitor", f"unix:{work / 'monitor.sock'},server=on,wait=off",
        "-drive", f"file={work / 'ide.qcow2'},if=ide,format=qcow2",
    ]
    if virtio:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(work / "virtio.qcow2"), "32M"], check=True)
        argv += [
            "-drive", f"file={work / 'virtio.qcow2'},if=virtio,format=qcow2",
            # restrict=on: user networking with its built-in DHCP server and
            # no route out of QEMU.
            "-netdev", "user,id=net0,restrict=on,net=198.18.250.0/24,dhcpstart=198.18.250.15", "-device", "virtio-net-pci,netdev=net0",
        ]
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(work / "qemu.log", "wb"))
    try:
        console = UnixSocketTransport(work / "console.sock")
        reader = ConsoleReader(console.recv)
        boot_id = reader.wait_for_boot(BOOT_TIMEOUT_S)
        boot_seconds = time.monotonic() - started
        channel_transport = UnixSocketTransport(work / "channel.sock")
        channel = GuestChannel(channel_transport.send, channel_transport.recv)
        channel.wait_ready(timeout=30)
    except BaseException:
        stop(process)
        raise
    return RunningGuest(process, reader, channel, work / "monitor.sock", boot_id, boot_seconds)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def guest(image, tmp_path_factory):
    running = boot(image, tmp_path_factory.mktemp("guest"), image.cmdline, virtio=True)
    print(f"\nguest boot marker after {running.boot_seconds:.2f} s (target {BOOT_TIME_TARGET_S} s)")
    try:
        yield running
    finally:
        stop(running.process)


def test_cached_build_is_instant(image):
    started = time.monotonic()
    again = build_guest_image(image.initrd.parent)
    assert again == image
    assert time.monotonic() - started < 0.5


def test_boot_marker_and_boot_time(guest):
    assert re.fullmatch(r"[0-9a-f-]{36}", guest.boot_id)
    assert guest.channel.boot_id() == guest.boot_id
    if guest.boot_seconds > BOOT_TIME_TARGET_S:
        print(f"boot took {guest.boot_seconds:.2f} s, over the {BOOT_TIME_TARGET_S} s target")


def test_counter_advances(guest):
    first = int(guest.console.wait_for_line(r"vpd-counter (\d+)", 10).group(1))
    later = int(guest.console.wait_for_line(r"vpd-counter (\d+)", 10).group(1))
    assert later > first


def test_channel_runs_commands(guest):
    result = guest.channel.run("echo hi")
    assert (result.exit_code, result.output) == (0, "hi\n")
    failed = guest.channel.run("echo oops >&2; exit 3")
    assert (failed.exit_code, failed.output) == (3, "oops\n")


def test_channel_carries_any_bytes(guest):
    awkward = "quotes ' \" $HOME `x` \\ and ünïcode"
    assert guest.channel.run(f"cat <<'EOF'\n{awkward}\nEOF").output == awkward + "\n"
    big = guest.channel.run("seq 1 20000", timeout=30)
    assert big.output.split() == [str(n) for n in range(1, 20001)]


def test_guest_helpers(guest):
    assert 0 < guest.channel.uptime_seconds() < 600
    assert guest.channel.sha256("/proc/version") == guest.channel.run("sha256sum /proc/version").output.split()[0]


def test_disks(guest):
    # /proc/partitions appears before the SCSI scan has found the IDE disk.
    deadline = time.monotonic() + 10
    while "sda" not in (disks := guest.channel.disks()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert disks["sda"] == 64 * 1024 * 1024
    assert disks["vda"] == 32 * 1024 * 1024


def test_dhcp_on_virtio_net(guest):
    deadline = time.monotonic() + 20
    while "eth0" not in (addresses := guest.channel.addresses()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "198.18.250.15/24" in addresses.get("eth0", [])
    assert "127.0.0.1/8" in addresses["lo"]


@pytest.mark.parametrize("size_mib, rate_mib_s, generations", [(16, 0, 4), (4, 2, 2)])
def test_dirtier_finds_no_errors(image, tmp_path, size_mib, rate_mib_s, generations):
    running = boot(image, tmp_path, image.cmdline_with_dirtier(size_mib, rate_mib_s))
    try:
        deadline = time.monotonic() + 60
        while (status := running.channel.dirty_status()) is None or status.generation < generations:
            assert time.monotonic() < deadline, f"dirtier too slow: {status}"
            time.sleep(0.5)
        print(f"\ndirtier {size_mib} MiB at {rate_mib_s or 'max'} MiB/s: {status}")
        assert status.errors == 0
        if rate_mib_s:
            assert rate_mib_s * 0.8 <= status.rate_mib_s <= rate_mib_s * 1.2
        else:
            assert status.rate_mib_s > 0
    finally:
        stop(running.process)


def test_dirtier_reports_a_corrupted_page(tmp_path):
    """Run on the host, where a test can change the dirtier's memory behind its back."""
    source = importlib.resources.files("vpd.vm") / "guest" / "dirtier.c"
    (tmp_path / "dirtier.c").write_bytes(source.read_bytes())
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "dirtier"), str(tmp_path / "dirtier.c")], check=True)
    status_file = tmp_path / "status"
    dirtier = subprocess.Popen([str(tmp_path / "dirtier"), "8", "4", str(status_file)],
                               stdout=subprocess.PIPE, text=True)
    try:
        while not status_file.exists():
            time.sleep(0.05)
        # The 8 MiB block is the only mapping that large; hit a word in its 10th page.
        for mapping in Path(f"/proc/{dirtier.pid}/maps").read_text().splitlines():
            start, end = (int(address, 16) for address in mapping.split()[0].split("-"))
            if end - start >= 8 * 1024 * 1024:
                with open(f"/proc/{dirtier.pid}/mem", "r+b") as memory:
                    memory.seek(start + 10 * 4096 + 64)
                    memory.write(b"\xde\xad\xbe\xef")
                break
        else:
            pytest.fail("dirtier's memory block not found")
        for line in dirtier.stdout:
            if line.startswith("VPD-DIRTY-ERROR"):
                assert re.fullmatch(r"VPD-DIRTY-ERROR page=\d+ expected=0x[0-9a-f]{16} got=0x[0-9a-f]{16}\n", line)
                break
        status = parse_dirty_status(dirtier.stdout.readline())
        assert status is not None and status.errors == 1
    finally:
        dirtier.kill()
        dirtier.wait()


def test_no_dirtier_without_cmdline(guest):
    assert guest.channel.dirty_status() is None


def test_acpi_power_button_powers_off(image, tmp_path):
    running = boot(image, tmp_path, image.cmdline)
    try:
        monitor = UnixSocketTransport(running.monitor)
        monitor.send(b"system_powerdown\n")
        assert running.process.wait(timeout=30) == 0
    finally:
        stop(running.process)
