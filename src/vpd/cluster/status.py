"""A cluster's state as pacemaker reports it (`crm_mon --output-as=xml`), read
into typed models, and the pure questions vpd asks of it (is every member
online, where does a resource run, which hosts were fenced)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pydantic_xml import BaseXmlModel, attr, element, wrapped

from ..core.errors import VpdError

CRM_MON = ["crm_mon", "--one-shot", "--output-as=xml", "--inactive", "--fence-history=2"]


class PcmkXml(BaseXmlModel, search_mode="unordered"):
    """crm_mon's XML: fields found by tag wherever they sit, the rest ignored."""


def _true(value: str | None) -> bool:
    return value == "true"


class CurrentDc(PcmkXml, tag="current_dc"):
    present: str = attr(default="false")
    name: str | None = attr(default=None)
    with_quorum: str = attr(default="false")


class Summary(PcmkXml, tag="summary"):
    current_dc: CurrentDc | None = element(default=None)


class NodeXml(PcmkXml, tag="node"):
    name: str = attr()
    online: str = attr(default="false")
    standby: str = attr(default="false")
    unclean: str = attr(default="false")
    pending: str = attr(default="false")
    maintenance: str = attr(default="false")
    is_dc: str = attr(default="false")
    resources_running: int = attr(default=0)


class RunningOn(PcmkXml, tag="node"):
    name: str = attr()


class ResourceXml(PcmkXml, tag="resource"):
    id: str = attr()
    resource_agent: str = attr(default="")
    role: str = attr(default="")
    active: str = attr(default="false")
    failed: str = attr(default="false")
    managed: str = attr(default="true")
    target_role: str | None = attr(name="target_role", default=None)
    nodes: list[RunningOn] = element(default_factory=list)


class FailureXml(PcmkXml, tag="failure"):
    op_key: str = attr(name="op_key", default="")
    node: str = attr(default="")
    exitreason: str = attr(default="")
    exitstatus: str = attr(default="")
    status: str = attr(default="")
    last_rc_change: str = attr(name="last-rc-change", default="")


class FenceEventXml(PcmkXml, tag="fence_event"):
    action: str = attr(default="")
    target: str = attr(default="")
    status: str = attr(default="")
    delegate: str = attr(default="")
    origin: str = attr(default="")
    completed: str = attr(default="")
    exit_reason: str = attr(name="exit-reason", default="")


class CrmMon(PcmkXml, tag="pacemaker-result"):
    summary: Summary | None = element(default=None)
    nodes: list[NodeXml] = wrapped("nodes", element(tag="node", default_factory=list))
    resources: list[ResourceXml] = wrapped("resources", element(tag="resource", default_factory=list))
    failures: list[FailureXml] = wrapped("failures", element(tag="failure", default_factory=list))
    fence_history: list[FenceEventXml] = wrapped("fence_history", element(tag="fence_event", default_factory=list))


# --- what vpd reports ------------------------------------------------------------

@dataclass
class Member:
    name: str
    online: bool
    standby: bool
    unclean: bool
    dc: bool

    @property
    def state(self) -> str:
        if self.unclean:
            return "unclean"
        if not self.online:
            return "offline"
        return "standby" if self.standby else "online"


@dataclass
class Resource:
    id: str
    agent: str
    role: str
    running_on: list[str]
    failed: bool
    managed: bool
    disabled: bool


@dataclass
class Fence:
    target: str
    action: str
    status: str
    by: str
    completed: str


@dataclass
class ClusterStatus:
    name: str
    quorate: bool
    dc: str | None
    members: list[Member]
    resources: list[Resource]
    failed_actions: list[dict] = field(default_factory=list)
    fencing: list[Fence] = field(default_factory=list)
    asked: str | None = None  # the member that answered

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def resource(self, rid: str) -> Resource | None:
        return next((r for r in self.resources if r.id == rid), None)

    def to_dict(self) -> dict:
        out = asdict(self)
        for m, d in zip(self.members, out["members"], strict=True):
            d["state"] = m.state
        return out


def parse(xml: str, name: str, asked: str | None = None) -> ClusterStatus:
    try:
        mon = CrmMon.from_xml(xml.encode())
    except Exception as exc:  # pydantic's and lxml's errors alike: the answer is not crm_mon's XML
        raise VpdError(f"cannot read crm_mon's XML: {exc}") from None
    dc = mon.summary.current_dc if mon.summary else None
    return ClusterStatus(
        name=name,
        quorate=bool(dc and _true(dc.with_quorum)),
        dc=dc.name if dc and _true(dc.present) else None,
        members=[Member(n.name, _true(n.online), _true(n.standby), _true(n.unclean), _true(n.is_dc))
                 for n in mon.nodes],
        resources=[Resource(r.id, r.resource_agent, r.role, [n.name for n in r.nodes], _true(r.failed),
                            _true(r.managed), r.target_role is not None and r.target_role.lower() == "stopped")
                   for r in mon.resources],
        failed_actions=[{"operation": f.op_key, "node": f.node, "status": f.status, "exit": f.exitstatus,
                         "reason": f.exitreason, "when": f.last_rc_change} for f in mon.failures],
        fencing=[Fence(e.target, e.action, e.status, e.delegate or e.origin, e.completed)
                 for e in mon.fence_history],
        asked=asked,
    )


# --- pure decisions over a status ------------------------------------------------

def all_online(status: ClusterStatus, hosts: list[str]) -> bool:
    return status.quorate and all((m := status.member(h)) is not None and m.online and not m.unclean
                                  for h in hosts)


def running_on(status: ClusterStatus, rid: str) -> list[str]:
    r = status.resource(rid)
    return list(r.running_on) if r and r.role in ("Started", "Migrating", "Promoted") else []


def settled_on(status: ClusterStatus, rid: str, host: str) -> bool:
    """The resource runs on `host`, and only there."""
    return running_on(status, rid) == [host]
