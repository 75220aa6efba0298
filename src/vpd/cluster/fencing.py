"""Fencing (STONITH) choices as pure functions: which device to create, with
which parameters, and how a two-node cluster avoids both nodes fencing each
other when the link between them is cut (docs/lab.md, "Two-node fencing": they did, 40 ms apart).

Fencing is required: a cluster that cannot fence a lost node must either stop
every resource or risk running a VM on two hosts at once (its disk corrupted).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..core.errors import UsageError

LAB_AGENT = "fence_vpdlab"
_AGENT = re.compile(r"^fence_[a-z0-9_]{1,60}\Z")
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
# The head start of the preferred survivor: the device waits this long before
# fencing it, so in a split the other side is fenced first and cannot shoot back.
SPLIT_DELAY_S = 3
NO_FENCING_WARNING = (
    "fencing is OFF: a member that stops answering is assumed dead without being powered off; "
    "if it is only cut off, its VMs start a second time elsewhere and their disks are corrupted. "
    "Use this only for throw-away tests.")


@dataclass
class FenceSpec:
    agent: str
    params: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        # Parameters may hold a BMC password: the record keeps their names only.
        return {"agent": self.agent, "params": sorted(self.params)}


def parse(agent: str | None, params: tuple[str, ...] | list[str], no_fencing: bool) -> FenceSpec | None:
    """--fence AGENT key=val ... / --no-fencing, checked before anything changes."""
    if agent and no_fencing:
        raise UsageError("--fence and --no-fencing exclude each other")
    if not agent:
        if params:
            raise UsageError("fence parameters given without --fence AGENT")
        if not no_fencing:
            raise UsageError("a cluster needs fencing: give --fence AGENT [key=value ...]",
                             hint=f"on the lab: --fence {LAB_AGENT}; or --no-fencing for a throw-away test")
        return None
    if not _AGENT.match(agent):
        raise UsageError(f"invalid fence agent {agent!r}", hint="a fence agent's name, e.g. fence_ipmilan")
    out: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not _KEY.match(key):
            raise UsageError(f"invalid fence parameter {item!r}", hint="key=value, e.g. ip=192.0.2.5")
        if key in out:
            raise UsageError(f"fence parameter {key!r} given twice")
        if "\n" in value or "\0" in value:
            raise UsageError(f"fence parameter {key!r} holds a line break")
        out[key] = value
    return FenceSpec(agent, out)


def delay_map(members: list[str], survivor: str | None = None) -> str:
    """pcmk_delay_base for a static split-brain tie-break: the preferred survivor
    (the first member unless told) is fenced only after SPLIT_DELAY_S."""
    keep = survivor or members[0]
    return ";".join(f"{m}:{SPLIT_DELAY_S if m == keep else 0}s" for m in members)


def device_params(spec: FenceSpec, members: list[str]) -> dict[str, str]:
    """The stonith device's parameters: the user's, plus what vpd adds."""
    params = dict(spec.params)
    params.setdefault("pcmk_host_list", ",".join(members))
    if len(members) == 2:
        params.setdefault("pcmk_delay_base", delay_map(members))
    if spec.agent == LAB_AGENT:
        # A fenced lab host stays off until `vpd lab host-up`: in a two-node cluster a
        # fenced node that reboots into the cluster can fence the survivor in turn.
        params.setdefault("pcmk_reboot_action", "off")
    return params


def device_id(cluster: str) -> str:
    return f"fence-{cluster}"
