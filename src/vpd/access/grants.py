"""Temporary SSH access from one host (SRC) to another (DST), for migrations.

The seed gives SRC's root a permanent key into DST (ssh-copy-id) and takes it
back with sed. Here each grant is its own ed25519 key pair: the private key in
SRC's /root/.ssh (SRC's libvirtd/ssh is what connects during a migration), the
public key in DST's root authorized_keys restricted to SRC's address, without
terminal or forwarding, expiring on its own where sshd can enforce it; revoking
removes exactly that line and that key file.
"""
from __future__ import annotations

import logging
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .. import ops
from ..connect.inventory import Host
from ..core import journal
from ..core.errors import NotFound, Terminated, UsageError, VpdError
from ..core.held import signals_held
from . import authorized_keys as ak
from . import remote, store
from .ttl import check_ttl

log = logging.getLogger(__name__)

ACTIVE = "active"
REVOKE_PENDING = "revoke-pending"
REVOKED = "revoked"


@dataclass(frozen=True)
class Grant:
    id: str
    src: Host
    dst: Host
    src_address: str
    src_key_path: str  # on SRC
    public_key: str  # "ssh-ed25519 <blob> vpd-grant:<id>"
    created: datetime
    expires: datetime
    state: str  # active, revoke-pending or revoked
    expiry_time: str | None  # the expiry-time= DST's sshd enforces; None: only vpd's TTL
    expiry_note: str
    revoked_at: datetime | None = None
    error: str | None = None  # why the last revoke failed

    @property
    def blob(self) -> str:
        return self.public_key.split()[1]

    @property
    def expired(self) -> bool:
        return datetime.now(UTC) >= self.expires

    @property
    def status(self) -> str:
        """The state as shown: an active grant past its TTL is 'expired'."""
        return "expired" if self.state == ACTIVE and self.expired else self.state

    def to_record(self) -> dict:
        return {
            "id": self.id, "src": self.src.model_dump(), "dst": self.dst.model_dump(),
            "src_address": self.src_address, "src_key_path": self.src_key_path, "public_key": self.public_key,
            "created": self.created.isoformat(), "expires": self.expires.isoformat(), "state": self.state,
            "expiry_time": self.expiry_time, "expiry_note": self.expiry_note,
            "revoked_at": self.revoked_at.timestamp() if self.revoked_at else None, "error": self.error,
        }

    @classmethod
    def from_record(cls, rec: dict) -> Grant:
        return cls(
            id=rec["id"], src=Host(**rec["src"]), dst=Host(**rec["dst"]), src_address=rec["src_address"],
            src_key_path=rec["src_key_path"], public_key=rec["public_key"],
            created=datetime.fromisoformat(rec["created"]), expires=datetime.fromisoformat(rec["expires"]),
            state=rec["state"], expiry_time=rec["expiry_time"], expiry_note=rec["expiry_note"],
            revoked_at=datetime.fromtimestamp(rec["revoked_at"], UTC) if rec["revoked_at"] else None,
            error=rec["error"],
        )

    def to_dict(self) -> dict:
        """For people and scripts: host names rather than connection details."""
        return {
            "id": self.id, "src": self.src.name, "dst": self.dst.name, "src_address": self.src_address,
            "src_key_path": self.src_key_path, "public_key": self.public_key,
            "created": self.created.isoformat(), "expires": self.expires.isoformat(), "state": self.status,
            "expiry_time": self.expiry_time, "expiry_note": self.expiry_note,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "error": self.error,
        }


def _local_key(grant_id: str) -> Path:
    return store.keys_dir() / f"vpd-grant-{grant_id}"


def _keygen(grant_id: str) -> tuple[str, str]:
    """A fresh ed25519 pair, kept locally until the grant is revoked."""
    path = _local_key(grant_id)
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{ak.COMMENT_PREFIX}{grant_id}",
                        "-f", str(path)], check=True, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise VpdError("ssh-keygen is not installed here", hint="install openssh-client") from None
    except subprocess.CalledProcessError as exc:
        raise VpdError(f"ssh-keygen failed: {exc.stderr.strip()}") from None
    return path.read_text(), path.with_name(path.name + ".pub").read_text().strip()


