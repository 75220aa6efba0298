"""The hand commands equivalent to what vpd called: virsh for libvirt calls, the argv itself
(through ssh for a remote host) for host commands. Built only from the steps recorded as the
calls were made (core/steps.py), so it cannot drift from what vpd did.

Each step becomes a `Hand`: an argv plus the text it reads on standard input (libvirt XML, a
file's contents). `shell()` renders it paste-able: every word through shlex.quote, standard input
as a quoted here-document (its text arrives byte for byte: no `\\n` written as two characters)."""
from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import libvirt

STDIN = "/dev/stdin"  # virsh reads XML from a file; a here-document is that file


@dataclass
class Hand:
    argv: list[str]
    input: str | None = None
    note: str | None = None
    xml: bool = False  # stdin is XML: a trailing newline is no matter  # said as a comment above the command
    query: bool = False  # a read vpd made to decide (shown commented out)
    dry_run: bool = False


# --- libvirt calls -> virsh -------------------------------------------------------------------

def _flags(value: int, table: Iterable[tuple[str, str]]) -> list[str]:
    out = []
    for const, option in table:
        bit = getattr(libvirt, const, 0)
        if bit and value & bit:
            out.append(option)
    return out


_DEVICE = [("VIR_DOMAIN_AFFECT_CONFIG", "--config"), ("VIR_DOMAIN_AFFECT_LIVE", "--live")]
_UNDEFINE = [("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE", "--managed-save"),
             ("VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA", "--snapshots-metadata"),
             ("VIR_DOMAIN_UNDEFINE_NVRAM", "--nvram"),
             ("VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", "--checkpoints-metadata")]
_SNAP_CREATE = [("VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE", "--redefine"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT", "--current"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA", "--no-metadata"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_HALT", "--halt"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY", "--disk-only"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT", "--reuse-external"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE", "--quiesce"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC", "--atomic"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_LIVE", "--live"),
                ("VIR_DOMAIN_SNAPSHOT_CREATE_VALIDATE", "--validate")]
_SNAP_DELETE = [("VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN", "--children"),
                ("VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY", "--metadata"),
                ("VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY", "--children-only")]
_REVERT = [("VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING", "--running"), ("VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED", "--paused"),
           ("VIR_DOMAIN_SNAPSHOT_REVERT_FORCE", "--force")]
_MIGRATE = [("VIR_MIGRATE_LIVE", "--live"), ("VIR_MIGRATE_PEER2PEER", "--p2p"),
            ("VIR_MIGRATE_TUNNELLED", "--tunnelled"), ("VIR_MIGRATE_PERSIST_DEST", "--persistent"),
            ("VIR_MIGRATE_UNDEFINE_SOURCE", "--undefinesource"), ("VIR_MIGRATE_PAUSED", "--suspend"),
            ("VIR_MIGRATE_NON_SHARED_DISK", "--copy-storage-all"), ("VIR_MIGRATE_NON_SHARED_INC", "--copy-storage-inc"),
            ("VIR_MIGRATE_AUTO_CONVERGE", "--auto-converge"), ("VIR_MIGRATE_COMPRESSED", "--compressed"),
            ("VIR_MIGRATE_POSTCOPY", "--postcopy"), ("VIR_MIGRATE_UNSAFE", "--unsafe"),
            ("VIR_MIGRATE_ABORT_ON_ERROR", "--abort-on-error"), ("VIR_MIGRATE_OFFLINE", "--offline")]
_VOL_RESIZE = [("VIR_STORAGE_VOL_RESIZE_ALLOCATE", "--allocate"), ("VIR_STORAGE_VOL_RESIZE_DELTA", "--delta"),
               ("VIR_STORAGE_VOL_RESIZE_SHRINK", "--shrink")]
_POOL_BUILD = [("VIR_STORAGE_POOL_BUILD_OVERWRITE", "--overwrite"),
               ("VIR_STORAGE_POOL_BUILD_NO_OVERWRITE", "--no-overwrite")]
_VOL_CREATE = [("VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA", "--prealloc-metadata")]
_DEFINE = [("VIR_DOMAIN_DEFINE_VALIDATE", "--validate")]
_START = [("VIR_DOMAIN_START_PAUSED", "--paused"), ("VIR_DOMAIN_START_AUTODESTROY", "--autodestroy"),
          ("VIR_DOMAIN_START_FORCE_BOOT", "--force-boot")]
