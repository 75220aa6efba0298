"""Host side of the lab guest's serial lines: its console (ttyS0, with the boot
marker that `vm start --wait-boot` waits for) and its command channel (ttyS1,
which migration validation asks). See guest/init for the guest side.

Command channel wire format, one request per line (host -> guest):

    VPD-REQ <id> <length of payload> <payload: base64 of the command>

and one frame per request (guest -> host):

    VPD-BEGIN <id>
    <base64 of the command's stdout+stderr, any number of lines>
    VPD-END <id> <exit code> <sha256 hex of the output>

The guest runs requests one at a time with `sh -c`. A serial line carries
noise before the guest has set it up (boot garbage, the tty echoing a request
sent too early), so the host skips everything outside frames, and the guest
ignores lines that are not a whole request: the length field catches bytes
lost while the port was being opened. The digest catches a damaged frame.

Both classes sit on a transport of two callables: `send(data: bytes)` and
`recv(timeout: float) -> bytes`, which returns b"" when nothing arrived in
time and raises when the line is closed.
"""
from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import ipaddress
import itertools
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import VpdError
from ..xml.domain import Domain
from ..xml.edit import LAB_GUEST_NS, DomainEditor

Send = Callable[[bytes], None]
Recv = Callable[[float], bytes]

REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
BOOT_MARKER = re.compile(r"VPD-BOOT-MARKER bootid=([0-9a-f-]{36})")
# Files the guest's init and vpd-dirtier keep up to date.
GUEST_BOOT_ID_FILE = "/run/vpd/boot-id"
GUEST_DIRTY_STATUS_FILE = "/run/vpd/dirty-status"

_BEGIN = b"VPD-BEGIN "
_END = re.compile(rb"VPD-END ([A-Za-z0-9_.-]{1,64}) (-?\d+) ([0-9a-f]{64})")
# Outside a frame only a BEGIN marker matters, so endless noise without a
# newline is trimmed to what could still be the start of one.
_MAX_NOISE_BYTES = 64 * 1024
_NOISE_TAIL_BYTES = len(_BEGIN) + 64


class GuestChannelTimeout(VpdError):
    """The guest did not answer in time."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str  # stdout and stderr, interleaved as the command wrote them


@dataclass(frozen=True)
class Reply:
    request_id: str
    exit_code: int
    output: bytes


@dataclass(frozen=True)
class CorruptReply:
    """A frame that started but cannot be trusted (damaged, or cut short by another frame)."""
    request_id: str
    reason: str


@dataclass(frozen=True)
class DirtyStatus:
    generation: int  # completed passes over the dirtier's memory
    errors: int  # pages that did not hold what was last written to them
    rate_mib_s: float


def encode_request(request_id: str, command: str) -> bytes:
    if not REQUEST_ID.fullmatch(request_id):
        raise ValueError(f"request id {request_id!r} must match {REQUEST_ID.pattern}")
    payload = base64.b64encode(command.encode())
    return b"VPD-REQ %s %d %s\n" % (request_id.encode(), len(payload), payload)


class ReplyParser:
    """Turns the guest's byte stream, fed in chunks of any size, into replies."""

    def __init__(self) -> None:
        self._partial_line = b""
        self._frame_id: str | None = None
        self._frame_lines: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Reply | CorruptReply]:
        *lines, self._partial_line = (self._partial_line + chunk).split(b"\n")
        if self._frame_id is None and len(self._partial_line) > _MAX_NOISE_BYTES:
            self._partial_line = self._partial_line[-_NOISE_TAIL_BYTES:]
        events: list[Reply | CorruptReply] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: bytes) -> Reply | CorruptReply | None:
        begin_at = line.rfind(_BEGIN)
        if begin_at >= 0 and REQUEST_ID.fullmatch(line[begin_at + len(_BEGIN):].decode("ascii", "replace")):
            interrupted = self._frame_id
            self._frame_id = line[begin_at + len(_BEGIN):].decode()
            self._frame_lines = []
            if interrupted is not None:
                return CorruptReply(interrupted, "frame cut short by the next one")
            return None
        if self._frame_id is None:
            return None  # noise between frames
        if not line.startswith(b"VPD-END "):
            if line:
                self._frame_lines.append(line)
            return None
        request_id, self._frame_id = self._frame_id, None
        return _close_frame(request_id, line, self._frame_lines)


