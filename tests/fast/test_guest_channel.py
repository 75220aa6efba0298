"""The lab guest's command channel and console, host side, without a guest:
framing, noise, chunking, and GuestChannel against a scripted fake guest."""
from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpd.core.errors import VpdError
from vpd.vm.guest_channel import (
    CommandResult,
    ConsoleReader,
    CorruptReply,
    DirtyStatus,
    GuestChannel,
    GuestChannelTimeout,
    Reply,
    ReplyParser,
    encode_request,
    parse_dirty_status,
    parse_ip_addresses,
    parse_partitions,
)


def guest_reply(request_id: str, exit_code: int, output: bytes) -> bytes:
    """A frame exactly as guest/init writes it (busybox base64 wraps at 76)."""
    digest = hashlib.sha256(output).hexdigest()
    return b"VPD-BEGIN %s\n%s\nVPD-END %s %d %s\n" % (
        request_id.encode(), base64.encodebytes(output), request_id.encode(), exit_code, digest.encode())


def feed_in_chunks(stream: bytes, cuts: list[int]) -> list:
    parser = ReplyParser()
    events = []
    start = 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        events += parser.feed(stream[start:cut])
        start = cut
    return events


# --- encoding ---------------------------------------------------------------

def test_request_is_one_line_with_its_payload_length():
    request = encode_request("ab-1", "echo 'hi'\nexit 3")
    assert request.endswith(b"\n") and request.count(b"\n") == 1
    tag, request_id, length, payload = request.split()
    assert (tag, request_id) == (b"VPD-REQ", b"ab-1")
    assert int(length) == len(payload)
    assert base64.b64decode(payload) == b"echo 'hi'\nexit 3"


@pytest.mark.parametrize("bad_id", ["", "a b", "x\n", "ü", "a" * 65])
def test_request_ids_are_restricted(bad_id):
    with pytest.raises(ValueError):
        encode_request(bad_id, "true")


# --- parsing ----------------------------------------------------------------

def test_reply_parsed():
    assert ReplyParser().feed(guest_reply("r1", 0, b"hi\n")) == [Reply("r1", 0, b"hi\n")]


def test_empty_output_and_negative_exit_code():
    assert ReplyParser().feed(guest_reply("r1", -1, b"")) == [Reply("r1", -1, b"")]


def test_crlf_line_ends_accepted():
    stream = guest_reply("r1", 2, b"x" * 200).replace(b"\n", b"\r\n")
    assert ReplyParser().feed(stream) == [Reply("r1", 2, b"x" * 200)]


def test_noise_outside_frames_skipped():
    stream = (b"\x00\xffboot junk\r\nVPD-REQ r1 8 ZWNobyBoaQ==\n"  # a request echoed before raw mode
              + b"garbage without newline" + guest_reply("r1", 0, b"hi\n")
              + b"VPD-END r1 0 " + b"0" * 64 + b"\n"  # a stray end outside any frame
              + guest_reply("r2", 1, b"no\n") + b"trailing")
    assert ReplyParser().feed(stream) == [Reply("r1", 0, b"hi\n"), Reply("r2", 1, b"no\n")]


def test_frame_split_at_every_byte_boundary():
    stream = b"noise\n" + guest_reply("r1", 7, bytes(range(256)) * 3)
    for cut in range(len(stream) + 1):
        assert feed_in_chunks(stream, [cut]) == [Reply("r1", 7, bytes(range(256)) * 3)], cut


def test_byte_by_byte():
    stream = guest_reply("r1", 0, b"one") + guest_reply("r2", 0, b"two")
    assert feed_in_chunks(stream, list(range(len(stream)))) == [Reply("r1", 0, b"one"), Reply("r2", 0, b"two")]


@given(
    noise=st.binary(max_size=300),
    output=st.binary(max_size=2000),
    exit_code=st.integers(0, 255),
    cuts=st.lists(st.integers(0, 3000), max_size=20),
)
def test_any_noise_and_chunking(noise, output, exit_code, cuts):
    stream = noise + guest_reply("real-1", exit_code, output)
    events = feed_in_chunks(stream, [c for c in cuts if c <= len(stream)])
    assert [e for e in events if e.request_id == "real-1"] == [Reply("real-1", exit_code, output)]


@given(noise=st.binary(max_size=200).filter(lambda b: b"\n" not in b))
def test_noise_glued_to_the_begin_line(noise):
    assert ReplyParser().feed(noise + guest_reply("r1", 0, b"ok")) == [Reply("r1", 0, b"ok")]


