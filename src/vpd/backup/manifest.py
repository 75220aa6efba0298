"""What a backup holds, written last into its directory: a backup without a manifest is
unfinished and never listed, verified or restored.

Layout: ``DIR/<vm>/<id>/`` with ``manifest.json``, ``domain.xml`` and one qcow2 per disk.
An incremental backup's qcow2 holds only the clusters written since its parent's checkpoint;
reading it needs the parent chain underneath (see `chain`)."""
from __future__ import annotations

import json
import posixpath
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ValidationError

from ..core.errors import UsageError, VpdError

MANIFEST = "manifest.json"
DOMAIN_XML = "domain.xml"


class DiskCopy(BaseModel):
    target: str
    """The disk's device in the guest (hda, vda...)."""
    file: str
    """File name inside the backup directory."""
    source: str
    """Where the disk lived when backed up."""
    pool: str | None = None
    format: str = "qcow2"
    virtual_size: int
    bytes: int
    """Data bytes the copy holds: for an incremental backup, only the clusters that changed."""
    sha256: str


class Manifest(BaseModel):
    format: Literal[1] = 1
    id: str
    vm: str
    uuid: str
    host: str
    created: str
    kind: Literal["full", "incremental"]
    method: Literal["backup-api", "offline-copy"]
    guest_state: str
    checkpoint: str | None = None
    """The libvirt checkpoint this backup made; the next incremental copies what changed since."""
    parent: str | None = None
    """For an incremental: the id of the backup (same VM directory) it builds on."""
    domain_sha256: str
    disks: list[DiskCopy]
    seconds: float = 0.0

    def to_json(self) -> bytes:
        return (json.dumps(self.model_dump(), indent=2) + "\n").encode()

    @property
    def total_bytes(self) -> int:
        return sum(d.bytes for d in self.disks)


def new_backup_id(now: datetime | None = None) -> str:
    """Sortable and unique to the second, e.g. 20261125T170102Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def parse(data: bytes, where: str) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise VpdError(f"{where}: not a vpd backup manifest ({exc.error_count()} problems: "
                       f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']})") from None


def backup_dir(root: str, vm: str, backup_id: str) -> str:
    return posixpath.join(root, vm, backup_id)


def vm_dir_of(path: str) -> str:
    return posixpath.dirname(path.rstrip("/"))


def chain(latest: Manifest, siblings: dict[str, Manifest]) -> list[Manifest]:
    """The backups needed to read `latest`, oldest (the full one) first.

    `siblings` maps backup ids of the same VM directory to their manifests. A missing or
    looping parent is an error: such a backup cannot be restored."""
    out = [latest]
    seen = {latest.id}
    while out[-1].kind == "incremental":
        parent_id = out[-1].parent
        if parent_id is None or parent_id not in siblings:
            raise VpdError(f"backup {out[-1].id} builds on {parent_id or 'nothing'}, which is missing",
                           hint="an incremental backup needs every backup before it, back to a full one")
        if parent_id in seen:
            raise VpdError(f"backup {latest.id}: its parent chain loops at {parent_id}")
        seen.add(parent_id)
        out.append(siblings[parent_id])
    return list(reversed(out))


def latest_with_checkpoint(manifests: list[Manifest], uuid: str, checkpoints: set[str]) -> Manifest | None:
    """The newest backup of this VM whose checkpoint libvirt still has: what an incremental builds on."""
    usable = [m for m in manifests if m.uuid == uuid and m.checkpoint and m.checkpoint in checkpoints]
    return max(usable, key=lambda m: m.id) if usable else None


def require_backup_id(text: str) -> str:
    if not (len(text) == 16 and text[8] == "T" and text.endswith("Z") and text[:8].isdigit()
            and text[9:15].isdigit()):
        raise UsageError(f"{text!r} is not a backup id (like 20261125T170102Z)")
    return text
