"""`vpd net perf SRC DST`: TCP throughput between two hosts, a host and a guest, or two guests, with a real iperf3
(the seed's P8 `iperf3 -c ... -P 3 -t 30`): an iperf3 server on DST for one test (`-s -1`), the
client on SRC with JSON output (`-J`), which this module reads. The server is always stopped,
also when the client fails or the user presses Ctrl-C (a `finally`, by the pid iperf3 wrote).

iperf3's JSON (`end` section): `sum_sent` / `sum_received` with `bits_per_second` (received is
what crossed the link; sent includes what was still in flight), `sum_sent.retransmits` (TCP
retransmissions on the sender, Linux only) and `cpu_utilization_percent` (`host_total` on the
client, `remote_total` on the server).
"""
from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from ..connect.inventory import Host
from ..connect.ssh import Runner, runner_for
from ..core.errors import UsageError, VpdError
from ..hostprep.ports import IPERF3_PORT

MAX_PARALLEL = 128
MAX_TIME_S = 3600
# How long the client waits for the server's port: a firewall that drops (not refuses) the
# connection must not hang the run for minutes.
CONNECT_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class PerfResult:
    gbit_s: float
    sent_gbit_s: float
    retransmits: int | None
    cpu_client_pct: float | None
    cpu_server_pct: float | None
    seconds: float
    streams: int


def check(parallel: int, seconds: float) -> None:
    if not 1 <= parallel <= MAX_PARALLEL:
        raise UsageError(f"--parallel must be 1-{MAX_PARALLEL}, not {parallel}")
    if not 1 <= seconds <= MAX_TIME_S:
        raise UsageError(f"--time must be 1-{MAX_TIME_S} s, not {seconds}")


def parse_iperf3_json(text: str) -> PerfResult:
    """The client's `iperf3 -J` output; VpdError with iperf3's own message when it failed."""
    try:
        # A guest's channel gives stdout and stderr together: the JSON is the outermost object.
        data = json.loads(text[text.find("{"):text.rfind("}") + 1] if "{" in text else text)
    except json.JSONDecodeError:
        raise VpdError(f"iperf3 printed no JSON: {text.strip()[:200]!r}") from None
    if data.get("error"):
        raise VpdError(f"iperf3: {data['error']}")
    end = data.get("end") or {}
    sent, received = end.get("sum_sent"), end.get("sum_received")
    if not sent or not received:
        raise VpdError("iperf3's JSON has no end.sum_sent/sum_received: the test did not run")
    cpu = end.get("cpu_utilization_percent") or {}
    streams = (data.get("start") or {}).get("test_start", {}).get("num_streams") or len(end.get("streams") or [])
    return PerfResult(gbit_s=received["bits_per_second"] / 1e9, sent_gbit_s=sent["bits_per_second"] / 1e9,
                      retransmits=sent.get("retransmits"), cpu_client_pct=cpu.get("host_total"),
                      cpu_server_pct=cpu.get("remote_total"), seconds=received.get("seconds", 0.0),
                      streams=int(streams))


class Endpoint(Protocol):
    """One end of a test: a host (over its Runner, here) or a guest (vm/perf.py, over its
    command channel)."""

    name: str

    def addresses(self) -> list[ipaddress.IPv4Interface]: ...

    def default_address(self) -> str | None: ...

    def require_iperf3(self) -> None: ...

    def start_server(self, port: int) -> None: ...

    def stop_server(self, port: int) -> None: ...

    def client(self, argv: list[str], timeout: float) -> tuple[bool, str]: ...


def pidfile(port: int) -> str:
    return f"/tmp/vpd-iperf3-{port}.pid"


def server_argv(port: int) -> list[str]:
    # -1: the server ends after one test; -D with --pidfile: it runs in the background and says
    # which process to stop if the test never comes.
    return ["iperf3", "-s", "-1", "-D", "-p", str(port), "--pidfile", pidfile(port)]


class HostEndpoint:
    def __init__(self, host: Host, runner: Runner | None = None, timeout: float = 60.0):
        self.name = host.name
        self.host = host
        self.runner = runner or runner_for(host, timeout=timeout)

    def addresses(self) -> list[ipaddress.IPv4Interface]:
        out = self.runner.run(["ip", "-j", "-4", "addr", "show"], check=False, reads=True)
        return parse_ip_json(out.stdout) if out.ok else []

    def default_address(self) -> str | None:
        return self.host.address

    def require_iperf3(self) -> None:
        if not self.runner.run(["iperf3", "--version"], check=False, reads=True).ok:
            raise VpdError(f"iperf3 is not installed on {self.name}",
                           hint="apt-get install iperf3 (scripts/setup.sh does)")

    def start_server(self, port: int) -> None:
        self.runner.run(server_argv(port))

    def stop_server(self, port: int) -> None:
        pid = self.runner.run(["cat", pidfile(port)], check=False, reads=True).stdout.strip()
        if pid.isdigit():
            self.runner.run(["kill", pid], check=False)
        self.runner.run(["rm", "-f", pidfile(port)], check=False)

    def client(self, argv: list[str], timeout: float) -> tuple[bool, str]:
        out = self.runner.run(argv, check=False, timeout=timeout)
        return out.ok, out.stdout + out.stderr


def parse_ip_json(text: str) -> list[ipaddress.IPv4Interface]:
    """`ip -j -4 addr show`: every global IPv4 address with its prefix."""
    try:
        links = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    return [ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}") for link in links
            for a in link.get("addr_info", []) if a.get("family") == "inet" and a.get("scope") == "global"]


def pick_address(dst: Endpoint, src: Endpoint) -> str:
    """DST's address on a subnet SRC is on (a guest on an isolated network reaches its host only
    there), else DST's own address."""
    src_nets = [a.network for a in src.addresses()]
    dst_addrs = dst.addresses()
    for a in dst_addrs:
        if any(a.ip in net for net in src_nets):
            return str(a.ip)
    address = dst.default_address() or (str(dst_addrs[0].ip) if dst_addrs else None)
    if not address:
        raise UsageError(f"no address of {dst.name} is known for {src.name} to reach", hint="give --address")
    return address


def run(src: Endpoint, dst: Endpoint, *, parallel: int = 1, seconds: float = 10.0,
        address: str | None = None, port: int = IPERF3_PORT) -> dict:
    check(parallel, seconds)
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be 1-65535, not {port}")
    if src.name == dst.name:
        raise UsageError("SRC and DST are the same: nothing crosses a link")
    src.require_iperf3()
    dst.require_iperf3()
    address = address or pick_address(dst, src)
    dst.start_server(port)
    try:
        client = ["iperf3", "-c", address, "-p", str(port), "-P", str(parallel), "-t", f"{seconds:g}", "-J",
                  "--connect-timeout", str(CONNECT_TIMEOUT_MS)]
        # The daemonised server may not listen yet: a refused connection is tried again briefly.
        deadline = time.monotonic() + 10
        while True:
            ok, out = src.client(client, timeout=seconds + 60)
            if ok or "refused" not in out or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        try:
            result = parse_iperf3_json(out)
        except VpdError as exc:
            if "unable to connect" in str(exc) or "timed out" in str(exc).lower():
                raise VpdError(f"{src.name} cannot reach iperf3 on {dst.name} at {address}:{port}: {exc}",
                               hint=f"{dst.name}'s firewall must admit TCP {port} from {src.name} "
                                    "(or give --port of one it admits, --address of another address)") from None
            raise
    finally:
        dst.stop_server(port)
    return {"src": src.name, "dst": dst.name, "dst_address": address, "port": port, **asdict(result)}
