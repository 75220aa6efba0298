"""`vpd net perf`: iperf3's JSON read from a recorded run (data/iperf3_p3.json: `iperf3 -c
127.0.0.1 -t 1 -P 3 -J`, iperf3 3.12 on this machine), its error form,
the limits, the address each end is reached at, and the server stopped whatever happens."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpd.core.errors import UsageError, VpdError
from vpd.network import perf

RECORDED = Path(__file__).parent / "data" / "iperf3_p3.json"


def test_recorded_run():
    text = RECORDED.read_text()
    r = perf.parse_iperf3_json(text)
    end = json.loads(text)["end"]
    assert r.streams == 3 == len(end["streams"])
    assert r.gbit_s == pytest.approx(end["sum_received"]["bits_per_second"] / 1e9)
    assert r.sent_gbit_s >= r.gbit_s > 1
    assert r.retransmits == end["sum_sent"]["retransmits"]
    assert 0 < r.cpu_client_pct < 100 and 0 < r.cpu_server_pct < 100 and r.seconds == pytest.approx(1, abs=0.1)


@pytest.mark.parametrize(("text", "why"), [
    ('{"start": {}, "intervals": [], "end": {}, "error": "unable to connect to server: Connection refused"}',
     "iperf3: unable to connect"),
    ('{"start": {}, "end": {}}', "did not run"),
    ("iperf3: error - unable to start listener", "no JSON"),
])
def test_failures_are_explained(text, why):
    with pytest.raises(VpdError, match=why):
        perf.parse_iperf3_json(text)


@pytest.mark.parametrize(("parallel", "seconds"), [(0, 10), (129, 10), (1, 0), (1, 3601)])
def test_limits(parallel, seconds):
    with pytest.raises(UsageError):
        perf.check(parallel, seconds)


IP_JSON = """[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,
"scope":"host"}]},{"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"198.18.4.11","prefixlen":24,
"scope":"global"}]},{"ifindex":5,"ifname":"virbr1","addr_info":[{"family":"inet","local":"198.19.49.1",
"prefixlen":24,"scope":"global"}]}]"""


class _Fixed:
    def __init__(self, name, addrs, default=None):
        import ipaddress

        self.name, self._addrs, self._default = name, [ipaddress.IPv4Interface(a) for a in addrs], default

    def addresses(self):
        return self._addrs

    def default_address(self):
        return self._default


def test_the_address_on_a_shared_subnet_wins():
    host_addrs = [str(a) for a in perf.parse_ip_json(IP_JSON)]
    assert host_addrs == ["198.18.4.11/24", "198.19.49.1/24"]
    host = _Fixed("hosta", host_addrs, default="198.18.4.11")
    guest = _Fixed("g1", ["198.19.49.10/24"])
    # A guest on an isolated network reaches its host on that network's bridge, not the LAN.
    assert perf.pick_address(host, guest) == "198.19.49.1"
    assert perf.pick_address(guest, host) == "198.19.49.10"
    assert perf.pick_address(host, _Fixed("hostb", ["198.20.0.2/24"])) == "198.18.4.11"
    with pytest.raises(UsageError, match="--address"):
        perf.pick_address(_Fixed("g2", []), host)


def test_json_is_found_among_a_guests_other_output():
    noisy = "iperf3: some warning\n" + RECORDED.read_text() + "\n"
    assert perf.parse_iperf3_json(noisy).streams == 3


def test_ldd_output():
    from vpd.vm.guest_image import parse_ldd

    text = ("\tlinux-vdso.so.1 (0x00007ffd)\n\tlibiperf.so.0 => /lib/x86_64-linux-gnu/libiperf.so.0 (0x7f)\n"
            "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n")
    assert [str(p) for p in parse_ldd(text)] == ["/lib/x86_64-linux-gnu/libiperf.so.0",
                                                  "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]


class _Recording(_Fixed):
    """An end that records what run() asks of it; its client answers with `reply` or raises it."""

    def __init__(self, name, addrs, reply=None):
        super().__init__(name, addrs)
        self.calls, self.reply = [], reply

    def require_iperf3(self):
        self.calls.append("check")

    def start_server(self, port):
        self.calls.append(("start", port))

    def stop_server(self, port):
        self.calls.append(("stop", port))

    def client(self, argv, timeout):
        self.calls.append(("client", argv))
        if isinstance(self.reply, BaseException):
            raise self.reply
        return True, self.reply


@pytest.mark.parametrize(("reply", "raised"), [
    (RECORDED.read_text(), None),
    ('{"error": "unable to connect to server: Connection timed out"}', "firewall must admit TCP 5201"),
    (KeyboardInterrupt(), KeyboardInterrupt),
])
def test_the_server_is_stopped_after_a_run_a_failure_and_ctrl_c(reply, raised):
    src = _Recording("hosta", ["198.19.49.1/24"], reply)
    dst = _Recording("g1", ["198.19.49.10/24"])
    if raised is None:
        r = perf.run(src, dst, parallel=3, seconds=2)
        assert r["dst_address"] == "198.19.49.10" and r["streams"] == 3
    elif raised is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            perf.run(src, dst, parallel=3, seconds=2)
    else:
        with pytest.raises(VpdError) as failed:
            perf.run(src, dst, parallel=3, seconds=2)
        assert raised in (failed.value.hint or "")
    assert dst.calls == ["check", ("start", 5201), ("stop", 5201)]
    argv = src.calls[-1][1]
    assert argv[:5] == ["iperf3", "-c", "198.19.49.10", "-p", "5201"] and "-J" in argv
