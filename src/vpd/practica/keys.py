"""Práctica 4's last step, graded: is a key that gave the source's root access to
the destination still in the destination's authorized_keys?

Keys are compared by blob, the way sshd reads a line (vpd.access.authorized_keys),
never by a pattern: the seed's `sed -i '/<blob>/d'` is exactly what fails here."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ..access import authorized_keys as ak

AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
_GRANT = re.compile(r"\b" + re.escape(ak.COMMENT_PREFIX) + r"([0-9a-f]{8,32})\b")

# How a leftover was recognised.
SOURCE_KEY = "source-key"  # the blob of one of the source's /root/.ssh/*.pub
SOURCE_COMMENT = "source-comment"  # a key commented root@<source's name>, as ssh-keygen writes it
VPD_GRANT = "vpd-grant"  # a vpd grant's line whose grant is no longer active


@dataclass(frozen=True)
class Leftover:
    line_no: int  # 1-based
    key_type: str
    blob: str
    comment: str
    why: str  # SOURCE_KEY, SOURCE_COMMENT or VPD_GRANT
    grant_id: str | None = None

    @property
    def short(self) -> str:
        """The key as a person can tell it apart: type, the blob's ends, the comment."""
        return f"{self.key_type} {self.blob[:12]}…{self.blob[-8:]}" + (f" {self.comment}" if self.comment else "")

    def to_dict(self) -> dict:
        return {"line": self.line_no, "key": self.short, "why": self.why, "grant_id": self.grant_id,
                "seed_sed": seed_sed_outcome(self.blob)}


def public_keys(text: str) -> list[tuple[str, str, str]]:
    """(type, blob, comment) of each public key in `text` (the .pub files, concatenated)."""
    out = []
    for line in text.splitlines():
        found = ak.key_field(line)
        if found:
            comment = line.split(found[1], 1)[1].strip()
            out.append((found[0], found[1], comment))
    return out


def _comment(line: str, blob: str) -> str:
    return line.split(blob, 1)[1].strip() if blob in line else ""


def leftovers(data: bytes, source_keys: list[tuple[str, str, str]], source_names: list[str],
              active_grants: set[str] = frozenset()) -> list[Leftover]:  # type: ignore[assignment]
    """The lines of `data` (an authorized_keys) that still admit the source's root:
    one of its public keys (by blob), a key whose comment is root@<one of its names>,
    or a vpd grant line whose id is not in `active_grants`."""
    blobs = {blob for _, blob, _ in source_keys}
    names = {f"root@{n}" for n in source_names if n}
    out = []
    for no, raw in enumerate(ak.split_lines(data), 1):
        line = raw.decode("latin-1").rstrip("\r\n")
        found = ak.key_field(line)
        if not found:
            continue
        key_type, blob = found
        comment = _comment(line, blob)
        grant = _GRANT.search(comment)
        if blob in blobs:
            out.append(Leftover(no, key_type, blob, comment, SOURCE_KEY, grant.group(1) if grant else None))
        elif grant and grant.group(1) not in active_grants:
            out.append(Leftover(no, key_type, blob, comment, VPD_GRANT, grant.group(1)))
        elif comment.split() and comment.split()[0] in names:
            out.append(Leftover(no, key_type, blob, comment, SOURCE_COMMENT))
    return out


def seed_sed_outcome(blob: str) -> str:
    """What the seed's `sed -i '/<blob>/d'` does with this key, and why."""
    cut = blob.find("/")
    if cut < 0:
        return "the seed's sed can remove this key (its base64 has no '/')"
    after = blob[cut + 1:cut + 2]
    what = {"a": "appends text after the line", "i": "inserts text before the line",
            "c": "replaces the line with text", "s": "starts a substitution",
            "d": "is 'd' followed by junk: an error"}.get(after, "is not a sed command: an error")
    return (f"the seed's sed cannot remove this key: its base64 holds '/' at character {cut + 1}, which ends "
            f"sed's address there; the next character '{after}' {what}")


def removal_fix(dst_name: str, leftover: Leftover) -> str:
    """The exact removal for one leftover line: vpd's for a grant, else a fixed-string
    grep on the destination (the blob's '/' and '+' mean nothing to grep -F)."""
    if leftover.why == VPD_GRANT and leftover.grant_id:
        return (f"vpd access revoke {leftover.grant_id}  (or, if vpd has no record of it, on {dst_name}: "
                + _grep_fix(leftover.blob) + ")")
    return f"on {dst_name}: " + _grep_fix(leftover.blob)


def _grep_fix(blob: str) -> str:
    keys = AUTHORIZED_KEYS
    return f"cp -p {keys} {keys}.bak && grep -vF -- {shlex.quote(blob)} {keys}.bak > {keys}"
