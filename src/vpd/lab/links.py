"""A lab host's links and the faults put on them, as pure data: which root-side veth is a
host's ethN, and what `vpd lab link HOST IFACE up|down|loss P%|delay MS|clear` asks for,
validated before anything changes (so a bad value exits 2 with nothing changed)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import UsageError

MAX_LINKS = 4
"""eth0 (the management NIC) and up to three spare links to the lab LAN."""
MAX_DELAY_MS = 10_000
ACTIONS = ("up", "down", "loss", "delay", "clear")


def check_links(n: int) -> int:
    if not 1 <= n <= MAX_LINKS:
        raise UsageError(f"a lab host has 1 to {MAX_LINKS} links to the lab LAN, not {n}")
    return n


def link_index(iface: str) -> int:
    """eth0 -> 0, eth1 -> 1, ...: a lab host's NICs to the lab LAN."""
    m = re.fullmatch(r"eth([0-9])", iface)
    if not m or int(m.group(1)) >= MAX_LINKS:
        raise UsageError(f"{iface!r} is not a lab host link", hint=f"eth0 to eth{MAX_LINKS - 1}")
    return int(m.group(1))


def outside_name(veth: str, index: int) -> str:
    """The root-side end of a host's link: the host's veth for eth0, `<veth>-<n+1>` for ethN
    (the name the lab's spare NIC has had since host bridges came)."""
    return veth if index == 0 else f"{veth}-{index + 1}"


@dataclass(frozen=True)
class LinkChange:
    action: str
    loss_pct: float | None = None
    delay_ms: int | None = None


def parse_change(action: str, value: str | None) -> LinkChange:
    """`up`, `down`, `clear` take no value; `loss 0-100[%]`, `delay 0-10000[ms]`."""
    if action not in ACTIONS:
        raise UsageError(f"unknown link action {action!r}", hint="one of: " + ", ".join(ACTIONS))
    if action in ("up", "down", "clear"):
        if value is not None:
            raise UsageError(f"`{action}` takes no value (got {value!r})")
        return LinkChange(action)
    if value is None:
        raise UsageError(f"`{action}` needs a value", hint="loss 5%  |  delay 50ms")
    if action == "loss":
        m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)%?", value.strip())
        if not m or not 0 <= float(m.group(1)) <= 100:
            raise UsageError(f"loss must be 0-100 %, not {value!r}")
        return LinkChange("loss", loss_pct=float(m.group(1)))
    m = re.fullmatch(r"([0-9]+)(?:ms)?", value.strip())
    if not m or not 0 <= int(m.group(1)) <= MAX_DELAY_MS:
        raise UsageError(f"delay must be 0-{MAX_DELAY_MS} ms (a whole number), not {value!r}")
    return LinkChange("delay", delay_ms=int(m.group(1)))


def describe(state: dict) -> str:
    """One link's state for a table: 'eth1 down', 'eth0 up loss 30%'."""
    text = f"{state['iface']} {'up' if state['up'] else 'down'}"
    if state.get("loss_pct"):
        text += f" loss {state['loss_pct']:g}%"
    if state.get("delay_ms"):
        text += f" delay {state['delay_ms']} ms"
    return text
