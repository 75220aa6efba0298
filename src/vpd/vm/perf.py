"""`vpd net perf` with guests at either end: a lab guest made with `--iperf3` runs iperf3 through
its command channel (serial1); hosts run it over their Runner (network/perf.py, which measures).
SRC and DST are inventory hosts first, else VMs."""
from __future__ import annotations

import contextlib
import ipaddress
import shlex

from ..core.errors import NotFound, UsageError, VpdError
from ..network import perf as perfs
from ..ops import Session
from .guest_channel import GuestChannel, parse_ip_addresses


class GuestEndpoint:
    def __init__(self, name: str, channel: GuestChannel):
        self.name = name
        self.channel = channel

    def addresses(self) -> list[ipaddress.IPv4Interface]:
        return [ipaddress.IPv4Interface(a) for iface, addrs in parse_ip_addresses(
            self.channel.run("ip -4 -o addr show").output).items() if iface != "lo" for a in addrs]

    def default_address(self) -> str | None:
        return None

    def require_iperf3(self) -> None:
        if self.channel.run("iperf3 --version").exit_code != 0:
            raise VpdError(f"{self.name} has no iperf3", hint="make the lab guest with `vpd vm create --lab-guest "
                                                              "--iperf3`")

    def start_server(self, port: int) -> None:
        result = self.channel.run(shlex.join(perfs.server_argv(port)))
        if result.exit_code != 0:
            raise VpdError(f"{self.name}: iperf3 server did not start: {result.output.strip()}")

    def stop_server(self, port: int) -> None:
        pidfile = shlex.quote(perfs.pidfile(port))
        self.channel.run(f"[ -f {pidfile} ] && kill $(cat {pidfile}); rm -f {pidfile}")

    def client(self, argv: list[str], timeout: float) -> tuple[bool, str]:
        result = self.channel.run(shlex.join(argv), timeout=timeout)
        return result.exit_code == 0, result.output


def perf(session: Session, src_ref: str, dst_ref: str, parallel: int = 1, seconds: float = 10.0,
         address: str | None = None, port: int = perfs.IPERF3_PORT) -> dict:
    perfs.check(parallel, seconds)
    if address is not None:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise UsageError(f"--address {address!r} is not an IP address") from None
    with contextlib.ExitStack() as stack:
        src = _endpoint(session, src_ref, stack, seconds)
        dst = _endpoint(session, dst_ref, stack, seconds)
        result = perfs.run(src, dst, parallel=parallel, seconds=seconds, address=address, port=port)
    return {**result, "src_kind": _kind(src), "dst_kind": _kind(dst)}


def _kind(endpoint) -> str:
    return "vm" if isinstance(endpoint, GuestEndpoint) else "host"


def _endpoint(session: Session, ref: str, stack: contextlib.ExitStack, seconds: float):
    from .console import ConsoleStream
    from .operations import locate

    try:
        host = session.host(ref)
    except (NotFound, UsageError):
        host = None
    if host is not None:
        return perfs.HostEndpoint(host, timeout=seconds + 60)
    try:
        vm = locate(session, ref, prefer_running=True)
    except NotFound:
        raise UsageError(f"{ref} is neither a host of the inventory nor a VM",
                         hint="vpd host list; vpd vm list") from None
    from .guest_files import how_to_reach

    if not vm.domain.isActive():
        raise VpdError(f"VM {ref} is not running", hint=f"vpd vm start {ref}")
    if how_to_reach(vm.domain) != "channel":
        raise VpdError(f"VM {ref} is not a lab guest: vpd runs iperf3 only in lab guests (made with --iperf3)",
                       hint="run iperf3 -s in the guest yourself and measure from a host with iperf3 -c")
    stream = stack.enter_context(ConsoleStream(vm.domain, "serial1"))
    channel = GuestChannel(stream.send, stream.recv)
    channel.wait_ready(timeout=30)
    return GuestEndpoint(ref, channel)
