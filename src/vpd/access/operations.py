"""Access operations as front ends run them: each grant or revocation is one Operation (one
journal entry) around the work in access.grants. No planned objects or undo here: a grant is
on record in the grant store before any host changes, and issue() takes back a half-made one."""
from __future__ import annotations

from ..core.errors import UsageError, VpdError
from ..ops import Operation, Session
from . import grants
from .grants import Grant


def grant(session: Session, src_ref: str, dst_ref: str, ttl_seconds: int = 900) -> Grant:
    """Let root on SRC log in to root on DST with a key of its own, from SRC's address only."""
    src, dst = session.host(src_ref), session.host(dst_ref)
    grants.check_grant(src, dst, ttl_seconds)
    with Operation(session, "access.grant", target=f"{src.name}->{dst.name}", src=src.name, dst=dst.name,
                   ttl_seconds=ttl_seconds) as op:
        return grants.issue(src, dst, ttl_seconds, op)


def revoke(session: Session, grant_id: str) -> Grant:
    with Operation(session, "access.revoke", target=grant_id) as op:
        return grants.take_back(grant_id, op)


def list_(session: Session, show_all: bool = False) -> list[Grant]:
    """Grants still open: active, expired (past TTL, not yet revoked) and revoke-pending;
    with show_all also those revoked in the last 30 days."""
    return [g for g in grants.list_grants() if show_all or g.state != grants.REVOKED]


def revoke_due(session: Session) -> dict:
    """Revoke every grant past its TTL and retry every revoke-pending one, each its own
    operation. When some cannot be revoked, VpdError (exit 1) carries the whole report."""
    revoked: list[Grant] = []
    failed: list[tuple[Grant, VpdError]] = []
    for g in grants.due():
        try:
            revoked.append(revoke(session, g.id))
        except UsageError:
            continue  # another vpd revoked it since the list was read
        except VpdError as exc:
            failed.append((g, exc))
    report = {"revoked": [g.to_dict() for g in revoked],
              "failed": [{**g.to_dict(), "error": exc.message} for g, exc in failed]}
    if failed:
        error = VpdError(f"{len(failed)} grant(s) NOT revoked: {', '.join(g.id for g, _ in failed)}",
                         hint="they are kept as revoke-pending; run `vpd access revoke --expired` again "
                              "when their hosts answer")
        error.report = report
        raise error
    return report
