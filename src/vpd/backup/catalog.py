"""Reading backups back: list what a directory holds, and verify a backup (its whole chain)
against the checksums its manifests recorded."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ..connect.hostfiles import HostFiles, require_host_dir
from ..core.errors import UsageError
from . import manifest as mf


def load(files: HostFiles, backup_path: str) -> mf.Manifest:
    backup_path = require_host_dir(backup_path, "backup")
    path = posixpath.join(backup_path, mf.MANIFEST)
    if not files.exists(path):
        raise UsageError(f"{backup_path} on {files.host.name} is not a finished vpd backup (no {mf.MANIFEST})",
                         hint="give a directory like DIR/VM/20261125T170102Z; `vpd backup list DIR` shows them")
    return mf.parse(files.read(path), path)


def manifests_in(files: HostFiles, vm_dir: str, unreadable: list[dict] | None = None) -> dict[str, mf.Manifest]:
    """Every finished backup in one VM's directory (DIR/VM), by id. A malformed manifest is
    left out (and noted in `unreadable`): it must not block the good backups beside it."""
    if not files.is_dir(vm_dir):
        return {}
    out = {}
    for path in files.find_manifests(posixpath.dirname(vm_dir)):
        if mf.vm_dir_of(posixpath.dirname(path)) == vm_dir:
            try:
                m = mf.parse(files.read(path), path)
            except mf.BadBackup as exc:
                if unreadable is not None:
                    unreadable.append({"path": posixpath.dirname(path), "error": exc.message})
                continue
            out[m.id] = m
    return out


def siblings(files: HostFiles, backup_path: str) -> dict[str, mf.Manifest]:
    """Every finished backup of the same VM directory as `backup_path`, by id."""
    return manifests_in(files, mf.vm_dir_of(backup_path))


def list_backups(files: HostFiles, root: str, unreadable: list[dict] | None = None) -> list[tuple[str, mf.Manifest]]:
    """Every finished backup under `root`; malformed manifests are skipped (noted in `unreadable`)."""
    root = require_host_dir(root)
    found = []
    for p in files.find_manifests(root):
        try:
            found.append((posixpath.dirname(p), mf.parse(files.read(p), p)))
        except mf.BadBackup as exc:
            if unreadable is not None:
                unreadable.append({"path": posixpath.dirname(p), "error": exc.message})
    return sorted(found, key=lambda item: (item[1].vm, item[1].id))


def resolve_chain(files: HostFiles, backup_path: str) -> list[tuple[str, mf.Manifest]]:
    """(directory, manifest) from the full backup to `backup_path`."""
    latest = load(files, backup_path)
    backup_path = require_host_dir(backup_path, "backup")
    known = siblings(files, backup_path)
    known[latest.id] = latest
    vm_dir = mf.vm_dir_of(backup_path)
    links = [(posixpath.join(vm_dir, m.id), m) for m in mf.chain(latest, known)]
    require_inside(files, links)
    return links


def require_inside(files: HostFiles, links: list[tuple[str, mf.Manifest]]) -> None:
    """Every file the manifests name must resolve inside its own backup directory: a symlink
    (or a tampered manifest) pointing at another VM's disk or /etc/hostname is refused."""
    named = {posixpath.join(where, name): where for where, m in links
             for name in (mf.DOMAIN_XML, *(d.file for d in m.disks))}
    dirs = files.realpaths(sorted({where for where, _ in links}))
    real = files.realpaths(sorted(named))
    for path, where in named.items():
        resolved, home = real.get(path), dirs.get(where)
        if resolved is None or home is None:
            continue  # missing: verify reports it damaged, restore refuses it
        if posixpath.dirname(resolved) != home:
            raise mf.BadBackup(f"backup {where}: {posixpath.basename(path)} leads outside the backup "
                               f"directory (to {resolved}); the backup is refused",
                               hint="a backup's files live in its own directory; this one was altered")


@dataclass
class FileCheck:
    path: str
    expected: str
    actual: str | None

    @property
    def ok(self) -> bool:
        return self.actual == self.expected


@dataclass
class Verification:
    backup: str
    chain: list[str]
    files: list[FileCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    def to_dict(self) -> dict:
        return {"backup": self.backup, "chain": self.chain, "ok": self.ok,
                "files": [{"path": f.path, "ok": f.ok, "expected": f.expected, "actual": f.actual}
                          for f in self.files]}


def verify(files: HostFiles, backup_path: str) -> Verification:
    """Recompute every checksum of the backup and of each backup it builds on."""
    links = resolve_chain(files, backup_path)
    expected: dict[str, str] = {}
    for where, m in links:
        expected[posixpath.join(where, mf.DOMAIN_XML)] = m.domain_sha256
        for d in m.disks:
            expected[posixpath.join(where, d.file)] = d.sha256
    present = [p for p in expected if files.exists(p)]
    actual = files.sha256(present)
    return Verification(backup=links[-1][0], chain=[m.id for _, m in links],
                        files=[FileCheck(p, e, actual.get(p)) for p, e in expected.items()])
