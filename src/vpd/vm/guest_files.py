"""Reading files inside a running guest, for `vpd vm bond status` (the guest's
/proc/net/bonding/BOND and its ports' counters): through the lab guest's command channel on its
second serial port (vm/guest_channel.py), else through the QEMU guest agent (guest-file-open /
guest-file-read / guest-file-close, libvirt's qemuAgentCommand) when the domain has the agent's
channel. A guest with neither cannot be asked: the error says so.

The agent part is the seam for vm/agent.py's client: `_read_with_agent` is the only code that
speaks the agent protocol here.
"""
from __future__ import annotations

import base64
import binascii
import json
import shlex

import libvirt

from ..core.errors import VpdError
from .guest_channel import is_lab_guest

AGENT_CHANNEL = "org.qemu.guest_agent.0"
AGENT_TIMEOUT_S = 10
# guest-file-read returns at most this much per call (the agent's own cap is 48 MB).
_AGENT_CHUNK = 65536


def how_to_reach(dom: libvirt.virDomain) -> str | None:
    """"channel" (the lab guest's second serial port), "agent", or None."""
    xml = dom.XMLDesc(0)
    if is_lab_guest(xml):
        return "channel"
    if AGENT_CHANNEL in xml:
        return "agent"
    return None


def read_files(dom: libvirt.virDomain, paths: list[str], *, timeout: float = 20.0) -> tuple[str, dict[str, str | None]]:
    """(how, {path: text, or None when the guest has no such file}) for a running guest."""
    if not dom.isActive():
        raise VpdError(f"VM {dom.name()} is not running: its files cannot be read", hint=f"vpd vm start {dom.name()}")
    how = how_to_reach(dom)
    if how == "channel":
        return how, _read_with_channel(dom, paths, timeout)
    if how == "agent":
        return how, {p: _read_with_agent(dom, p) for p in paths}
    raise VpdError(f"vpd cannot look inside {dom.name()}: it is not a lab guest (no command channel on serial1) "
                   "and has no QEMU guest agent channel",
                   hint="install qemu-guest-agent in the guest and give the VM an org.qemu.guest_agent.0 channel")


def channel_script(paths: list[str]) -> str:
    """One shell command for the lab guest printing every file as '== PATH' then its base64, or
    '!! PATH' when it cannot be read: one round trip on the serial line for all of them."""
    parts = []
    for p in paths:
        q = shlex.quote(p)
        parts.append(f"if [ -r {q} ]; then echo '== '{q}; base64 < {q}; else echo '!! '{q}; fi")
    return "; ".join(parts)


def parse_channel_output(text: str, paths: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = dict.fromkeys(paths)
    current: str | None = None
    chunks: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("== ") and line[3:] in out:
            current = line[3:]
            chunks[current] = []
        elif line.startswith("!! ") and line[3:] in out:
            current = None
        elif current is not None:
            chunks[current].append(line.strip())
    for p, lines in chunks.items():
        try:
            out[p] = base64.b64decode("".join(lines), validate=True).decode(errors="replace")
        except (binascii.Error, ValueError):
            raise VpdError(f"the guest's answer for {p} is damaged (not base64)") from None
    return out


def _read_with_channel(dom: libvirt.virDomain, paths: list[str], timeout: float) -> dict[str, str | None]:
    from .console import ConsoleStream
    from .guest_channel import GuestChannel

    with ConsoleStream(dom, "serial1") as stream:
        channel = GuestChannel(stream.send, stream.recv)
        channel.wait_ready(timeout=timeout)
        result = channel.run(channel_script(paths), timeout=timeout)
    return parse_channel_output(result.output, paths)


def _agent(dom: libvirt.virDomain, command: str, **arguments) -> dict:
    import libvirt_qemu

    request = json.dumps({"execute": command, **({"arguments": arguments} if arguments else {})})
    try:
        reply = libvirt_qemu.qemuAgentCommand(dom, request, AGENT_TIMEOUT_S, 0)
    except libvirt.libvirtError as exc:
        raise VpdError(f"the guest agent of {dom.name()} did not answer {command}: {exc.get_error_message()}",
                       hint="is qemu-guest-agent running in the guest?") from None
    return json.loads(reply)["return"]


def _read_with_agent(dom: libvirt.virDomain, path: str) -> str | None:
    try:
        handle = _agent(dom, "guest-file-open", path=path, mode="r")
    except VpdError as exc:
        if "No such file" in str(exc):
            return None
        raise
    data = b""
    try:
        while True:
            chunk = _agent(dom, "guest-file-read", handle=handle, count=_AGENT_CHUNK)
            data += base64.b64decode(chunk.get("buf-b64", ""))
            if chunk.get("eof") or not chunk.get("count"):
                break
    finally:
        _agent(dom, "guest-file-close", handle=handle)
    return data.decode(errors="replace")
