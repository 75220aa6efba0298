"""Host preparation as front ends run it: hosts resolved by name, FQDN or address, and each
host's changes one Operation (journal entry `host.prepare`/`host.unprepare` with the host as
target, the host locked), run on all hosts at once. A dry run changes nothing and is not
journaled."""
from __future__ import annotations

from ..connect.inventory import Host
from ..core.errors import UsageError, VpdError
from ..ops import Operation, Session
from ..ops.locks import host_key
from . import prepare as prep
from .report import HostPrepReport


def _hosts(session: Session, refs: list[str] | tuple[str, ...]) -> list[Host]:
    if len(set(refs)) != len(refs):
        raise UsageError("a host is named twice")
    hosts = session.hosts(list(refs))
    if len({h.name for h in hosts}) != len(hosts):
        raise UsageError("a host is named twice")
    return hosts


def _record(session: Session):
    def record(operation: str, host: Host, **args) -> Operation:
        return Operation(session, operation, target=host.name, locks=[host_key(host.name)], **args)

    return record


def _outcome(action: str, reports: list[HostPrepReport]) -> dict:
    """The reports; when a host failed, VpdError (exit 1) carrying them all."""
    result = {"action": action, "ok": all(r.ok for r in reports), "hosts": [r.to_dict() for r in reports]}
    if not result["ok"]:
        bad = [r.host for r in reports if not r.ok]
        error = VpdError(f"{action} failed on {', '.join(bad)}", hint="see each host's checks and error above")
        error.report = result
        raise error
    return result


def prepare(session: Session, refs: list[str] | tuple[str, ...], dry_run: bool = False,
            set_fqdn: str | None = None) -> dict:
    """Open each named host to its peers for migrations: the other hosts named, or with one
    host named, the rest of the inventory."""
    hosts = _hosts(session, refs)
    peers = hosts if len(hosts) > 1 else session.inventory.hosts
    reports = prep.prepare(hosts, peers, dry_run=dry_run, set_fqdn=set_fqdn, record=_record(session))
    return _outcome("prepare", reports)


def unprepare(session: Session, refs: list[str] | tuple[str, ...]) -> dict:
    """Remove exactly what prepare added to these hosts, and nothing else."""
    return _outcome("unprepare", prep.unprepare(_hosts(session, refs), record=_record(session)))
