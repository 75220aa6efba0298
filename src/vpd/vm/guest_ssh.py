"""`vpd vm ssh`: SSH into a guest with the user and key cloud-init gave it, checking the guest's
host key against the one it showed at first boot.

- At creation (`vm create --cloud-init user=U,ssh-key=FILE.pub`) vpd keeps the user, the public
  keys and where they were read in the domain's <metadata> (GUEST_ACCESS_NS): they travel with
  the VM (migration, dumpxml) and `vm ssh` uses the private key beside FILE.pub.
- Host keys: cloud-init prints the guest's new host keys on the console at first boot, between
  `-----BEGIN SSH HOST KEY KEYS-----` markers (and their fingerprints between `... FINGERPRINTS`
  markers); vpd reads them from the console log the host keeps and records them in the
  metadata too (HOST_KEYS_NS). A console that shows only fingerprints: the keys are read
  through the guest agent (the guest's own files, not the network) and must match them.
- ssh then runs with StrictHostKeyChecking=yes against a known_hosts that vpd writes from that
  record, under the alias vpd-UUID (guests' addresses change and get reused; their UUID does not).
- A guest on a host's private network is reached through the host: ProxyJump over the host's
  SSH as vpd reaches it (its identity, port and known_hosts), sharing vpd's connection to it.

Everything goes in an ssh_config file vpd writes (no shell reads it) and ssh runs from an
argument list; the remote command is each word quoted for the guest's login shell, so the
guest runs exactly the argv given."""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ..connect.inventory import Host
from ..connect.ssh import MUX_PERSIST_S, SshRunner, mux_dir
from ..core import paths
from ..core.errors import UsageError, VpdError
from ..xml.edit import VPD_NS_PREFIX, DomainEditor

GUEST_ACCESS_NS = VPD_NS_PREFIX + "guest-access"
"""`<vpd:guest-access user="U" key-file="/home/u/.ssh/id_ed25519.pub"><key>ssh-ed25519 AAAA...</key></...>`"""
HOST_KEYS_NS = VPD_NS_PREFIX + "guest-host-keys"
"""`<vpd:guest-host-keys source="console"><key type="ssh-ed25519">AAAA...</key></...>`"""
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
# The files `ssh-keygen -A` and cloud-init's ssh module write, by key type.
HOST_KEY_FILES = {"ssh-ed25519": "/etc/ssh/ssh_host_ed25519_key.pub", "ecdsa": "/etc/ssh/ssh_host_ecdsa_key.pub",
                  "ssh-rsa": "/etc/ssh/ssh_host_rsa_key.pub"}
JUMP_ALIAS = "vpd-jump"
GUEST_ALIAS = "vpd-guest"


@dataclass(frozen=True)
class GuestAccess:
    user: str | None
    keys: tuple[str, ...]
    key_file: str | None

    def identity(self) -> str | None:
        """The private key beside the public key file given at creation, if it is there."""
        if self.key_file and self.key_file.endswith(".pub") and Path(self.key_file[:-4]).is_file():
            return self.key_file[:-4]
        return None


@dataclass(frozen=True)
class HostKey:
    type: str
    key: str  # base64, as in known_hosts

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)


def fingerprint(key_b64: str) -> str:
    """`ssh-keygen -l`'s SHA256 fingerprint of a public key blob."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# --- the records in the domain's <metadata> -------------------------------------------------

def access_element(user: str | None, keys: tuple[str, ...] | list[str], key_file: str | None) -> str:
    attrs = (f" user={quoteattr(user)}" if user else "") + (f" key-file={quoteattr(key_file)}" if key_file else "")
    return f"<guest-access{attrs}>" + "".join(f"<key>{escape(k)}</key>" for k in keys) + "</guest-access>"


def with_access(xml: str, user: str | None, keys: tuple[str, ...], key_file: str | None) -> str:
    """The domain XML with vpd's record of what cloud-init was given."""
    editor = DomainEditor.from_xml(xml)
    editor.set_metadata(GUEST_ACCESS_NS, "vpd", access_element(user, keys, key_file))
    return editor.to_xml()


