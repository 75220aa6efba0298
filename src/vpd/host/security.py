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

- **security mode** - the driver's mode on the host: SELinux `getenforce` (Enforcing, not
  Permissive or Disabled), AppArmor `aa-status --json` (libvirtd's and each `libvirt-UUID` profile
  in enforce, not complain). With no driver, what the host could use is said;
- **image PATH** - each running guest's disk files (`stat`): not readable or writable by others
  (a world-readable image is every user's copy of the guest's disk), and under SELinux labelled
  `svirt_image_t` (libvirt's dynamic label while the guest runs);
- **boolean NAME** - under SELinux, the booleans the pools in use need: `virt_use_nfs` for an NFS
  netfs pool, `virt_use_samba` for a CIFS one (`getsebool`); without them sVirt denies the guest
  its disk;
- **exposure PORTS** - who the host's firewall (nftables rules, or the firewalld zone that applies)
  admits to the ports a KVM host exposes: SSH 22, libvirt 16509/16514, VNC 5900-5999, SPICE
  5634-6166 and the migration range 49152-49216, each tried from every peer (the inventory's
  other hosts) and from an address no peer has (the world, TEST-NET). Anything but SSH open to the
  world fails - the migration range with its own warning, as a student who opened it to
  everyone (`firewall-cmd --add-port=49152-49216/tcp` in the default zone) did;
- **libvirtd TCP** - libvirt listening on 16509 (plain TCP, `ss -Hltn`) beyond loopback with
  `auth_tcp = "none"` (libvirtd.conf or virtproxyd.conf) is the hypervisor handed to whoever
  reaches the port; TLS on 16514 or SSH is the fix.

The pure part (`driver_checks`, `guest_checks`, `mode_checks`, `image_checks`, `boolean_checks`,
`exposure_checks`, `listen_checks`) takes libvirt's XML and the commands' text, so it is tested on recorded documents
and outputs; `check_hosts` reads them through libvirt and the host's runner (SSH), every host at
once. A `test:` host is libvirt's test driver, with no host to run commands on: only libvirt's
side is checked there, and the report says so."""
from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import libvirt
from lxml import etree

from ..connect.inventory import Host
from ..core.checks import Check
from ..core.errors import VpdError
from ..hostprep import fwzones, nfteval
from ..hostprep.ports import MIGRATION_PORTS
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


# --- the host's side: recorded outputs in, checks out --------------------------------------

def selinux_mode(getenforce: str | None) -> str | None:
    """enforcing | permissive | disabled, or None when `getenforce` is not there (no SELinux)."""
    word = (getenforce or "").strip().lower()
    return word if word in ("enforcing", "permissive", "disabled") else None


def apparmor_profiles(aa_status_json: str | None) -> dict[str, str] | None:
    """Profile -> mode (enforce, complain...) from `aa-status --json`, None when AppArmor is not
    there ("apparmor not present." or no aa-status)."""
    try:
        data = json.loads(aa_status_json or "")
    except ValueError:
        return None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in profiles.items()} if isinstance(profiles, dict) else None


def mode_checks(models: list[str], getenforce: str | None, aa_status_json: str | None) -> list[Check]:
    se = selinux_mode(getenforce)
    aa = apparmor_profiles(aa_status_json)
    if "selinux" in models:
        return [_warn("security mode", se == "enforcing", f"SELinux {se or 'not reported by getenforce'}",
                      "setenforce 1, and SELINUX=enforcing in /etc/selinux/config: in permissive mode "
                      "sVirt only logs what it should deny")]
    if "apparmor" in models:
        if aa is None:
            return [_warn("security mode", False, "libvirt names AppArmor, aa-status reports none",
                          "start AppArmor (systemctl enable --now apparmor) and restart libvirtd")]
        daemon = {p: m for p, m in aa.items() if p.endswith("libvirtd") or p == "libvirtd"}
        guests = {p: m for p, m in aa.items() if p.startswith("libvirt-")}
        loose = sorted(p for p, m in {**daemon, **guests}.items() if m != "enforce")
        detail = (f"AppArmor: libvirtd {', '.join(sorted(set(daemon.values()))) or 'no profile'}, "
                  f"{len(guests)} guest profile(s)" + (f"; not enforced: {', '.join(loose)}" if loose else ""))
        return [_warn("security mode", bool(daemon) and not loose, detail,
                      "aa-enforce /etc/apparmor.d/usr.sbin.libvirtd, and let libvirt make each guest's "
                      "profile (security_driver = \"apparmor\")")]
    could = [f"SELinux {se}" if se else "no SELinux", "AppArmor" if aa is not None else "no AppArmor"]
    return [_warn("security mode", False, f"no confining driver in libvirt; the host has {', '.join(could)}",
                  "install and enable SELinux (or AppArmor), set security_driver in qemu.conf, restart libvirtd")]


@dataclass(frozen=True)
class FileFacts:
    mode: int
    owner: str
    context: str | None  # SELinux context, None without SELinux
    path: str


def parse_stat(text: str) -> list[FileFacts]:
    """Lines of `stat -c '%a %U:%G %C %n'` (%C is '?' without SELinux)."""
    files = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) != 4 or not re.fullmatch(r"[0-7]{3,4}", parts[0]):
            continue
        files.append(FileFacts(int(parts[0], 8), parts[1], None if parts[2] in ("?", "") else parts[2], parts[3]))
    return files


def image_checks(stat_text: str, selinux_enforcing: bool) -> list[Check]:
    out = []
    for f in parse_stat(stat_text):
        problems = []
        if f.mode & 0o006:
            problems.append(f"mode {f.mode:o}: {'readable' if f.mode & 0o004 else ''}"
                            f"{' and ' if f.mode & 0o004 and f.mode & 0o002 else ''}"
                            f"{'writable' if f.mode & 0o002 else ''} by every user")
        kind = f.context.split(":")[2] if f.context and f.context.count(":") >= 3 else None
        if selinux_enforcing and kind != "svirt_image_t":
            problems.append(f"label {f.context or 'none'}, not svirt_image_t")
        detail = f"{f.mode:o} {f.owner} {f.context or 'no label'}"
        out.append(_warn(f"image {f.path}", not problems, "; ".join(problems) or detail,
                         f"chmod o-rwx {f.path}; restorecon -v {f.path} (its directory labelled virt_image_t: "
                         "semanage fcontext -a -t virt_image_t 'DIR(/.*)?')"))
    return out


# What an SELinux host must allow for the guests' disks on network filesystems.
POOL_BOOLEANS = {"nfs": "virt_use_nfs", "cifs": "virt_use_samba"}


def booleans_needed(pool_xmls: list[str]) -> dict[str, list[str]]:
    """Boolean -> the active netfs pools that need it."""
    needed: dict[str, list[str]] = {}
    for text in pool_xmls:
        pool = etree.fromstring(text.encode())
        if pool.get("type") != "netfs":
            continue
        fmt = pool.xpath("string(source/format/@type)") or "auto"
        boolean = POOL_BOOLEANS.get(fmt, POOL_BOOLEANS["nfs"] if fmt == "auto" else None)
        if boolean:
            needed.setdefault(boolean, []).append(pool.findtext("name") or "?")
    return needed


def parse_getsebool(text: str) -> dict[str, bool]:
    """`getsebool NAME...` lines: 'virt_use_nfs --> on'."""
    found = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\S+)\s+-->\s+(on|off)\s*", line)
        if m:
            found[m.group(1)] = m.group(2) == "on"
    return found


def boolean_checks(needed: dict[str, list[str]], getsebool: str, selinux_enforcing: bool) -> list[Check]:
    if not selinux_enforcing or not needed:
        return []
    state = parse_getsebool(getsebool)
    return [_warn(f"boolean {b}", state.get(b) is True,
                  f"{b} {'on' if state.get(b) else 'off' if b in state else 'unknown'}, needed by pool(s) "
                  f"{', '.join(pools)}",
                  f"setsebool -P {b} on") for b, pools in sorted(needed.items())]


# The ports a KVM host exposes (the course's list), each tried at its ends; only SSH may face the world.
EXPOSED = (("SSH", 22, 22), ("libvirt TCP", 16509, 16509), ("libvirt TLS", 16514, 16514), ("VNC", 5900, 5999),
           ("SPICE", 5634, 6166), ("migration", MIGRATION_PORTS[0], MIGRATION_PORTS[1]))

# (source address, port) -> (admitted, the rule, zone or policy that decided)
Decide = Callable[[str, int], tuple[bool, str]]


def nft_decider(ruleset_json: str, interface: str | None) -> Decide:
    ruleset = nfteval.Ruleset(ruleset_json)

    def decide(address: str, port: int) -> tuple[bool, str]:
        answer = ruleset.decide(nfteval.Packet(address, interface, port))
        return answer.accepted, answer.by

    return decide


def firewalld_decider(zones_text: str, interface: str | None) -> Decide:
    zones = fwzones.parse_zones(zones_text)

    def decide(address: str, port: int) -> tuple[bool, str]:
        zone, why = fwzones.zone_for(zones, address, interface)
        if zone is None:
            return False, why
        ok, by = fwzones.port_open(zone, address, port)
        return ok, f"zone {zone.name}: {by}"

    return decide


def exposure_checks(decide: Decide, peers: dict[str, str], world: str = fwzones.WORLD[4],
                    host: str = "HOST") -> list[Check]:
    """One check per exposed port group: which peers the firewall admits, and whether the world is."""
    out = []
    for label, first, last in EXPOSED:
        ports = sorted({first, last})
        span = f"{first}-{last}" if first != last else str(first)
        to_world = [(p, by) for p in ports for ok, by in [decide(world, p)] if ok]
        to_peers = sorted(n for n, a in peers.items() if all(decide(a, p)[0] for p in ports))
        detail = (f"peers: {', '.join(to_peers) or 'none'}; world: "
                  + ("; ".join(f"{p} open by {by}" for p, by in to_world) if to_world else "closed"))
        ok = label == "SSH" or not to_world
        if label == "migration" and to_world:
            detail = "the migration range is open to everyone - " + detail
        out.append(_warn(f"exposure {label} {span}", ok, detail,
                         f"admit only the peers to {span}/tcp: vpd host prepare PEER {host} (rules per peer), and "
                         "remove the rule or port that admits any source (firewall-cmd --remove-port=... in the "
                         "zone named, or nft delete rule ... handle N)"))
    return out


@dataclass
class Listener:
    address: str
    port: int


def parse_ss(text: str) -> list[Listener]:
    """`ss -Hltn` lines: State Recv-Q Send-Q Local:Port Peer:Port."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        address, _, port = parts[3].rpartition(":")
        if port.isdigit():
            out.append(Listener(address.strip("[]").split("%")[0], int(port)))
    return out


def conf_value(conf_text: str, key: str) -> str | None:
    """The last `key = value` of a libvirt .conf file (quotes stripped), None when unset."""
    value = None
    for line in conf_text.splitlines():
        m = re.match(rf"\s*{re.escape(key)}\s*=\s*(.*?)\s*(#.*)?$", line)
        if m:
            value = m.group(1).strip('"')
    return value


def listen_checks(ss_text: str, confs: dict[str, str]) -> list[Check]:
    open_tcp = sorted({lst.address for lst in parse_ss(ss_text) if lst.port == 16509
                       and lst.address not in ("127.0.0.1", "::1", "localhost")})
    tls = any(lst.port == 16514 for lst in parse_ss(ss_text))
    if not open_tcp:
        return [_warn("libvirtd TCP", True, "16509 (TCP without TLS) not listening beyond loopback"
                      + ("; TLS on 16514" if tls else ""), "")]
    auth = {name: conf_value(text, "auth_tcp") for name, text in confs.items()}
    said = {n: v for n, v in auth.items() if v is not None}
    # libvirt's default for auth_tcp is "sasl"
    none = [n for n, v in said.items() if v == "none"]
    where = ", ".join(a or "*" for a in open_tcp)
    detail = (f"16509 listening on {where}, auth_tcp = "
              + (", ".join(f"{v} ({n})" for n, v in said.items()) or "sasl (default)"))
    return [_warn("libvirtd TCP", not none, detail + ("; anyone who reaches it drives libvirt as root" if none else
                                                       "; SASL authenticates, the traffic is not encrypted"),
                  'listen_tcp = 0 and use TLS (listen_tls = 1, port 16514) or qemu+ssh://; at least '
                  'auth_tcp = "sasl" and the port open to peers only')]


# --- reading them --------------------------------------------------------------------------

@dataclass
class HostOutputs:
    """What the host-side checks read, each command's stdout (None: not there / not run)."""
    getenforce: str | None = None
    aa_status: str | None = None
    stat: str = ""
    getsebool: str = ""
    ss: str = ""
    confs: dict[str, str] = field(default_factory=dict)
    firewall: str = "none"  # firewalld | nftables | none
    ruleset: str = ""  # `firewall-cmd --list-all-zones`, or `nft -j list ruleset`
    interface: str | None = None  # toward the peers


CONF_FILES = ("/etc/libvirt/libvirtd.conf", "/etc/libvirt/virtproxyd.conf")


def read_host(host: Host, disks: list[str], booleans: list[str], peer_address: str | None = None) -> HostOutputs:
    """Run the read-only commands on the host (SSH, or here for a local URI)."""
    from ..connect.ssh import runner_for

    runner = runner_for(host, timeout=20)

    def out(argv: list[str]) -> str | None:
        result = runner.run(argv, check=False)
        return result.stdout if result.ok else None

    facts = HostOutputs(getenforce=out(["getenforce"]), aa_status=out(["aa-status", "--json"]),
                        ss=out(["ss", "-Hltn"]) or "")
    if disks:
        facts.stat = runner.run(["stat", "-c", "%a %U:%G %C %n", "--", *disks], check=False).stdout
    if booleans and selinux_mode(facts.getenforce) == "enforcing":
        facts.getsebool = out(["getsebool", *booleans]) or ""
    for path in CONF_FILES:
        text = out(["cat", "--", path])
        if text is not None:
            facts.confs[path] = text
    if (out(["firewall-cmd", "--state"]) or "").strip() == "running":
        facts.firewall, facts.ruleset = "firewalld", out(["firewall-cmd", "--list-all-zones"]) or ""
    else:
        ruleset = out(["nft", "-j", "list", "ruleset"])
        if ruleset:
            facts.firewall, facts.ruleset = "nftables", ruleset
    if peer_address:
        try:
            facts.interface = json.loads(out(["ip", "-j", "route", "get", peer_address]) or "[]")[0]["dev"]
        except (ValueError, IndexError, KeyError, TypeError):
            facts.interface = None
    return facts


def firewall_checks(facts: HostOutputs, peers: dict[str, str], host: str = "HOST") -> list[Check]:
    if facts.firewall == "firewalld":
        decide = firewalld_decider(facts.ruleset, facts.interface)
    elif facts.firewall == "nftables":
        try:
            decide = nft_decider(facts.ruleset, facts.interface)
        except VpdError as exc:
            return [_warn("exposure", False, exc.message, "check `nft -j list ruleset` on the host")]
    else:
        def decide(address: str, port: int) -> tuple[bool, str]:
            return True, "no firewall (neither firewalld nor an nftables ruleset)"
    return exposure_checks(decide, peers, host=host)


def host_side_checks(models: list[str], facts: HostOutputs, needed: dict[str, list[str]],
                     peers: dict[str, str] | None = None, host: str = "HOST") -> list[Check]:
    enforcing = selinux_mode(facts.getenforce) == "enforcing" and "selinux" in models
    return (mode_checks(models, facts.getenforce, facts.aa_status) + image_checks(facts.stat, enforcing)
            + boolean_checks(needed, facts.getsebool, enforcing) + firewall_checks(facts, peers or {}, host)
            + listen_checks(facts.ss, facts.confs))


def _host_checks(session: Session, host: Host, peers: dict[str, str]) -> dict:
    def read(conn: libvirt.virConnect) -> tuple[list[Check], list[str], list[str], dict[str, list[str]]]:
        caps = conn.getCapabilities()
        checks = driver_checks(caps)
        disks: list[str] = []
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            xml = dom.XMLDesc(0)
            checks += guest_checks(xml)
            disks += [p for p in etree.fromstring(xml.encode()).xpath(
                "devices/disk[@type='file']/source/@file") if p.startswith("/")]
        pools = [p.XMLDesc(0) for p in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)]
        return checks, driver_models(caps), sorted(set(disks)), booleans_needed(pools)

    try:
        checks, models, disks, needed = session.call(host, read)
        note = None
        if host.uri.startswith("test:"):
            note = "libvirt's test driver: no host to run getenforce, aa-status, stat, ss on; only libvirt's side"
        else:
            facts = read_host(host, disks, sorted(needed), next(iter(peers.values()), None))
            checks += host_side_checks(models, facts, needed, peers, host.name)
    except VpdError as exc:
        return {"host": host.name, "error": exc.message, "checks": [], "note": None}
    return {"host": host.name, "error": None, "checks": [c.to_dict() for c in checks], "note": note}


def check_hosts(session: Session, hosts: list[Host]) -> list[dict]:
    """Each host's checks; its peers are the inventory's other hosts with an address."""
    everyone = {h.name: h.address for h in session.hosts() if h.address}

    def one(host: Host) -> dict:
        return _host_checks(session, host, {n: a for n, a in everyone.items() if n != host.name})

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return list(pool.map(one, hosts))
