"""vpd's record of the clusters it made: name, members, fencing (parameter
names only) and what `destroy` must put back on each host. No secret is kept:
the hacluster password lives only on the hosts, hashed."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import paths
from ..core.errors import NotFound, UsageError
from ..core.names import check_name


@dataclass
class HostRestore:
    shadow_field: str | None = None  # hacluster's password field before create
    corosync_conf_moved: bool = False  # the distribution's sample corosync.conf was set aside
    firewall: list[dict] = field(default_factory=list)
    pcsd_started: bool = False


@dataclass
class ClusterRecord:
    name: str
    hosts: list[str]
    fencing: dict | None
    created: float = field(default_factory=time.time)
    restore: dict[str, HostRestore] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _dir() -> Path:
    return paths.state_dir() / "clusters"


def _path(name: str) -> Path:
    return _dir() / f"{check_name(name, 'cluster name')}.json"


def save(rec: ClusterRecord) -> None:
    _dir().mkdir(parents=True, exist_ok=True)
    tmp = _path(rec.name).with_suffix(".tmp")
    tmp.write_text(json.dumps(rec.to_dict(), indent=2))
    tmp.replace(_path(rec.name))


def load(name: str) -> ClusterRecord:
    try:
        data = json.loads(_path(name).read_text())
    except FileNotFoundError:
        known = names()
        raise NotFound(f"no cluster named {name!r}",
                       hint=("clusters: " + ", ".join(known)) if known else "`vpd cluster create` makes one") from None
    restore = {h: HostRestore(**r) for h, r in data.pop("restore", {}).items()}
    return ClusterRecord(**data, restore=restore)


def remove(name: str) -> None:
    _path(name).unlink(missing_ok=True)


def names() -> list[str]:
    return sorted(p.stem for p in _dir().glob("*.json")) if _dir().is_dir() else []


def all_records() -> list[ClusterRecord]:
    return [load(n) for n in names()]


def only_or_named(name: str | None) -> ClusterRecord:
    if name:
        return load(name)
    known = names()
    if len(known) == 1:
        return load(known[0])
    if not known:
        raise NotFound("no cluster yet", hint="`vpd cluster create NAME --hosts H1,H2`")
    raise UsageError("several clusters: say which one", hint="clusters: " + ", ".join(known))


def cluster_of(host: str) -> str | None:
    return next((r.name for r in all_records() if host in r.hosts), None)
