"""Grants in recovery: a grant planned by an operation whose process died is revoked, and the
recovery pass every command runs first revokes grants past their TTL (ops.recover loads these
by name: the operation layer sits below access)."""
from __future__ import annotations

from ..core.errors import UsageError, VpdError
from ..ops import Session
from ..ops.recover import REVOKE, Decision, Recovery, decide_grant
from . import grants, store


def settle_grant(rec: Recovery, obj: dict, row: dict):
    record = store.load().get(obj["name"])
    decision: Decision = decide_grant(record["state"] if record else None)
    if decision.action != REVOKE:
        return decision, None

    def revoke() -> None:
        from . import operations

        try:
            operations.revoke(rec.session, obj["name"])
        except UsageError:
            pass  # another vpd revoked it since the store was read

    return decision, revoke


def sweep_due(session: Session, dry_run: bool = False, hosts: set[str] | None = None) -> dict | None:
    """Revoke every grant past its TTL and retry revoke-pending ones (with `hosts`, only those
    between hosts of that set: the pass of a command sweeps what its own hosts hold, and never
    waits on a host it does not talk to). None when there are none (the usual case: one read
    of the grant store)."""
    due = [g for g in grants.due() if hosts is None or {g.src.name, g.dst.name} <= hosts]
    if not due:
        return None
    if dry_run:
        return {"due": [g.to_dict() for g in due]}
    from . import operations

    if hosts is None:
        return operations.revoke_due(session)
    revoked, failed = [], []
    for g in due:
        try:
            revoked.append(operations.revoke(session, g.id).to_dict())
        except UsageError:
            continue  # another vpd revoked it since the store was read
        except VpdError as exc:  # kept as revoke-pending; retried by the next pass or `vpd recover`
            failed.append({**g.to_dict(), "error": exc.message})
    return {"revoked": revoked, "failed": failed}