def _close_frame(request_id: str, end_line: bytes, body: list[bytes]) -> Reply | CorruptReply:
    end = _END.fullmatch(end_line)
    if end is None or end.group(1).decode() != request_id:
        return CorruptReply(request_id, f"bad end line {end_line[:100]!r}")
    try:
        output = binascii.a2b_base64(b"".join(body), strict_mode=True)
    except binascii.Error as error:
        return CorruptReply(request_id, f"output is not valid base64 ({error})")
    if hashlib.sha256(output).hexdigest().encode() != end.group(3):
        return CorruptReply(request_id, "output does not match its sha256")
    return Reply(request_id, int(end.group(2)), output)


def _backed_off(interval: float, probe_interval: float, max_interval: float | None) -> float:
    """The wait before the next probe: doubled, up to `max_interval` (default: `probe_interval`)."""
    return min(interval * 2, max(probe_interval, max_interval or probe_interval))


def _silent(timeout: float) -> GuestChannelTimeout:
    return GuestChannelTimeout(f"the guest's command channel did not answer within {timeout:g} s",
                               hint="is the guest booted (boot marker on its console) and is "
                                    "the transport its second serial port?")


class GuestChannel:
    """Runs shell commands in the guest over its command channel, one at a time."""

    def __init__(self, send: Send, recv: Recv):
        self._send = send
        self._recv = recv
        self._parser = ReplyParser()
        # A per-channel prefix keeps replies meant for an earlier channel on the
        # same serial line (a previous session) from being taken as ours.
        self._id_prefix = secrets.token_hex(4)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def wait_ready(self, timeout: float = 30.0, probe_interval: float = 1.0, max_interval: float | None = None) -> None:
        """Wait until the guest answers. Call it first: requests sent before the
        guest listens, or while it opens the port, are lost. Probes are resent,
        which is safe because they do nothing - but each one resent costs a slow guest a
        shell and delays the next command, so the interval doubles up to `max_interval`
        (default: it stays `probe_interval`)."""
        deadline = time.monotonic() + timeout
        interval = probe_interval
        with self._lock:
            probes: set[str] = set()
            while time.monotonic() < deadline:
                probes.add(self._send_request("true"))
                if self._await_reply(probes, min(deadline, time.monotonic() + interval)):
                    return
                interval = _backed_off(interval, probe_interval, max_interval)
        raise _silent(timeout)

    def run_when_ready(self, command: str, timeout: float = 30.0, probe_interval: float = 1.0,
                       max_interval: float | None = None) -> CommandResult:
        """Run `command` as soon as the guest listens: readiness and the command in one round trip
        when the guest has the request. A request sent while the guest opens the port is lost, so
        while no answer comes, cheap `true` pings follow every `probe_interval`, doubling up to
        `max_interval` (a slow guest would queue each one). The guest answers in order: a ping
        answered first means the command was lost, and it is sent again. Only for a command that
        changes nothing, as a guest may run it twice."""
        deadline = time.monotonic() + timeout
        interval = probe_interval
        with self._lock:
            commands = {self._send_request(command)}
            pings: set[str] = set()
            while time.monotonic() < deadline:
                reply = self._await_reply(commands | pings, min(deadline, time.monotonic() + interval))
                if reply is None:
                    pings.add(self._send_request("true"))
                    interval = _backed_off(interval, probe_interval, max_interval)
                elif reply.request_id in commands:
                    return CommandResult(reply.exit_code, reply.output.decode("utf-8", "replace"))
                else:
                    pings.clear()  # the guest listens now: the command again, and its answer awaited
                    commands.add(self._send_request(command))
        raise _silent(timeout)

    def run(self, command: str, timeout: float = 10.0) -> CommandResult:
        """Run `command` with `sh -c` in the guest. On timeout the guest may still
        be running it, and later commands wait behind it."""
        with self._lock:
            request_id = self._send_request(command)
            reply = self._await_reply({request_id}, time.monotonic() + timeout)
        if reply is None:
            raise GuestChannelTimeout(f"the guest did not answer {command!r} within {timeout:g} s",
                                      hint="the command may still be running in the guest; "
                                           "call wait_ready() once it is done")
        return CommandResult(reply.exit_code, reply.output.decode("utf-8", "replace"))

    def boot_id(self) -> str:
        return self._checked_output(f"cat {GUEST_BOOT_ID_FILE}").strip()

    def uptime_seconds(self) -> float:
        return float(self._checked_output("cat /proc/uptime").split()[0])

    def disks(self) -> dict[str, int]:
        """Block devices the guest kernel knows (disks and partitions): name -> size in bytes."""
        return parse_partitions(self._checked_output("cat /proc/partitions"))

    def addresses(self) -> dict[str, list[str]]:
        """Interface -> its addresses in CIDR form, IPv4 and IPv6."""
        return parse_ip_addresses(self._checked_output("ip -o addr show"))

    def ipv4_addresses(self, interface: str) -> list[str]:
        """The interface's IPv4 addresses in CIDR form ([] if it has none or does not exist)."""
        _check_guest_ifname(interface)
        result = self.run(f"ip -o -4 addr show dev {interface}")
        return [a for a in parse_ip_addresses(result.output).get(interface, [])] if result.exit_code == 0 else []

    def interface_with_mac(self, mac: str, timeout: float = 20.0) -> str:
        """The guest's name for the NIC with this MAC (a hot-plugged NIC may take a moment to appear)."""
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac.lower()):
            raise ValueError(f"not a MAC address: {mac!r}")
        deadline = time.monotonic() + timeout
        while True:
            found = self.run(f"grep -l -x {mac.lower()} /sys/class/net/*/address").output.split()
            if found:
                return found[0].split("/")[-2]
            if time.monotonic() > deadline:
                raise GuestChannelTimeout(f"no NIC with MAC {mac} appeared in the guest within {timeout:g} s")
            time.sleep(0.5)

    def wait_ipv4(self, interface: str, timeout: float = 30.0) -> str:
        """Wait until the interface has an IPv4 address (its DHCP lease, for a guest NIC); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.ipv4_addresses(interface)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise GuestChannelTimeout(f"the guest's {interface} got no IPv4 address within {timeout:g} s",
                                          hint="is its network's DHCP server running and the NIC attached?")
            time.sleep(0.5)

    def set_static_address(self, interface: str, cidr: str) -> None:
        """Stop DHCP on the interface and give it a fixed address (for LANs without a DHCP server)."""
        _check_guest_ifname(interface)
        iface = ipaddress.ip_interface(cidr)  # ValueError on anything that is not an address
        self._checked_output(
            f"touch /run/vpd/no-dhcp-{interface}; "
            f"for p in /run/vpd/udhcpc-{interface}-*.pid; do [ -f $p ] && kill $(cat $p); done; "
            f"ip link set {interface} up && ip -4 addr flush dev {interface} && "
            f"ip addr add {iface.with_prefixlen} dev {interface}")

    def ping(self, address: str, count: int = 2, timeout_s: int = 3) -> bool:
        """Whether `address` answers ICMP echo from inside the guest."""
        ip = ipaddress.ip_address(address)
        return self.run(f"ping -c {int(count)} -W {int(timeout_s)} {ip}", timeout=count * timeout_s + 10).exit_code == 0

    def sha256(self, path: str) -> str:
        digest = self._checked_output(f"sha256sum {shlex.quote(path)}").split()[0]
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise VpdError(f"unexpected sha256sum output in the guest for {path}: {digest!r}")
        return digest

    def dirty_status(self) -> DirtyStatus | None:
        """The dirtier's latest report, or None if the guest runs no dirtier."""
        result = self.run(f"cat {GUEST_DIRTY_STATUS_FILE}")
        return parse_dirty_status(result.output) if result.exit_code == 0 else None

    def _send_request(self, command: str) -> str:
        request_id = f"{self._id_prefix}-{next(self._numbers)}"
        self._send(encode_request(request_id, command))
        return request_id

    def _await_reply(self, request_ids: set[str], deadline: float) -> Reply | None:
        while (remaining := deadline - time.monotonic()) > 0:
            for event in self._parser.feed(self._recv(remaining)):
                if event.request_id not in request_ids:
                    continue  # a late answer to a request that already timed out
                if isinstance(event, CorruptReply):
                    raise VpdError(f"the guest's reply to request {event.request_id} was damaged: {event.reason}",
                                   hint="the serial line lost or changed bytes; retry the command")
                return event
        return None

    def _checked_output(self, command: str) -> str:
        result = self.run(command)
        if result.exit_code != 0:
            raise VpdError(f"`{command}` failed in the guest (exit code {result.exit_code}): "
                           f"{result.output.strip()}")
        return result.output