def test_endless_noise_without_newline_is_bounded_and_harmless():
    parser = ReplyParser()
    for _ in range(50):
        assert parser.feed(b"x" * 10_000) == []
    assert parser.feed(guest_reply("r1", 0, b"ok")) == [Reply("r1", 0, b"ok")]


def test_damaged_output_reported():
    stream = guest_reply("r1", 0, b"hello world, long enough to matter")
    damaged = stream.replace(b"aGVsbG8", b"aGVsbG9", 1)
    [event] = ReplyParser().feed(damaged)
    assert isinstance(event, CorruptReply) and event.request_id == "r1" and "sha256" in event.reason


def test_invalid_base64_reported():
    stream = guest_reply("r1", 0, b"hello").replace(b"aGVsbG8=", b"aGVs*G8=")
    [event] = ReplyParser().feed(stream)
    assert isinstance(event, CorruptReply) and "base64" in event.reason


def test_frame_cut_short_by_the_next():
    first = guest_reply("r1", 0, b"lost")
    stream = first[:first.index(b"VPD-END")] + guest_reply("r2", 0, b"kept")
    assert ReplyParser().feed(stream) == [CorruptReply("r1", "frame cut short by the next one"),
                                          Reply("r2", 0, b"kept")]


def test_end_for_another_id_reported():
    stream = guest_reply("r1", 0, b"x").replace(b"VPD-END r1", b"VPD-END r9")
    [event] = ReplyParser().feed(stream)
    assert isinstance(event, CorruptReply) and event.request_id == "r1"


# --- GuestChannel against a fake guest ---------------------------------------

REQUEST = re.compile(rb"VPD-REQ (\S+) (\d+) (\S+)\n")


class FakeGuest:
    """A transport whose far end answers requests like guest/init does.

    `answers` maps a command to (exit code, output); `drop_first` requests are
    lost, as if sent before the guest listened; `mangle` damages each frame.
    """

    def __init__(self, answers: dict[str, tuple[int, bytes]], *, drop_first: int = 0, noise: bytes = b"",
                 mangle=lambda frame: frame):
        self.answers = answers
        self.drop_first = drop_first
        self.mangle = mangle
        self.requests: list[str] = []
        self._outbox = noise

    def send(self, data: bytes) -> None:
        request = REQUEST.fullmatch(data)
        assert request, data
        command = base64.b64decode(request.group(3)).decode()
        self.requests.append(command)
        if self.drop_first > 0:
            self.drop_first -= 1
            return
        if command in self.answers:
            exit_code, output = self.answers[command]
            self._outbox += self.mangle(guest_reply(request.group(1).decode(), exit_code, output))

    def recv(self, timeout: float) -> bytes:
        # Dribble the bytes out in small pieces, as a serial line does.
        chunk, self._outbox = self._outbox[:7], self._outbox[7:]
        return chunk


def channel_for(guest: FakeGuest) -> GuestChannel:
    return GuestChannel(guest.send, guest.recv)


def test_run_returns_exit_code_and_output():
    guest = FakeGuest({"echo hi": (0, b"hi\n"), "false": (1, b"")}, noise=b"\x00junk\r\n")
    channel = channel_for(guest)
    assert channel.run("echo hi") == CommandResult(0, "hi\n")
    assert channel.run("false") == CommandResult(1, "")


def test_run_times_out_clearly():
    channel = channel_for(FakeGuest({}))
    with pytest.raises(GuestChannelTimeout, match="did not answer 'sleep 100' within 0.05 s"):
        channel.run("sleep 100", timeout=0.05)


def test_late_reply_to_a_timed_out_request_is_ignored():
    channel = channel_for(FakeGuest({"slow": (0, b"late"), "next": (0, b"mine")}))
    with pytest.raises(GuestChannelTimeout):
        channel.run("slow", timeout=0)  # the reply stays queued, unread
    assert channel.run("next") == CommandResult(0, "mine")


def test_replies_from_another_session_are_ignored():
    guest = FakeGuest({"echo hi": (0, b"hi\n")}, noise=guest_reply("other-1", 0, b"old"))
    assert channel_for(guest).run("echo hi") == CommandResult(0, "hi\n")


def test_damaged_reply_raises():
    guest = FakeGuest({"x": (0, b"payload")}, mangle=lambda frame: frame.replace(b"VPD-END", b"AAAA\nVPD-END"))
    with pytest.raises(VpdError, match="damaged"):
        channel_for(guest).run("x")