_NET_UPDATE_CMD = {"VIR_NETWORK_UPDATE_COMMAND_MODIFY": "modify", "VIR_NETWORK_UPDATE_COMMAND_DELETE": "delete",
                   "VIR_NETWORK_UPDATE_COMMAND_ADD_LAST": "add-last",
                   "VIR_NETWORK_UPDATE_COMMAND_ADD_FIRST": "add-first"}
_NET_SECTION = {"VIR_NETWORK_SECTION_BRIDGE": "bridge", "VIR_NETWORK_SECTION_DOMAIN": "domain",
                "VIR_NETWORK_SECTION_IP": "ip", "VIR_NETWORK_SECTION_IP_DHCP_HOST": "ip-dhcp-host",
                "VIR_NETWORK_SECTION_IP_DHCP_RANGE": "ip-dhcp-range", "VIR_NETWORK_SECTION_FORWARD": "forward",
                "VIR_NETWORK_SECTION_FORWARD_INTERFACE": "forward-interface",
                "VIR_NETWORK_SECTION_FORWARD_PF": "forward-pf", "VIR_NETWORK_SECTION_PORTGROUP": "portgroup",
                "VIR_NETWORK_SECTION_DNS_HOST": "dns-host", "VIR_NETWORK_SECTION_DNS_TXT": "dns-txt",
                "VIR_NETWORK_SECTION_DNS_SRV": "dns-srv"}
_IFADDR_SOURCE = {"VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE": "lease",
                  "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT": "agent",
                  "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP": "arp"}
_NET_UPDATE_FLAGS = [("VIR_NETWORK_UPDATE_AFFECT_CONFIG", "--config"), ("VIR_NETWORK_UPDATE_AFFECT_LIVE", "--live")]


def _by_value(table: dict[str, str], value: int) -> str:
    for const, word in table.items():
        if getattr(libvirt, const, None) == value:
            return word
    return str(value)


def _arg(args: list, i: int, default: Any = 0) -> Any:
    return args[i] if len(args) > i and args[i] is not None else default


def _obj(step: dict) -> dict:
    return step.get("object") or {}


def _name(step: dict) -> str:
    return str(_obj(step).get("name"))


def _vol(step: dict) -> list[str]:
    return ["--pool", str(_obj(step).get("pool")), str(_obj(step).get("name"))]


def _autostart(sub: str) -> Callable[[dict, list], Hand]:
    return lambda s, a: Hand([sub, *([] if _arg(a, 0) else ["--disable"]), _name(s)])


def _simple(sub: str) -> Callable[[dict, list], Hand]:
    return lambda s, a: Hand([sub, _name(s)])


def _migrate(step: dict, args: list) -> Hand:
    params = _arg(args, 1, {}) or {}
    argv = ["migrate", *_flags(int(_arg(args, 2)), _MIGRATE)]
    for key, option in (("migrate_uri", "--migrateuri"), ("bandwidth", "--bandwidth"),
                        ("destination_name", "--dname"), ("persistent_xml", None), ("destination_xml", None)):
        if key in params and option:
            argv += [option, str(params[key])]
    argv += [_name(step), str(_arg(args, 0, ""))]
    note = "vpd also passed the destination XML" if "destination_xml" in params else None
    return Hand(argv, note=note)


def _metadata(step: dict, args: list) -> Hand:
    kind, text, key, uri, flags = (_arg(args, i) for i in range(5))
    if kind != getattr(libvirt, "VIR_DOMAIN_METADATA_ELEMENT", 2):
        field = {getattr(libvirt, "VIR_DOMAIN_METADATA_DESCRIPTION", 0): "--edit",
                 getattr(libvirt, "VIR_DOMAIN_METADATA_TITLE", 1): "--title"}.get(kind, "")
        return Hand(["desc", _name(step), *_flags(int(flags), _DEVICE), *([field] if field == "--title" else []),
                     str(text or "")])
    if text is None:
        return Hand(["metadata", _name(step), str(uri), "--remove", *_flags(int(flags), _DEVICE)])
    return Hand(["metadata", _name(step), str(uri), "--key", str(key), "--set", str(text),
                 *_flags(int(flags), _DEVICE)])


