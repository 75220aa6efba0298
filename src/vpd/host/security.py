"""`vpd host check security HOST...`: read-only named checks with evidence and fix (issue 18 §2,
first slice: what libvirt itself tells).

- **security driver** - libvirt's capabilities name the driver that confines guests (sVirt:
  SELinux or AppArmor). None (`security_driver = "none"`, as on the lab's hosts) means a QEMU
  that escapes reaches every other guest's disks: reported as such, never passed over;
- **label VM** - each running guest's <seclabel>: dynamic, with the driver's model (SELinux:
  `svirt_t` with its own MCS category pair; AppArmor: the `libvirt-UUID` profile). A static label
  shared between guests or `type='none'` is reported;
- **graphics VM** - VNC/SPICE listening beyond loopback without a password is a console anyone on
  the network can take.

The pure part (`driver_checks`, `guest_checks`) takes libvirt's XML text, so it is tested on
recorded documents; `check_hosts` reads them through libvirt, every host at once."""
from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import libvirt
from lxml import etree

from ..connect.inventory import Host
from ..core.checks import Check
from ..core.errors import VpdError
from ..ops import Session

CONFINING = ("selinux", "apparmor")


def _warn(name: str, ok: bool, detail: str, fix: str) -> Check:
    return Check(name, ok, detail, None if ok else fix, blocking=False)


def driver_models(caps_xml: str) -> list[str]:
    caps = etree.fromstring(caps_xml.encode())
    return [m for m in caps.xpath("host/secmodel/model/text()") if m]


def driver_checks(caps_xml: str) -> list[Check]:
    models = driver_models(caps_xml)
    confining = [m for m in models if m in CONFINING]
    detail = f"libvirt's security driver: {', '.join(models) or 'none'}"
    return [_warn("security driver", bool(confining), detail,
                  "set security_driver = \"selinux\" (or apparmor) in /etc/libvirt/qemu.conf, keep SELinux "
                  "enforcing (setenforce 1; SELINUX=enforcing) and restart libvirtd: sVirt confines each guest")]


def _loopback(address: str | None) -> bool:
    if not address:
        return True  # QEMU's default listen is 127.0.0.1 unless qemu.conf says otherwise
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address in ("localhost",)


def guest_checks(domain_xml: str) -> list[Check]:
    root = etree.fromstring(domain_xml.encode())
    name = root.findtext("name")
    out = []
    labels = root.findall("seclabel")
    confined = [s for s in labels if s.get("model") in CONFINING and s.get("type") == "dynamic"]
    if confined:
        s = confined[0]
        label = s.findtext("label") or ""
        ok = s.get("model") != "selinux" or ":svirt_t:" in label
        out.append(_warn(f"label {name}", ok, f"{s.get('model')} dynamic {label}".strip(),
                         "let libvirt label the guest (<seclabel type='dynamic'/>): svirt_t with its own "
                         "MCS categories"))
    else:
        seen = ", ".join(f"{s.get('model') or '?'} {s.get('type') or '?'}" for s in labels) or "no <seclabel>"
        out.append(_warn(f"label {name}", False, seen,
                         "with a security driver on the host, remove <seclabel type='none'/> or a static label "
                         "from the guest so libvirt gives it a dynamic one"))
    for g in root.findall("devices/graphics"):
        if g.get("type") not in ("vnc", "spice"):
            continue
        addresses = [g.get("listen")] + [x.get("address") for x in g.findall("listen[@type='address']")]
        exposed = sorted({a for a in addresses if a and not _loopback(a)})
        password = g.get("passwd") is not None
        out.append(_warn(f"graphics {name}", not exposed or password,
                         f"{g.get('type')} on {', '.join(exposed) or 'loopback'}"
                         + (", password set" if password else ", no password"),
                         "listen on 127.0.0.1 (reach it through SSH: virt-viewer -c qemu+ssh://...) or set a "
                         "password (passwd='...')"))
    return out


def _host_checks(session: Session, host: Host) -> dict:
    def read(conn: libvirt.virConnect) -> list[Check]:
        checks = driver_checks(conn.getCapabilities())
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            checks += guest_checks(dom.XMLDesc(0))
        return checks

    try:
        checks = session.call(host, read)
    except VpdError as exc:
        return {"host": host.name, "error": exc.message, "checks": []}
    return {"host": host.name, "error": None, "checks": [c.to_dict() for c in checks]}


def check_hosts(session: Session, hosts: list[Host]) -> list[dict]:
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return list(pool.map(lambda h: _host_checks(session, h), hosts))