def test_wait_ready_resends_probes_until_answered():
    guest = FakeGuest({"true": (0, b"")}, drop_first=2)
    channel_for(guest).wait_ready(timeout=5, probe_interval=0.01)
    assert guest.requests == ["true", "true", "true"]


def test_wait_ready_backs_off_so_a_slow_guest_does_not_queue_probes():
    guest = FakeGuest({"true": (0, b"")}, drop_first=3)
    channel_for(guest).wait_ready(timeout=5, probe_interval=0.01, max_interval=0.02)
    assert guest.requests == ["true"] * 4
    quiet = FakeGuest({})
    with pytest.raises(GuestChannelTimeout):
        channel_for(quiet).wait_ready(timeout=0.1, probe_interval=0.005, max_interval=0.04)
    # 0.005, 0.01, 0.02, 0.04, 0.04 s apart: about 5 probes in 0.1 s, not twenty at a fixed 0.005 s.
    assert 3 <= len(quiet.requests) <= 6, quiet.requests


def test_run_when_ready_sends_the_command_itself_until_the_guest_answers_it():
    """Readiness and the command in one round trip: the first answer is the command's."""
    guest = FakeGuest({"read b < /run/vpd/boot-id; echo $b": (0, b"id-1\n"), "true": (0, b"")}, drop_first=1)
    result = channel_for(guest).run_when_ready("read b < /run/vpd/boot-id; echo $b", timeout=5, probe_interval=0.01)
    assert result == CommandResult(0, "id-1\n")
    # The command was lost: a ping answered first, so the command went again.
    assert guest.requests == ["read b < /run/vpd/boot-id; echo $b", "true", "read b < /run/vpd/boot-id; echo $b"]
    heard = FakeGuest({"read b < /run/vpd/boot-id; echo $b": (0, b"id-1\n")})
    channel_for(heard).run_when_ready("read b < /run/vpd/boot-id; echo $b", timeout=5, probe_interval=1)
    assert heard.requests == ["read b < /run/vpd/boot-id; echo $b"]  # heard at once: one round trip
    with pytest.raises(GuestChannelTimeout):
        channel_for(FakeGuest({})).run_when_ready("true", timeout=0.05, probe_interval=0.01)


def test_wait_ready_times_out():
    with pytest.raises(GuestChannelTimeout, match="command channel did not answer"):
        channel_for(FakeGuest({})).wait_ready(timeout=0.05, probe_interval=0.01)


def test_helpers():
    guest = FakeGuest({
        "cat /run/vpd/boot-id": (0, b"0b3c2c4e-6f0e-4a43-9b7c-3f1e2d4c5b6a\n"),
        "cat /proc/uptime": (0, b"12.34 10.00\n"),
        "cat /proc/partitions": (0, b"major minor  #blocks  name\n\n   8        0      65536 sda\n"),
        "ip -o addr show": (0, b"1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"),
        "sha256sum '/tmp/a file'": (0, b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /tmp/a file\n"),
        "cat /run/vpd/dirty-status": (0, b"vpd-dirty gen=5 errors=0 rate=12.5\n"),
    })
    channel = channel_for(guest)
    assert channel.boot_id() == "0b3c2c4e-6f0e-4a43-9b7c-3f1e2d4c5b6a"
    assert channel.uptime_seconds() == 12.34
    assert channel.disks() == {"sda": 64 * 1024 * 1024}
    assert channel.addresses() == {"lo": ["127.0.0.1/8"]}
    assert channel.sha256("/tmp/a file") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert channel.dirty_status() == DirtyStatus(5, 0, 12.5)


def test_helper_failure_raises():
    guest = FakeGuest({"cat /run/vpd/boot-id": (1, b"cat: can't open '/run/vpd/boot-id'\n")})
    with pytest.raises(VpdError, match="exit code 1"):
        channel_for(guest).boot_id()


def test_no_dirtier_status():
    guest = FakeGuest({"cat /run/vpd/dirty-status": (1, b"cat: can't open\n")})
    assert channel_for(guest).dirty_status() is None


# --- parsers of guest command output ------------------------------------------

def test_parse_partitions():
    text = "major minor  #blocks  name\n\n   8        0      65536 sda\n   8        1      1024 sda1\n 254        0      32768 vda\n"
    assert parse_partitions(text) == {"sda": 65536 * 1024, "sda1": 1024 * 1024, "vda": 32768 * 1024}


def test_parse_ip_addresses_busybox_format():
    text = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
            "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever\n"
            "2: eth0    inet 10.0.2.15/24 scope global eth0\\       valid_lft forever preferred_lft forever\n"
            "2: eth0    inet6 fe80::5054:ff:fe12:3456/64 scope link \\       valid_lft forever\n")
    assert parse_ip_addresses(text) == {"lo": ["127.0.0.1/8", "::1/128"],
                                        "eth0": ["10.0.2.15/24", "fe80::5054:ff:fe12:3456/64"]}