# call -> (step, args) -> Hand (the virsh words after `virsh -c URI`)
VIRSH: dict[str, Callable[[dict, list], Hand]] = {
    "virConnect.defineXML": lambda s, a: Hand(["define", STDIN], a[0]),
    "virConnect.defineXMLFlags": lambda s, a: Hand(["define", STDIN, *_flags(int(_arg(a, 1)), _DEFINE)], a[0]),
    "virConnect.createXML": lambda s, a: Hand(["create", STDIN, *_flags(int(_arg(a, 1)), _START)], a[0]),
    "virConnect.storagePoolDefineXML": lambda s, a: Hand(["pool-define", STDIN], a[0]),
    "virConnect.storagePoolCreateXML": lambda s, a: Hand(["pool-create", STDIN], a[0]),
    "virConnect.networkDefineXML": lambda s, a: Hand(["net-define", STDIN], a[0]),
    "virConnect.networkCreateXML": lambda s, a: Hand(["net-create", STDIN], a[0]),
    "virConnect.secretDefineXML": lambda s, a: Hand(["secret-define", STDIN], a[0]),
    "virDomain.create": _simple("start"),
    "virDomain.createWithFlags": lambda s, a: Hand(["start", _name(s), *_flags(int(_arg(a, 0)), _START)]),
    "virDomain.destroy": _simple("destroy"),
    "virDomain.destroyFlags": lambda s, a: Hand(["destroy", _name(s)]
                                                + (["--graceful"] if int(_arg(a, 0)) & 1 else [])),
    "virDomain.shutdown": _simple("shutdown"),
    "virDomain.shutdownFlags": _simple("shutdown"),
    "virDomain.reboot": _simple("reboot"),
    "virDomain.suspend": _simple("suspend"),
    "virDomain.resume": _simple("resume"),
    "virDomain.undefine": _simple("undefine"),
    "virDomain.undefineFlags": lambda s, a: Hand(["undefine", _name(s), *_flags(int(_arg(a, 0)), _UNDEFINE)]),
    "virDomain.setAutostart": _autostart("autostart"),
    "virDomain.attachDevice": lambda s, a: Hand(["attach-device", _name(s), STDIN], a[0]),
    "virDomain.attachDeviceFlags": lambda s, a: Hand(["attach-device", _name(s), STDIN,
                                                      *_flags(int(_arg(a, 1)), _DEVICE)], a[0]),
    "virDomain.detachDevice": lambda s, a: Hand(["detach-device", _name(s), STDIN], a[0]),
    "virDomain.detachDeviceFlags": lambda s, a: Hand(["detach-device", _name(s), STDIN,
                                                      *_flags(int(_arg(a, 1)), _DEVICE)], a[0]),
    "virDomain.updateDeviceFlags": lambda s, a: Hand(["update-device", _name(s), STDIN,
                                                      *_flags(int(_arg(a, 1)), _DEVICE)], a[0]),
    "virDomain.snapshotCreateXML": lambda s, a: Hand(["snapshot-create", _name(s), STDIN,
                                                      *_flags(int(_arg(a, 1)), _SNAP_CREATE)], a[0]),
    "virDomain.revertToSnapshot": lambda s, a: Hand(["snapshot-revert", _name(s), str(_arg(a, 0, {}).get("name")),
                                                     *_flags(int(_arg(a, 1)), _REVERT)]),
    "virDomain.setMetadata": _metadata,
    "virDomain.setVcpusFlags": lambda s, a: Hand(["setvcpus", _name(s), str(a[0]), *_flags(int(_arg(a, 1)), _DEVICE)]
                                                 + (["--maximum"] if int(_arg(a, 1)) & 4 else [])),
    "virDomain.setMemoryFlags": lambda s, a: Hand(["setmem", _name(s), f"{a[0]}KiB",
                                                   *_flags(int(_arg(a, 1)), _DEVICE)]),
    "virDomain.setMaxMemory": lambda s, a: Hand(["setmaxmem", _name(s), f"{a[0]}KiB"]),
    "virDomain.managedSave": _simple("managedsave"),
    "virDomain.managedSaveRemove": _simple("managedsave-remove"),
    "virDomain.migrateToURI3": _migrate,
    "virDomain.fsFreeze": _simple("domfsfreeze"),
    "virDomain.fsThaw": _simple("domfsthaw"),
    "virDomain.interfaceAddresses": lambda s, a: Hand(["domifaddr", _name(s), "--source",
                                                       _by_value(_IFADDR_SOURCE, int(_arg(a, 0)))]),
    "libvirt_qemu.qemuAgentCommand": lambda s, a: Hand(["qemu-agent-command", _name(s), str(a[0]),
                                                        "--timeout", str(_arg(a, 1, 5))]),
    "virDomainSnapshot.delete": lambda s, a: Hand(["snapshot-delete", str(_obj(s).get("domain")), _name(s),
                                                   *_flags(int(_arg(a, 0)), _SNAP_DELETE)]),
    "virStoragePool.create": _simple("pool-start"),
    "virStoragePool.build": lambda s, a: Hand(["pool-build", _name(s), *_flags(int(_arg(a, 0)), _POOL_BUILD)]),
    "virStoragePool.destroy": _simple("pool-destroy"),
    "virStoragePool.undefine": _simple("pool-undefine"),
    "virStoragePool.delete": _simple("pool-delete"),
    "virStoragePool.setAutostart": _autostart("pool-autostart"),
    "virStoragePool.refresh": _simple("pool-refresh"),
    "virStoragePool.createXML": lambda s, a: Hand(["vol-create", _name(s), STDIN,
                                                   *_flags(int(_arg(a, 1)), _VOL_CREATE)], a[0]),
    "virStoragePool.createXMLFrom": lambda s, a: Hand(["vol-create-from", _name(s), STDIN,
                                                       "--inputpool", str(_arg(a, 1, {}).get("pool")),
                                                       str(_arg(a, 1, {}).get("name")),
                                                       *_flags(int(_arg(a, 2)), _VOL_CREATE)], a[0]),
    "virStorageVol.delete": lambda s, a: Hand(["vol-delete", *_vol(s)]),
    "virStorageVol.wipe": lambda s, a: Hand(["vol-wipe", *_vol(s)]),
    "virStorageVol.resize": lambda s, a: Hand(["vol-resize", *_vol(s), f"{a[0]}B",
                                               *_flags(int(_arg(a, 1)), _VOL_RESIZE)]),
    "virStorageVol.upload": lambda s, a: Hand(["vol-upload", *_vol(s), "FILE"],
                                              note="vpd streamed the file's bytes: FILE is the file you upload"),
    "virStorageVol.download": lambda s, a: Hand(["vol-download", *_vol(s), "FILE"],
                                                note="vpd streamed the volume's bytes: FILE is where they go"),
    "virNetwork.create": _simple("net-start"),
    "virNetwork.destroy": _simple("net-destroy"),
    "virNetwork.undefine": _simple("net-undefine"),
    "virNetwork.setAutostart": _autostart("net-autostart"),
    "virNetwork.update": lambda s, a: Hand(["net-update", _name(s), _by_value(_NET_UPDATE_CMD, int(a[0])),
                                            _by_value(_NET_SECTION, int(a[1])), STDIN,
                                            *(["--parent-index", str(a[2])] if int(a[2]) >= 0 else []),
                                            *_flags(int(_arg(a, 4)), _NET_UPDATE_FLAGS)], a[3]),
    "virSecret.setValue": lambda s, a: Hand(["secret-set-value", str(_obj(s).get("uuid")), "--file", "FILE"],
                                            note="the secret's value is not recorded: FILE holds it"),
    "virSecret.undefine": lambda s, a: Hand(["secret-undefine", str(_obj(s).get("uuid"))]),
}

