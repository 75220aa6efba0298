"""The QEMU guest agent (qemu-ga in the guest), reached through libvirt: `vpd vm ip`, `vm exec`,
`vm fs`, filesystem freezes for quiesced snapshots and backups, and what migration validation
asks a guest that has an agent.

Commands go through libvirt_qemu.qemuAgentCommand (virsh qemu-agent-command), over the
virtio-serial channel every vpd VM has (xml/devices.guest_agent_channel). A client first sends
`guest-sync` with a random id and waits for that id to come back: an agent that was busy or
restarted may still hold answers to earlier requests, and the id tells ours apart (docs/guests.md,
"The guest agent"). Each command has a timeout; libvirt's errors become messages that say
which of three things is wrong: the VM has no agent channel, the agent is not connected (not
installed, not running, or the guest still boots), or the agent refused or timed out.

Every command except guest-sync is recorded as a step (connect/libvirt_steps.record_agent), so
`--explain` shows it as `virsh qemu-agent-command`; reads are marked as such."""
from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import libvirt
import libvirt_qemu

from .. import ops
from ..connect.libvirt_steps import record_agent, record_read
from ..core.errors import UsageError, VpdError
from ..core.held import signals_held
from ..ops import recover
from ..xml.devices import GUEST_AGENT_PORT
from ..xml.domain import Domain

SYNC_TIMEOUT_S = 5
COMMAND_TIMEOUT_S = 10
EXEC_POLL_FIRST_S = 0.05
EXEC_POLL_MAX_S = 0.5
# Commands that only read: --explain and journal scripts show them as reads.
READS = frozenset({"guest-sync", "guest-ping", "guest-info", "guest-get-fsinfo", "guest-network-get-interfaces",
                   "guest-exec-status", "guest-fsfreeze-status", "guest-get-osinfo", "guest-get-host-name",
                   "guest-file-open", "guest-file-read", "guest-file-close"})


class AgentError(VpdError):
    """The guest agent could not do what was asked (exit 1)."""


class AgentNotConnected(AgentError):
    """The VM has the agent's channel but nothing listens on the guest's side."""


class AgentNotInstalled(AgentError):
    """The VM has no agent channel at all (a VM defined outside vpd)."""


def agent_channel_state(dom: libvirt.virDomain) -> str | None:
    """'connected' or 'disconnected' (libvirt follows the guest opening and closing the port),
    '' when a stopped VM has the channel, None when it has none."""
    for channel in Domain.from_xml(dom.XMLDesc(0)).devices.channels:
        if channel.target is not None and channel.target.name == GUEST_AGENT_PORT:
            return channel.target.state or ""
    return None


def explain_agent_error(dom: libvirt.virDomain, exc: libvirt.libvirtError, what: str) -> VpdError:
    """libvirt's error from an agent call, as what the user can do about it."""
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    name = dom.name()
    if code == libvirt.VIR_ERR_OPERATION_INVALID and "not running" in message:
        return UsageError(f"VM {name} is not running: its guest agent cannot answer", hint=f"vpd vm start {name}")
    if code in (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_AGENT_UNRESPONSIVE) or \
            "not configured" in message or "not connected" in message:
        state = _channel_state_or_none(dom)
        if state is None:
            return AgentNotInstalled(
                f"VM {name} has no guest agent channel ({GUEST_AGENT_PORT}): {what} needs the QEMU guest agent",
                hint="VMs vpd defines have one; add <channel type='unix'><target type='virtio' "
                     f"name='{GUEST_AGENT_PORT}'/></channel> with `vpd vm edit {name}` and restart it")
        return AgentNotConnected(
            f"VM {name}: guest agent not connected ({what}): qemu-guest-agent is not installed or not running "
            "in the guest, or the guest is still booting",
            hint="install and start it in the guest (Debian: apt install qemu-guest-agent), or wait for the boot "
                 "to finish")
    if code in (libvirt.VIR_ERR_AGENT_COMMAND_TIMEOUT, libvirt.VIR_ERR_AGENT_UNSYNCED):
        return AgentError(f"VM {name}: the guest agent did not answer {what} in time: {message}",
                          hint="the guest may be overloaded or frozen; try again")
    if "has been disabled" in message or "has not been found" in message:
        return AgentError(f"VM {name}: the guest agent refuses {what}: {message}",
                          hint="the guest's qemu-ga configuration blocks it (its block-rpcs/allow-rpcs)")
    return AgentError(f"VM {name}: guest agent {what} failed: {message}")


