"""Access tokens of the web console, kept hashed in the state directory.

A token is `vpd_<id>_<secret>`: the id names it in `vpd web token list/revoke`, the secret
(32 random bytes) is never stored: the file keeps sha256(token), compared with
`hmac.compare_digest`. Each token has a role: `viewer` (reads) or `operator` (reads and acts)."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core import paths
from ..core.errors import NotFound, UsageError

ROLES = ("viewer", "operator")
_RANK = {"viewer": 0, "operator": 1}


def allows(role: str, needed: str) -> bool:
    return _RANK.get(role, -1) >= _RANK[needed]


@dataclass
class TokenInfo:
    id: str
    role: str
    created: float
    label: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """tokens.json under `<state>/web/` (mode 0600), rewritten atomically."""

    def __init__(self, path: Path | None = None):
        self.path = path or paths.state_dir() / "web" / "tokens.json"

    def _load(self) -> list[dict]:
        try:
            return json.loads(self.path.read_text())["tokens"]
        except FileNotFoundError:
            return []

    def _save(self, rows: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"tokens": rows}, f, indent=1)
        os.replace(tmp, self.path)

    def create(self, role: str, label: str = "") -> tuple[TokenInfo, str]:
        """A new token: its info and the token itself, shown once and never stored."""
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
        rows = self._load()
        taken = {r["id"] for r in rows}
        token_id = secrets.token_hex(4)
        while token_id in taken:
            token_id = secrets.token_hex(4)
        token = f"vpd_{token_id}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(token_id, role, time.time(), label)
        rows.append({**info.to_dict(), "sha256": _hash(token)})
        self._save(rows)
        return info, token

    def list(self) -> list[TokenInfo]:
        return [TokenInfo(r["id"], r["role"], r["created"], r.get("label", "")) for r in self._load()]

    def revoke(self, token_id: str) -> TokenInfo:
        rows = self._load()
        kept = [r for r in rows if r["id"] != token_id]
        if len(kept) == len(rows):
            raise NotFound(f"no web token with id {token_id!r}", hint="`vpd web token list` shows them")
        self._save(kept)
        gone = next(r for r in rows if r["id"] == token_id)
        return TokenInfo(gone["id"], gone["role"], gone["created"], gone.get("label", ""))

    def verify(self, token: str | None) -> TokenInfo | None:
        """The token's info if it is one of ours, else None (read each time: a revoke applies at once)."""
        if not token or not token.startswith("vpd_"):
            return None
        token_id = token[4:].partition("_")[0]
        digest = _hash(token)
        for r in self._load():
            if r["id"] == token_id and hmac.compare_digest(r["sha256"], digest):
                return TokenInfo(r["id"], r["role"], r["created"], r.get("label", ""))
        return None