def _remove_local(grant_id: str) -> None:
    path = _local_key(grant_id)
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)


def _undo(g: Grant) -> list[str]:
    """Take a grant back on both hosts; what failed, in words. Every step is
    idempotent, so a retry after a partial failure redoes them all."""
    errors = []
    try:
        remote.edit_authorized_keys(g.dst, lambda data: ak.remove_key(data, g.blob)[0], create=False)
    except VpdError as exc:
        errors.append(f"the key is still in {g.dst.name}'s authorized_keys: {exc.message}")
    try:
        remote.remove_private_key(g.src, g.src_key_path)
    except VpdError as exc:
        errors.append(f"the private key {g.src_key_path} is still on {g.src.name}: {exc.message}")
    # The local copy authorizes nothing once either side is gone, and a retry
    # needs only the public key, which the store keeps.
    _remove_local(g.id)
    return errors


def check_grant(src: Host, dst: Host, ttl_seconds: int) -> None:
    """Refuse a grant that cannot work, before anything is recorded or changed."""
    check_ttl(ttl_seconds)
    if src.name == dst.name:
        raise UsageError(f"SRC and DST are both {src.name}", hint="a grant lets one host reach another")
    if not src.address:
        raise UsageError(f"{src.name} has no address in the inventory",
                         hint="a grant admits logins only from SRC's address: add `address = \"...\"` for it")


def issue(src: Host, dst: Host, ttl_seconds: int, entry) -> Grant:
    """Make a checked grant (see check_grant) under a journal `entry` (a journal.Entry or an
    ops.Operation): its result and the expiry note go there. A failure half-way takes the
    grant back, or keeps it as revoke-pending when that fails too."""
    src_address = src.address
    if src_address is None:  # check_grant refuses this; a caller that skipped it still gets the reason
        raise UsageError(f"{src.name} has no address in the inventory")
    with store.transaction() as grants:
        grant_id = secrets.token_hex(4)
        while grant_id in grants:
            grant_id = secrets.token_hex(4)
        created = datetime.now(UTC).replace(microsecond=0)
        expires = created + timedelta(seconds=ttl_seconds)
        expiry_time, expiry_note = remote.expiry_time(dst, expires)
        private_key, public_key = _keygen(grant_id)
        g = Grant(id=grant_id, src=src, dst=dst, src_address=src_address,
                  src_key_path=f"{remote.ROOT_SSH}/vpd-grant-{grant_id}", public_key=public_key,
                  created=created, expires=expires, state=ACTIVE, expiry_time=expiry_time, expiry_note=expiry_note)
        # On disk before any host changes: if vpd dies half-way, the record is
        # what lets `revoke --expired` find and undo the half-made grant.
        grants[grant_id] = g.to_record()
        store.write(grants)
        # And in the journal of the operation it is for (a migration), which recovery settles
        # if that operation's process dies: the grant is then revoked.
        ops.plan("grant", grant_id, src.name, dst=dst.name)
        line = ak.grant_line(public_key, src_address, grant_id, expiry_time)
        try:
            remote.install_private_key(src, g.src_key_path, private_key)
            remote.edit_authorized_keys(dst, lambda data: ak.append_line(data, line), create=True)
        except BaseException as exc:
            errors = _undo(g)
            if errors:
                grants[grant_id] = replace(g, state=REVOKE_PENDING, error="; ".join(errors)).to_record()
                exc.add_note(f"vpd: undoing grant {grant_id} failed too, it is kept as revoke-pending: "
                             + "; ".join(errors))
            else:
                del grants[grant_id]
            raise
        entry.result = g.to_dict()
        entry.note(expiry_note)
    return g