def _channel_state_or_none(dom: libvirt.virDomain) -> str | None:
    try:
        return agent_channel_state(dom)
    except libvirt.libvirtError:
        return ""


class GuestAgent:
    """One conversation with a VM's guest agent. `sync()` runs before the first command."""

    def __init__(self, dom: libvirt.virDomain, timeout: int = COMMAND_TIMEOUT_S):
        self.dom = dom
        self.timeout = timeout
        self._synced = False

    def sync(self) -> None:
        """guest-sync with a fresh id; raises AgentNotConnected/AgentNotInstalled (or a timeout) early."""
        wanted = secrets.randbelow(2**31 - 1) + 1
        answer = self._call({"execute": "guest-sync", "arguments": {"id": wanted}}, SYNC_TIMEOUT_S, "guest-sync")
        if answer != wanted:
            raise AgentError(f"VM {self.dom.name()}: the guest agent answered guest-sync with {answer!r}, "
                             f"not the id {wanted} vpd sent", hint="another client may be talking to it; try again")
        self._synced = True

    def command(self, execute: str, arguments: dict | None = None, timeout: int | None = None) -> Any:
        """The `return` of one agent command (after a sync, once per client)."""
        if not self._synced:
            self.sync()
        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = arguments
        return self._call(request, timeout or self.timeout, execute)

    def _call(self, request: dict, timeout: int, what: str) -> Any:
        text = json.dumps(request, separators=(",", ":"))
        try:
            reply = libvirt_qemu.qemuAgentCommand(self.dom, text, timeout, 0)
        except libvirt.libvirtError as exc:
            raise explain_agent_error(self.dom, exc, what) from None
        if request["execute"] != "guest-sync":
            record_agent(self.dom, text, timeout, query=request["execute"] in READS)
        try:
            return json.loads(reply)["return"]
        except (ValueError, KeyError, TypeError):
            raise AgentError(f"VM {self.dom.name()}: the guest agent's answer to {what} is not what QEMU's "
                             f"protocol says: {reply[:200]!r}") from None

    # --- what vpd asks ------------------------------------------------------------------

    def filesystems(self) -> list[Filesystem]:
        return parse_fsinfo(self.command("guest-get-fsinfo"))

    def run(self, argv: list[str], timeout: float = 60.0, input_data: bytes | None = None) -> ExecResult:
        """Run argv in the guest (guest-exec: no shell), wait for it, return its exit code and output."""
        argv = check_argv(argv)
        arguments: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if input_data is not None:
            arguments["input-data"] = base64.b64encode(input_data).decode()
        began = time.monotonic()
        pid = self.command("guest-exec", arguments)["pid"]
        deadline = began + timeout
        pause = EXEC_POLL_FIRST_S
        while True:
            status = self.command("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                return parse_exec_status(argv, pid, status, time.monotonic() - began)
            if time.monotonic() > deadline:
                raise AgentError(f"VM {self.dom.name()}: {argv[0]} did not finish within {timeout:g} s "
                                 f"(it runs on in the guest as PID {pid})",
                                 hint="give a longer --timeout, or end it in the guest")
            time.sleep(pause)
            pause = min(pause * 2, EXEC_POLL_MAX_S)

    def read_file(self, path: str, max_bytes: int = 65536) -> bytes:
        """A small file of the guest (guest-file-open/read/close), e.g. /proc/uptime."""
        handle = self.command("guest-file-open", {"path": path, "mode": "r"})
        try:
            chunk = self.command("guest-file-read", {"handle": handle, "count": max_bytes})
            return base64.b64decode(chunk.get("buf-b64", ""))
        finally:
            self.command("guest-file-close", {"handle": handle})

    def uptime_seconds(self) -> float:
        return float(self.read_file("/proc/uptime").split()[0])

    def boot_id(self) -> str:
        return self.read_file("/proc/sys/kernel/random/boot_id").decode().strip()


# --- guest-exec ---------------------------------------------------------------------------

_SHELL_CHARS = set(" \t\n|&;<>()$`\\\"'*?[]#~=%{}")


def check_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    """argv as the agent runs it (execvp, no shell). A single word holding spaces or shell
    syntax is a shell string: refused rather than run as a program of that name."""
    argv = list(argv)
    if not argv or not argv[0]:
        raise UsageError("give the command to run in the guest after --, e.g. -- df -h")
    if any("\0" in a for a in argv):
        raise UsageError("an argument holds a NUL byte")
    if _SHELL_CHARS & set(argv[0]):
        raise UsageError(f"{argv[0]!r} looks like a shell command line: vpd runs a program with its arguments, "
                         "never through a shell",
                         hint="give each word separately (-- df -h /), or ask for a shell yourself: "
                              "-- sh -c 'df -h | tail -1'")
    return argv


@dataclass
class ExecResult:
    argv: list[str]
    pid: int
    exit_code: int
    signal: int | None
    stdout: str
    stderr: str
    truncated: bool
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def parse_exec_status(argv: list[str], pid: int, status: dict, seconds: float) -> ExecResult:
    """guest-exec-status's answer once `exited`: a program killed by signal N exits 128+N, as
    shells report it."""
    sig = status.get("signal")
    code = status.get("exitcode")
    if code is None:
        code = 128 + int(sig) if sig is not None else 1
    out = base64.b64decode(status.get("out-data", "") or "")
    err = base64.b64decode(status.get("err-data", "") or "")
    return ExecResult(list(argv), pid, int(code), None if sig is None else int(sig),
                      out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                      bool(status.get("out-truncated") or status.get("err-truncated")), round(seconds, 3))


# --- guest-get-fsinfo ---------------------------------------------------------------------

@dataclass
class Filesystem:
    mountpoint: str
    type: str
    device: str  # the guest's name for it (vda1, dm-0), or its disks' devices
    used_bytes: int | None
    total_bytes: int | None
    disks: list[str] = field(default_factory=list)  # /dev/vda ... as the guest names them

    @property
    def use_percent(self) -> int | None:
        if not self.total_bytes or self.used_bytes is None:
            return None
        return -(-self.used_bytes * 100 // self.total_bytes)  # rounded up, as df does

    def to_dict(self) -> dict:
        return {**asdict(self), "use_percent": self.use_percent}


def parse_fsinfo(answer: list[dict]) -> list[Filesystem]:
    """guest-get-fsinfo's answer (one entry per mounted filesystem on a block device), sorted by
    mount point. used-bytes/total-bytes are what statvfs says (df's Used and Size); older agents
    (before QEMU 3.0) do not send them: None."""
    out = []
    for fs in answer or []:
        disks = [d.get("dev") or d.get("target") and f"target {d['target']}" or "" for d in fs.get("disk") or []]
        out.append(Filesystem(mountpoint=str(fs.get("mountpoint", "")), type=str(fs.get("type", "")),
                              device=str(fs.get("name", "")), used_bytes=fs.get("used-bytes"),
                              total_bytes=fs.get("total-bytes"), disks=[d for d in disks if d]))
    return sorted(out, key=lambda f: f.mountpoint)


# --- addresses (vm ip) --------------------------------------------------------------------

SOURCES = {"agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
           "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
           "arp": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP}
SOURCE_NAMES = {"agent": "the guest agent", "lease": "the libvirt network's DHCP leases",
                "arp": "the host's ARP table"}


@dataclass
class Address:
    interface: str
    mac: str | None
    address: str
    prefix: int | None
    family: str  # ipv4 | ipv6
    vm_nic: bool  # its MAC is one of the VM's NICs (not a bridge, bond or container inside)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_interface_addresses(answer: dict, vm_macs: set[str]) -> list[Address]:
    """virDomainInterfaceAddresses' answer without loopback and link-local addresses, the VM's
    own NICs first, IPv4 before IPv6."""
    out = []
    for ifname, info in (answer or {}).items():
        mac = (info.get("hwaddr") or "").lower() or None
        for a in info.get("addrs") or []:
            try:
                ip = ipaddress.ip_address(a.get("addr", ""))
            except ValueError:
                continue
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
                continue
            out.append(Address(ifname, mac, str(ip), a.get("prefix"), f"ipv{ip.version}", mac in vm_macs))
    return sorted(out, key=lambda a: (not a.vm_nic, a.family != "ipv4", a.interface, a.address))


def addresses(dom: libvirt.virDomain, sources: tuple[str, ...] = ("agent", "lease", "arp")) -> dict:
    """The guest's addresses from the first source that knows any: the agent (what the guest
    itself says), then the DHCP leases of the libvirt networks its NICs are on, then the host's
    ARP table. Each source tried before is reported with why it gave nothing."""
    if not dom.isActive():
        raise UsageError(f"VM {dom.name()} is not running: it has no address", hint=f"vpd vm start {dom.name()}")
    domain = Domain.from_xml(dom.XMLDesc(0))
    vm_macs = {i.mac.address.lower() for i in domain.interfaces if i.mac is not None}
    tried = []
    for source in sources:
        try:
            answer = dom.interfaceAddresses(SOURCES[source], 0)
        except libvirt.libvirtError as exc:
            reason = explain_agent_error(dom, exc, "guest-network-get-interfaces").message if source == "agent" \
                else exc.get_error_message()
            tried.append({"source": source, "error": reason})
            continue
        record_read(dom, "virDomain.interfaceAddresses", [SOURCES[source], 0])
        found = parse_interface_addresses(answer, vm_macs)
        if source != "agent":
            found = [a for a in found if a.vm_nic or a.mac is None]
        if found:
            return {"vm": dom.name(), "source": source, "source_name": SOURCE_NAMES[source],
                    "addresses": [a.to_dict() for a in found], "tried": tried}
        tried.append({"source": source, "error": "no address"})
    raise VpdError(f"no address found for VM {dom.name()}: "
                   + "; ".join(f"{t['source']}: {t['error']}" for t in tried),
                   hint="the guest may still be booting, or its NICs are on no network vpd can see into "
                        "(a host bridge without a lease or ARP entry)")


def first_ipv4(found: dict) -> str | None:
    """The address to reach the VM at: the first IPv4 of one of its own NICs, else any IPv4."""
    for a in found["addresses"]:
        if a["family"] == "ipv4":
            return a["address"]
    return None


# --- freezing filesystems -----------------------------------------------------------------

def freeze(dom: libvirt.virDomain) -> int:
    """Freeze every filesystem of the guest (guest-fsfreeze-freeze through libvirt: virsh
    domfsfreeze); returns how many. Writes block in the guest until thaw()."""
    try:
        return int(dom.fsFreeze(None, 0))
    except libvirt.libvirtError as exc:
        raise explain_agent_error(dom, exc, "guest-fsfreeze-freeze") from None


def thaw(dom: libvirt.virDomain) -> int:
    try:
        return int(dom.fsThaw(None, 0))
    except libvirt.libvirtError as exc:
        raise explain_agent_error(dom, exc, "guest-fsfreeze-thaw") from None


@contextlib.contextmanager
def frozen(dom: libvirt.virDomain, host: str | None = None) -> Iterator[int]:
    """The guest's filesystems frozen for the block; thawed after it whatever happens, Ctrl-C
    included. The agent is synced first, so a VM without one fails before anything is frozen.
    The freeze is journaled first (a "freeze" object on `host`): a vpd killed before its thaw
    (SIGKILL holds for nothing) leaves recovery a guest to thaw (settle_freeze)."""
    GuestAgent(dom).sync()
    ops.plan("freeze", dom.name(), host)
    count = None
    try:
        # Inside the try: a Ctrl-C that lands as the freeze returns still thaws.
        count = freeze(dom)
        yield count
    finally:
        with signals_held():
            try:
                thaw(dom)
            except AgentError as exc:
                if count is not None:
                    exc.hint = (f"the guest's filesystems may still be frozen: `virsh domfsthaw {dom.name()}` on "
                                "its host thaws them")
                    raise
                # the freeze itself failed: its own error goes on


def freeze_status(dom: libvirt.virDomain) -> str:
    """'frozen' or 'thawed': guest-fsfreeze-status, which the agent answers while frozen too."""
    return str(GuestAgent(dom).command("guest-fsfreeze-status"))


def settle_freeze(rec: recover.Recovery, obj: dict, row: dict) -> tuple[recover.Decision, recover.Action | None]:
    """Recovery of a "freeze" object: thaw the guest when its agent says it is still frozen. An
    agent that does not answer leaves the row for a later run (an error), never passes for thawed."""
    dom = rec.domain(obj, obj["name"])
    running = dom is not None and bool(dom.isActive())
    status = freeze_status(dom) if dom is not None and running else None
    decision = recover.decide_freeze(running, status)
    if decision.action != recover.THAW or dom is None:
        return decision, None
    return decision, lambda: _thaw_all(dom)


def _thaw_all(dom: libvirt.virDomain) -> None:
    thaw(dom)
    if freeze_status(dom) != "thawed":
        raise AgentError(f"VM {dom.name()}: its filesystems are still frozen after guest-fsfreeze-thaw",
                         hint=f"`virsh domfsthaw {dom.name()}` on its host")