def access_of(xml: str | bytes) -> GuestAccess | None:
    node = DomainEditor.from_xml(xml).metadata(GUEST_ACCESS_NS)
    if node is None:
        return None
    return GuestAccess(node.get("user"), tuple(k.text or "" for k in _keys(node)), node.get("key-file"))


def _keys(node) -> list:
    """<key> children, in the record's namespace or none (libvirt's setMetadata moves the
    children into the namespace; a definition written whole keeps them as written)."""
    return [child for child in node if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "key"]


def host_keys_element(keys: list[HostKey], source: str) -> str:
    return (f"<guest-host-keys source={quoteattr(source)}>"
            + "".join(f"<key type={quoteattr(k.type)}>{escape(k.key)}</key>" for k in keys) + "</guest-host-keys>")


def host_keys_of(xml: str | bytes) -> tuple[list[HostKey], str | None]:
    """The recorded host keys and where they were learnt ([] and None when none are)."""
    node = DomainEditor.from_xml(xml).metadata(HOST_KEYS_NS)
    if node is None:
        return [], None
    return [HostKey(k.get("type", ""), k.text or "") for k in _keys(node)], node.get("source")


# --- what cloud-init printed on the console -------------------------------------------------

_KEY = re.compile(r"\b(" + "|".join(map(re.escape, HOST_KEY_TYPES)) + r") (AAAA[0-9A-Za-z+/]+={0,2})")
_FP = re.compile(r"\b\d+ (SHA256:[0-9A-Za-z+/]{43})\b")


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """The complete `-----BEGIN SSH HOST KEY KIND-----` ... END blocks, in order: (KIND, lines)."""
    found: list[tuple[str, list[str]]] = []
    kind, lines = None, []
    for line in text.splitlines():
        begin = re.search(r"-----BEGIN SSH HOST KEY (KEYS|FINGERPRINTS)-----", line)
        if begin:
            kind, lines = begin.group(1), []
        elif kind is not None and f"-----END SSH HOST KEY {kind}-----" in line:
            found.append((kind, lines))
            kind = None
        elif kind is not None:
            lines.append(line)
    return found


def console_host_keys(text: str) -> tuple[list[HostKey], list[str]]:
    """(keys, fingerprints) cloud-init printed last: the last complete KEYS block and the
    FINGERPRINTS block printed just before it (the newest instance's: a log that outlived an
    earlier VM of the same name holds that one's first); without a KEYS block, the last
    FINGERPRINTS block. Lines may carry logger's prefix (`<14>Dec  4 22:10:01 ec2: ...`)."""
    blocks = _blocks(text)
    last_keys = max((i for i, (kind, _) in enumerate(blocks) if kind == "KEYS"), default=None)
    before = blocks[:last_keys] if last_keys is not None else blocks
    prints_block = next((lines for kind, lines in reversed(before) if kind == "FINGERPRINTS"), [])
    keys = []
    for line in blocks[last_keys][1] if last_keys is not None else []:
        if m := _KEY.search(line):
            try:
                base64.b64decode(m.group(2), validate=True)
            except (binascii.Error, ValueError):
                continue
            keys.append(HostKey(m.group(1), m.group(2)))
    return keys, [m.group(1) for line in prints_block if (m := _FP.search(line))]


def public_key_line(text: str) -> HostKey | None:
    """A host key file's `TYPE BASE64 [comment]` line."""
    if m := _KEY.search(text):
        return HostKey(m.group(1), m.group(2))
    return None