# Host commands that only read: vpd ran them to decide; a hand script leaves them out (or shows
# them commented out). When unsure, a command counts as a change.
_READERS = {"cat", "test", "stat", "ls", "getent", "id", "uname", "command", "which", "readlink", "findmnt", "ss",
            "true", "df", "du", "sha256sum", "md5sum", "head", "nproc", "pgrep", "lsblk", "blkid", "grep", "find",
            "date", "ping", "nc", "timeout", "crm_mon", "corosync-quorumtool", "crm_verify"}
_CHANGE_WORDS = {"add", "del", "delete", "set", "change", "replace", "flush", "create", "insert", "start", "stop",
                 "restart", "reload", "enable", "disable", "mask", "unmask", "set-hostname", "up", "down", "-i",
                 "--reload", "--runtime-to-permanent", "convert", "resize", "commit", "rebase", "amend", "-f", "rm"}
_READ_WORDS = ("list", "show", "info", "status", "map", "check", "version", "is-active", "is-enabled", "--list",
               "--get", "--query", "--state", "--info", "--version", "-L", "-j", "domstate", "dominfo")


def is_query(argv: list[str]) -> bool:
    """Whether a host command only reads."""
    if not argv:
        return True
    prog = argv[0].rsplit("/", 1)[-1]
    rest = argv[1:]
    if any(w in _CHANGE_WORDS or w.startswith(("--add", "--remove", "--set", "--new", "--delete", "--change"))
           for w in rest):
        return False
    if prog in _READERS:
        return True
    if prog == "sh" and rest[:1] == ["-c"] and len(rest) > 1 and rest[1].startswith("command -v "):
        return True
    if "--op" in rest[:-1] and rest[rest.index("--op") + 1] == "show":  # tgtadm
        return True
    if prog == "hostname":
        return not rest or rest[0].startswith("-")
    return any(w.startswith(_READ_WORDS) for w in rest[:3])


