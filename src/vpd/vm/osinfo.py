"""`--os-variant` from the osinfo database (Debian's `osinfo-db`, the data virt-install reads):
minimum and recommended memory and disk, the disk bus and NIC model the OS has drivers for.

The database is a tree of XML files (`/usr/share/osinfo/os/<vendor>/<os>.xml`); each `<os>` has
`<short-id>`s (what `--os-variant` takes), `<resources>` and `<devices>` (PCI ids of the devices
it drives), and `<derives-from>`/`<clones>` links whose resources and devices it inherits when
it lists none of its own. It is read with lxml, once per process, never through osinfo-query.

Without osinfo-db, a small built-in table of families (debian12, rhel9, win11...) gives only the
disk bus and NIC model, and the result says it came from there.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lxml import etree

from ..core.errors import UsageError

OSINFO_DIR = Path(os.environ.get("VPD_OSINFO_DIR", "/usr/share/osinfo"))

_VIRTIO_BLOCK = {"http://pcisig.com/pci/1af4/1001", "http://pcisig.com/pci/1af4/1042"}
_VIRTIO_NET = {"http://pcisig.com/pci/1af4/1000", "http://pcisig.com/pci/1af4/1041"}
_NIC_BY_DEVICE = [  # the first the OS drives wins, best first
    (_VIRTIO_NET, "virtio"),
    ({"http://pcisig.com/pci/8086/10d3"}, "e1000e"),
    ({"http://pcisig.com/pci/8086/100e"}, "e1000"),
    ({"http://pcisig.com/pci/10ec/8139"}, "rtl8139"),
]
_Q35 = "http://qemu.org/chipset/x86/q35"
_AHCI = "http://pcisig.com/pci/8086/2922"

_FAMILY_DEFAULTS = {
    # family prefix: (disk bus, NIC model) — what virt-install's osinfo picks for these.
    "generic": ("ide", "e1000"),
    "linux": ("virtio", "virtio"), "debian": ("virtio", "virtio"), "ubuntu": ("virtio", "virtio"),
    "fedora": ("virtio", "virtio"), "rhel": ("virtio", "virtio"), "centos": ("virtio", "virtio"),
    "rocky": ("virtio", "virtio"), "almalinux": ("virtio", "virtio"), "alpine": ("virtio", "virtio"),
    "opensuse": ("virtio", "virtio"), "archlinux": ("virtio", "virtio"), "freebsd": ("virtio", "virtio"),
    "win": ("sata", "e1000e"),
}
"""The fallback when osinfo-db is not installed: families only, no resources."""


@dataclass(frozen=True)
class OsVariant:
    short_id: str
    name: str
    disk_bus: str
    nic_model: str
    min_memory_mib: int | None = None
    recommended_memory_mib: int | None = None
    min_disk_bytes: int | None = None
    recommended_disk_bytes: int | None = None
    source: str = "osinfo-db"
    """'osinfo-db' or 'built-in' (osinfo-db absent: families only)."""


@dataclass
class _Os:
    id: str
    short_ids: list[str]
    name: str
    parents: list[str]
    devices: set[str]
    minimum: dict[str, int]
    recommended: dict[str, int]


def _resources(os_el: etree._Element, kind: str) -> dict[str, int]:
    """<resources arch='all'|'x86_64'><minimum|recommended><ram/><storage/>: x86_64 over 'all'."""
    out: dict[str, int] = {}
    for arch in ("all", "x86_64"):
        for res in os_el.findall(f"resources[@arch='{arch}']/{kind}"):
            for child in res:
                if isinstance(child.tag, str) and child.tag in ("ram", "storage") and (child.text or "").isdigit():
                    out[child.tag] = int(child.text or 0)
    return out


def _parse_file(path: Path) -> list[_Os]:
    try:
        tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    except (OSError, etree.XMLSyntaxError):
        return []
    found = []
    for os_el in tree.getroot().findall("os"):
        names = [n.text or "" for n in os_el.findall("name") if not n.attrib]
        found.append(_Os(
            id=os_el.get("id", ""),
            short_ids=[s.text for s in os_el.findall("short-id") if s.text],
            name=names[0] if names else "",
            parents=[p.get("id", "") for p in os_el.findall("derives-from") + os_el.findall("clones")],
            devices={d.get("id", "") for d in os_el.findall("devices/device")},
            minimum=_resources(os_el, "minimum"),
            recommended=_resources(os_el, "recommended"),
        ))
    return found


@lru_cache(maxsize=4)
def _database(root: Path) -> tuple[dict[str, _Os], dict[str, _Os]]:
    """(by osinfo id, by short id) of every OS under `root`/os."""
    by_id: dict[str, _Os] = {}
    by_short: dict[str, _Os] = {}
    for path in sorted((root / "os").rglob("*.xml")):
        for entry in _parse_file(path):
            known = by_id.get(entry.id)
            if known is None:
                by_id[entry.id] = known = entry
            else:  # `<os>.d/*.xml` add to the same OS (drivers, more devices): merge, as libosinfo does
                known.short_ids += [s for s in entry.short_ids if s not in known.short_ids]
                known.name = known.name or entry.name
                known.parents += [p for p in entry.parents if p not in known.parents]
                known.devices |= entry.devices
                for mine, theirs in ((known.minimum, entry.minimum), (known.recommended, entry.recommended)):
                    for key, value in theirs.items():
                        mine.setdefault(key, value)
            for short in entry.short_ids:
                by_short.setdefault(short, known)
    return by_id, by_short


def available(root: Path | None = None) -> bool:
    return ((root or OSINFO_DIR) / "os").is_dir()


def _inherited(entry: _Os, by_id: dict[str, _Os]) -> tuple[set[str], dict[str, int], dict[str, int]]:
    """Devices (the union along derives-from/clones, as libosinfo does) and the nearest ancestor's
    resources where the OS lists none of its own."""
    devices: set[str] = set()
    minimum: dict[str, int] = {}
    recommended: dict[str, int] = {}
    seen: set[str] = set()
    queue = [entry]
    while queue:
        current = queue.pop(0)
        if current.id in seen:
            continue
        seen.add(current.id)
        devices |= current.devices
        for key, value in current.minimum.items():
            minimum.setdefault(key, value)
        for key, value in current.recommended.items():
            recommended.setdefault(key, value)
        queue.extend(by_id[p] for p in current.parents if p in by_id)
    return devices, minimum, recommended


def _from_database(short_id: str, root: Path) -> OsVariant:
    by_id, by_short = _database(root)
    entry = by_short.get(short_id)
    if entry is None:
        close = difflib.get_close_matches(short_id, by_short, n=5, cutoff=0.6)
        raise UsageError(f"unknown OS variant {short_id!r} (osinfo-db {_db_version(root)})",
                         hint=(f"closest: {', '.join(close)}" if close else
                               "list them with `osinfo-query os`") + "; or 'generic'")
    devices, minimum, recommended = _inherited(entry, by_id)
    if devices & _VIRTIO_BLOCK:
        bus = "virtio"
    elif _Q35 in devices or _AHCI in devices:
        bus = "sata"
    else:
        bus = "ide"
    model = next((m for ids, m in _NIC_BY_DEVICE if devices & ids), "e1000")

    def mib(value: int | None) -> int | None:
        return None if value is None else value // 2**20

    # An OS may set its own minimum and inherit an older, smaller recommendation: never below the minimum.
    for key in ("ram", "storage"):
        if key in minimum and recommended.get(key, 0) < minimum[key]:
            recommended[key] = minimum[key]
    return OsVariant(short_id, entry.name, bus, model, mib(minimum.get("ram")), mib(recommended.get("ram")),
                     minimum.get("storage"), recommended.get("storage"))


def _db_version(root: Path) -> str:
    try:
        return (root / "VERSION").read_text().strip()
    except OSError:
        return "of unknown version"


def _from_families(short_id: str) -> OsVariant:
    for family, (bus, model) in _FAMILY_DEFAULTS.items():
        rest = short_id[len(family):]
        if short_id.startswith(family) and (not rest or rest[0].isdigit() or rest[0] in ".-"):
            return OsVariant(short_id, short_id, bus, model, source="built-in")
    raise UsageError(f"unknown OS variant {short_id!r}",
                     hint="osinfo-db is not installed, so only families are known: "
                          f"{', '.join(sorted(_FAMILY_DEFAULTS))} (with a version, e.g. debian12, win11); "
                          "install osinfo-db for the full list")


def lookup(short_id: str, root: Path | None = None) -> OsVariant:
    """The variant `short_id` ('debian11', 'win11', 'generic'...); exit 2 naming the closest ids."""
    root = root or OSINFO_DIR
    if short_id == "generic":  # virt-install's name for "no OS-specific choices"
        return OsVariant("generic", "Generic OS", "ide", "e1000",
                         source="osinfo-db" if available(root) else "built-in")
    if available(root):
        return _from_database(short_id, root)
    return _from_families(short_id)