def matching(keys: list[HostKey], prints: list[str], where: str) -> list[HostKey]:
    """The keys whose fingerprints cloud-init printed; none of them: refused."""
    if not prints:
        return keys
    kept = [k for k in keys if k.fingerprint in prints]
    if not kept:
        raise VpdError(f"the guest's host keys ({where}) match none of the fingerprints it printed at first boot "
                       f"({', '.join(prints)})", hint="someone changed the guest's host keys since; check it by hand")
    return kept


# --- running ssh ----------------------------------------------------------------------------

def _conf_value(value: str, what: str, token: str = "") -> str:
    """A value for ssh_config, quoted; '%' escaped (ssh expands tokens in paths), then `token`."""
    if any(c in value for c in '"\n\r\0'):
        raise UsageError(f"{what} {value!r} holds a quote or a line break: ssh_config cannot carry it")
    return '"' + value.replace("%", "%%") + token + '"'


def ssh_config(host: Host, address: str, user: str, alias: str, known_hosts: Path, identity: str | None,
               batch: bool) -> str:
    """The ssh_config of one guest: the host as jump (unless it is this machine) and the guest."""
    lines = []
    if not host.is_local:
        target = SshRunner(host).target
        jump_user, _, jump_addr = target.rpartition("@")
        lines += [f"Host {JUMP_ALIAS}", f"  HostName {jump_addr}", f"  User {jump_user}", f"  Port {host.ssh_port}",
                  "  BatchMode yes", "  ConnectTimeout 5", "  ServerAliveInterval 5",
                  # The same connection vpd's own commands to this host share (connect/ssh.py).
                  "  ControlMaster auto", f"  ControlPath {_conf_value(str(mux_dir()), 'state dir', '/%C')}",
                  f"  ControlPersist {MUX_PERSIST_S}"]
        if host.ssh_identity:
            lines += [f"  IdentityFile {_conf_value(host.ssh_identity, 'host identity')}", "  IdentitiesOnly yes"]
        if host.ssh_known_hosts:
            lines += [f"  UserKnownHostsFile {_conf_value(host.ssh_known_hosts, 'host known_hosts')}",
                      "  StrictHostKeyChecking yes"]
    lines += [f"Host {GUEST_ALIAS}", f"  HostName {address}", f"  User {user}", f"  HostKeyAlias {alias}",
              f"  UserKnownHostsFile {_conf_value(str(known_hosts), 'known_hosts')}",
              "  GlobalKnownHostsFile /dev/null", "  StrictHostKeyChecking yes", "  ConnectTimeout 10",
              "  ServerAliveInterval 10"]
    if batch:
        lines.append("  BatchMode yes")
    if identity:
        lines += [f"  IdentityFile {_conf_value(identity, 'identity')}", "  IdentitiesOnly yes"]
    if not host.is_local:
        lines.append(f"  ProxyJump {JUMP_ALIAS}")
    return "\n".join(lines) + "\n"


@dataclass
class SshPlan:
    argv: list[str]
    config: Path
    known_hosts: Path
    address: str
    user: str
    identity: str | None


def prepare(host: Host, uuid: str, address: str, user: str, identity: str | None, keys: list[HostKey],
            command: list[str], batch: bool) -> SshPlan:
    """Write the VM's known_hosts (from the recorded keys) and ssh_config; the ssh argv."""
    directory = paths.state_dir() / "guest-ssh"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    alias = f"vpd-{uuid}"
    known_hosts = directory / f"{uuid}.known_hosts"
    known_hosts.write_text("".join(f"{alias} {k.type} {k.key}\n" for k in keys))
    config = directory / f"{uuid}.config"
    config.write_text(ssh_config(host, address, user, alias, known_hosts, identity, batch))
    argv = ["ssh", "-F", str(config), GUEST_ALIAS]
    if command:
        # The guest's login shell reads the command: each word quoted, so it runs exactly this argv.
        argv += ["--", shlex.join(command)]
    return SshPlan(argv, config, known_hosts, address, user, identity)


def check_user(user: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", user):
        raise UsageError(f"user name {user!r} is not a valid Linux user name")
    return user