def test_parse_dirty_status():
    assert parse_dirty_status("vpd-dirty gen=3 errors=2 rate=0.0\n") == DirtyStatus(3, 2, 0.0)
    assert parse_dirty_status("") is None


# --- console -------------------------------------------------------------------

def scripted_recv(chunks: list[bytes]):
    pending = list(chunks)
    return lambda timeout: pending.pop(0) if pending else b""


def test_boot_marker_found_across_chunks_and_noise():
    marker = b"VPD-BOOT-MARKER bootid=0b3c2c4e-6f0e-4a43-9b7c-3f1e2d4c5b6a\r\n"
    stream = b"SeaBIOS\r\n\x1b[2J[    2.1] kernel noise\r\n" + marker + b"vpd-counter 0\r\nvpd-counter 1\r\n"
    reader = ConsoleReader(scripted_recv([stream[i:i + 5] for i in range(0, len(stream), 5)]))
    assert reader.wait_for_boot(timeout=5) == "0b3c2c4e-6f0e-4a43-9b7c-3f1e2d4c5b6a"
    # What followed the marker is still there for the next wait.
    assert reader.wait_for_line(r"vpd-counter (\d+)", timeout=5).group(1) == "0"
    assert reader.wait_for_line(r"vpd-counter (\d+)", timeout=5).group(1) == "1"


def test_console_timeout_shows_the_last_lines():
    reader = ConsoleReader(scripted_recv([b"Kernel panic - not syncing: no init\n"]))
    with pytest.raises(GuestChannelTimeout) as raised:
        reader.wait_for_boot(timeout=0.05)
    assert "Kernel panic" in str(raised.value)


# --- which VMs are lab guests (answer on this channel) ---------------------------------------

def test_a_lab_guest_is_told_by_vpds_marker_not_by_two_serial_ports(tmp_path, test_inventory):
    from vpd.ops import Session
    from vpd.vm import operations as vm_ops
    from vpd.vm.debian_image import CMDLINE as DEBIAN_CMDLINE
    from vpd.vm.guest_channel import is_lab_guest
    from vpd.vm.spec import VmRequest
    from vpd.xml.domain import guest_domain, lab_guest_domain
    from vpd.xml.edit import LAB_GUEST_NS, TEMPLATE_MARKER, TEMPLATE_NS, DomainEditor

    # Every VM vpd makes has two serial ports: a Debian guest without the marker is no lab guest.
    debian = guest_domain("deb", memory_mib=128, vcpus=1, domain_type="qemu", kernel="/k", initrd="/i",
                          cmdline=DEBIAN_CMDLINE).to_xml_string()
    assert len(DomainEditor.from_xml(debian).element.findall("devices/serial")) == 2
    assert not is_lab_guest(debian)
    # A lab guest defined before the marker: its kernel command line tells it.
    assert is_lab_guest(lab_guest_domain("old", kernel="/k", initrd="/i", cmdline="console=ttyS0 quiet").to_xml_string())

    session = Session(test_inventory)
    try:
        vm_ops.create(session, "lgmark", "t1", VmRequest(lab_guest=True))
        xml = session.connection(session.host("t1")).lookupByName("lgmark").XMLDesc(0)
        assert is_lab_guest(xml) and DomainEditor.from_xml(xml).metadata(LAB_GUEST_NS) is not None
        # A clone runs the same guest: it keeps the marker, not the source's other bookkeeping.
        ed = DomainEditor.from_xml(xml)
        ed.set_metadata(TEMPLATE_NS, "vpd", TEMPLATE_MARKER)
        ed.reset_identity("lgcopy", taken_macs=set(), serial_log=None)
        assert ed.metadata(TEMPLATE_NS) is None and is_lab_guest(ed.to_xml())
    finally:
        session.connection(session.host("t1")).lookupByName("lgmark").undefine()
        session.close()