class ConsoleReader:
    """Reads a serial console line by line. Whatever follows a matching line
    stays buffered for the next wait."""

    def __init__(self, recv: Recv, history_lines: int = 30):
        self._recv = recv
        self._partial_line = b""
        self._pending: collections.deque[str] = collections.deque()
        # Kept for error messages: what the guest said last explains most hangs.
        self.recent_lines: collections.deque[str] = collections.deque(maxlen=history_lines)

    def wait_for_line(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first line (searched, not anchored) that matches `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                line = self._pending.popleft()
                if match := regex.search(line):
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestChannelTimeout(
                    f"no console line matched {regex.pattern!r} within {timeout:g} s",
                    hint="last console lines:\n" + "\n".join(self.recent_lines))
            self._take(self._recv(remaining))

    def wait_for_boot(self, timeout: float = 60.0) -> str:
        """Wait for the guest's boot marker; returns its boot id."""
        return self.wait_for_line(BOOT_MARKER, timeout).group(1)

    def _take(self, chunk: bytes) -> None:
        *lines, self._partial_line = (self._partial_line + chunk).split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            self._pending.append(line)
            self.recent_lines.append(line)


def _check_guest_ifname(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", name):
        raise ValueError(f"not an interface name: {name!r}")


def parse_partitions(text: str) -> dict[str, int]:
    """/proc/partitions -> name -> size in bytes (it counts 1 KiB blocks)."""
    sizes = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0].isdigit():
            sizes[fields[3]] = int(fields[2]) * 1024
    return sizes


def parse_ip_addresses(text: str) -> dict[str, list[str]]:
    """`ip -o addr show` -> interface -> addresses in CIDR form."""
    addresses: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("inet", "inet6"):
            addresses.setdefault(fields[1], []).append(fields[3])
    return addresses


def parse_dirty_status(text: str) -> DirtyStatus | None:
    """A "vpd-dirty gen=N errors=E rate=R" line (status file or console) -> DirtyStatus."""
    match = re.search(r"vpd-dirty gen=(\d+) errors=(\d+) rate=([0-9.]+)", text)
    if match is None:
        return None
    return DirtyStatus(int(match.group(1)), int(match.group(2)), float(match.group(3)))


# What the lab guest's kernel command line starts with (guest_image.BASE_CMDLINE): lab guests
# defined before the marker existed are told by it, with their two serial ports.
_OLD_LAB_CMDLINE = "console=ttyS0 quiet"


def is_lab_guest(xml: str | bytes) -> bool:
    """The VM runs the lab's guest, which answers on this channel (its second serial port): vpd's
    lab-guest marker says so. Two serial ports alone do not: every VM vpd makes has them."""
    if DomainEditor.from_xml(xml).metadata(LAB_GUEST_NS) is not None:
        return True
    domain = Domain.from_xml(xml)
    cmdline = (domain.os.cmdline or "") if domain.os is not None and domain.os.kernel else ""
    return len(domain.devices.serials) >= 2 and cmdline.startswith(_OLD_LAB_CMDLINE)
