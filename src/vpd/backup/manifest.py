"""What a backup holds, written last into its directory: a backup without a manifest is
unfinished and never listed, verified or restored.

Layout: ``DIR/<vm>/<id>/`` with ``manifest.json``, ``domain.xml`` and one qcow2 per disk.
An incremental backup's qcow2 holds only the clusters written since its parent's checkpoint;
reading it needs the parent chain underneath (see `chain`)."""
from __future__ import annotations

import json
import posixpath
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ValidationError, field_validator

from ..core.errors import UsageError, VpdError
from ..core.names import check_name

MANIFEST = "manifest.json"
DOMAIN_XML = "domain.xml"


class BadBackup(UsageError):
    """A manifest that names something outside its backup directory (or is not a manifest):
    the backup is refused, nothing is read through it (exit 2)."""


_BACKUP_ID = re.compile(r"\d{8}T\d{6}Z")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _plain_file(v: str) -> str:
    if not _FILE.fullmatch(v) or ".." in v:
        raise ValueError(f"{v!r} is not a plain file name inside the backup directory")
    return v


def _backup_id(v: str) -> str:
    if not _BACKUP_ID.fullmatch(v):
        raise ValueError(f"{v!r} is not a backup id (like 20261125T170102Z)")
    return v


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

    @field_validator("file")
    @classmethod
    def _file_inside(cls, v: str) -> str:
        return _plain_file(v)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        return _plain_file(v)


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
    quiesced: bool = False
    """The guest's filesystems were frozen through its agent when the copy's instant was taken."""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _backup_id(v)

    @field_validator("parent")
    @classmethod
    def _parent(cls, v: str | None) -> str | None:
        return None if v is None else _backup_id(v)

    @field_validator("vm")
    @classmethod
    def _vm(cls, v: str) -> str:
        try:
            return check_name(v, "VM name")
        except UsageError as exc:
            raise ValueError(exc.message) from None

    def to_json(self) -> bytes:
        return (json.dumps(self.model_dump(), indent=2) + "\n").encode()

    @property
    def total_bytes(self) -> int:
        return sum(d.bytes for d in self.disks)


def new_backup_id(now: datetime | None = None) -> str:
    """Sortable and unique to the second, e.g. 20261125T170102Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def parse(data: bytes, where: str) -> Manifest:
    """The manifest at `where` (DIR/VM/ID/manifest.json); BadBackup (exit 2) for anything else,
    including a manifest whose id is not its directory's name (its files would be read elsewhere)."""
    try:
        m = Manifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        raise BadBackup(f"{where}: not a valid vpd backup manifest ({exc.error_count()} problem(s); "
                        f"{loc}: {first['msg']})", hint="this backup is refused; others are not affected") from None
    folder = posixpath.basename(posixpath.dirname(where))
    if folder and m.id != folder:
        raise BadBackup(f"{where}: the manifest says it is backup {m.id}, but it lies in {folder}",
                        hint="this backup is refused; others are not affected")
    return m


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