def grant(src: Host, dst: Host, ttl_seconds: int = 900) -> Grant:
    """Let root on `src` log in to root on `dst` with a key of its own, from
    src's address only, for `ttl_seconds`. Journaled on its own (temporary_access uses
    it); front ends go through access.operations.grant."""
    check_grant(src, dst, ttl_seconds)
    with journal.record("access.grant", target=f"{src.name}->{dst.name}", src=src.name, dst=dst.name,
                        ttl_seconds=ttl_seconds) as entry:
        return issue(src, dst, ttl_seconds, entry)


def take_back(grant_id: str, entry) -> Grant:
    """Remove the grant's line from DST, its private key from SRC and the local copy, under a
    journal `entry` (journal.Entry or ops.Operation). If a host cannot be reached the grant
    stays, as 'revoke-pending', and VpdError says so."""
    with store.transaction() as grants:
        if grant_id not in grants:
            raise NotFound(f"no grant {grant_id!r}", hint="`vpd access list` shows the grants")
        g = Grant.from_record(grants[grant_id])
        if g.state == REVOKED:
            raise UsageError(f"grant {grant_id} is already revoked (at {g.revoked_at:%F %T} UTC)")
        errors = _undo(g)
        if errors:
            grants[grant_id] = replace(g, state=REVOKE_PENDING, error="; ".join(errors)).to_record()
            raise VpdError(f"grant {grant_id} ({g.src.name} -> {g.dst.name}) is NOT fully revoked: "
                           + "; ".join(errors),
                           hint="it is kept as revoke-pending; `vpd access revoke --expired` retries it")
        g = replace(g, state=REVOKED, revoked_at=datetime.now(UTC), error=None)
        grants[grant_id] = g.to_record()
        entry.result = g.to_dict()
    return g


def revoke(grant_id: str) -> Grant:
    """take_back journaled on its own (temporary_access uses it); front ends go through
    access.operations.revoke."""
    with journal.record("access.revoke", target=grant_id) as entry:
        return take_back(grant_id, entry)


def due() -> list[Grant]:
    """Grants past their TTL and revoke-pending ones: what `revoke --expired` takes back."""
    return [g for g in list_grants() if g.state == REVOKE_PENDING or (g.state == ACTIVE and g.expired)]


def list_grants() -> list[Grant]:
    """Every recorded grant, oldest first (revoked ones for 30 days)."""
    return sorted((Grant.from_record(r) for r in store.load().values()), key=lambda g: g.created)


# --- the context manager for migrations -------------------------------------------

def _restore(signum: int, previous) -> None:
    # signal.signal() returns None for a handler set outside Python; default is the safe guess.
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def _sigterm_raises_interrupt() -> Iterator[None]:
    """SIGTERM's default ends the process on the spot, leaving the grant open;
    as KeyboardInterrupt it unwinds through the `finally` that revokes."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python runs signal handlers in the main thread only; it owns them
        return

    def interrupt(signum, frame):
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        _restore(signal.SIGTERM, previous)


def _revoke_on_exit(g: Grant) -> None:
    # In a `finally`, sys.exc_info() is the exception on its way out, if any.
    leaving_with = sys.exc_info()[1]
    with signals_held():
        try:
            revoke(g.id)
        except VpdError as exc:
            if leaving_with is None:
                raise
            # Raising here would hide why the body failed; keep that, and shout.
            log.error("%s", exc)
            leaving_with.add_note(f"vpd: {exc}")


@contextmanager
def temporary_access(src: Host, dst: Host, ttl_seconds: int = 900) -> Iterator[Grant]:
    """A grant for the body's duration: revoked when it ends, however it ends
    (return, exception, Ctrl-C or SIGTERM)."""
    with _sigterm_raises_interrupt():
        granted: Grant | None = None
        try:
            granted = grant(src, dst, ttl_seconds)
            yield granted
        finally:
            if granted is not None:
                _revoke_on_exit(granted)