def hands(step: dict) -> Hand:
    """The hand command of one recorded step."""
    if step.get("kind") == "libvirt":
        args = list(step.get("args") or []) + list((step.get("kwargs") or {}).values())
        make = VIRSH.get(step.get("call", ""))
        uri = ["-c", step["uri"]] if step.get("uri") else []
        if make is None:
            return Hand(["virsh", *uri, "#", str(step.get("call"))],
                        note=f"libvirt call {step.get('call')} on {_name(step)} has no virsh command here")
        hand = make(step, args)
        hand.argv = ["virsh", *uri, *hand.argv]
        hand.xml = True
        hand.query = bool(step.get("query"))
        return hand
    if step.get("kind") == "incus":
        # Incus' REST call as `incus query`, run on the host whose incusd vpd talked to.
        argv = ["incus", "query", "-X", str(step.get("method")), str(step.get("url"))]
        if step.get("json") is not None:
            argv += ["--data", json.dumps(step["json"], separators=(",", ":"))]
        said = f"on {step.get('host')}"
        if step.get("input_bytes"):
            said += f"; vpd sent {step['input_bytes']} bytes of content (a file or an image), not repeated here"
        return Hand(argv, note=said)
    argv = [str(a) for a in step.get("argv") or []]
    note = None
    if step.get("input_bytes"):
        note = f"vpd sent {step['input_bytes']} bytes on standard input (a file's contents, not repeated here)"
    if step.get("input_secret"):
        note = "vpd sent a secret (a password or private key) on standard input, never recorded: type or feed yours"
    if step.get("ssh"):
        # The remote side runs its argument through a shell: quote each word for it, as vpd did.
        full = ["ssh", *shlex.split(str(step["ssh"])), "--", shlex.join(argv)]
    else:
        full = argv
    return Hand(full, step.get("input"), note, query=bool(step.get("query")) or is_query(argv),
                dry_run=bool(step.get("dry_run")))


def _heredoc_end(text: str) -> str:
    end = "EOF"
    while end in text.splitlines():
        end += "_"
    return end


def shell(hand: Hand) -> str:
    """One paste-able command (a comment first when something about it must be said)."""
    line = shlex.join(hand.argv)
    if hand.input is not None:
        end = _heredoc_end(hand.input)
        body = hand.input if hand.input.endswith("\n") else hand.input + "\n"
        if hand.input.endswith("\n") or hand.xml:
            line = f"{line} <<'{end}'\n{body}{end}"
        else:
            # A here-document always ends its text with a newline; printf keeps it exact.
            line = f"printf '%s' {shlex.quote(hand.input)} | {line}"
    if hand.query:
        line = "\n".join("# " + part for part in line.split("\n"))
    if hand.note:
        line = f"# {hand.note}\n{line}"
    return line


def reads(steps: Iterable[dict]) -> list[str]:
    """The reads among the steps, as plain commands: the hand commands of a command that only
    looks (`vpd vm ip`, `vm fs`), where they are the whole answer."""
    out = []
    for step in steps:
        hand = hands(step)
        if hand.query:
            hand.query = False
            out.append(shell(hand))
    return out


def script(steps: Iterable[dict], queries: bool = False) -> list[str]:
    """Each step as a paste-able command; reads vpd made only to decide are left out unless
    `queries` (then shown commented out)."""
    out = []
    for step in steps:
        hand = hands(step)
        if hand.query and not queries:
            continue
        out.append(shell(hand))
    return out
