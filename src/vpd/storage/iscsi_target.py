"""An iSCSI target on an inventory host (Práctica 6): a volume or file exported as a LUN, admitted
to named initiators only (ACL by IQN, optional CHAP), and the host firewall opened on 3260/tcp to
those initiators' hosts only.

Two backends, chosen per host: LIO through targetcli where the kernel has the LIO target (real
hosts, as in the seed), and the userspace `tgt` daemon where it does not (the lab).
tgt facts (docs/lab.md, "iSCSI targets in the lab"): LUN 0 is its controller, so data LUNs
start at 1; it ignores SIGTERM, so it is stopped with `tgtadm --op delete --mode system` once
its last target is gone; it keeps no configuration across restarts (vpd recreates nothing
behind the user's back).

CHAP passwords travel on stdin (`Runner.run_secret`), never in the argv of a process vpd starts
(the local ssh command line would show them to every local user). tgtadm and targetcli take
them only as arguments, so on the target host they are in that program's argv for the
instant it runs; vpd never prints or journals them.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

from ..connect.inventory import Host, Inventory
from ..connect.ssh import NOT_FOUND, Runner, runner_for
from ..core.errors import NotFound, UsageError, VpdError
from ..core.undo import Undo
from ..hostprep import firewalld, nft
from ..hostprep.firewall import firewalld_running
from .iqn import check_iqn, default_initiator
from .pools import check_chap_user

ISCSI_PORT = 3260
PORTS = ((ISCSI_PORT, ISCSI_PORT),)
TGT, LIO = "tgt", "lio"
_TGTADM = ["tgtadm", "--lld", "iscsi"]


@dataclass(frozen=True)
class Initiator:
    iqn: str
    host: str | None  # the inventory host it runs on: its address is admitted through the firewall
    address: str | None


def parse_allow(values: list[str], inventory: Inventory) -> list[Initiator]:
    """--allow HOST, HOST=IQN or IQN (an IQN that is some host's vpd default)."""
    if not values:
        raise UsageError("name at least one initiator with --allow HOST, HOST=IQN or IQN")
    defaults = {default_initiator(h.name): h for h in inventory.hosts}
    out: list[Initiator] = []
    for value in values:
        name, sep, iqn_text = value.partition("=")
        if sep:
            host = inventory.get(name)
            iqn = check_iqn(iqn_text, "initiator IQN")
        elif value.lower().startswith(("iqn.", "eui.")):
            iqn = check_iqn(value, "initiator IQN")
            known = defaults.get(iqn)
            if known is None:
                raise UsageError(f"which host logs in as {iqn}? the firewall must know",
                                 hint="write --allow HOST=IQN")
            host = known
        else:
            host = inventory.get(value)
            iqn = default_initiator(host.name)
        if not host.address:
            raise UsageError(f"host {host.name} has no address in the inventory: the firewall cannot admit it")
        if any(i.iqn == iqn for i in out):
            raise UsageError(f"initiator {iqn} is given twice")
        out.append(Initiator(iqn, host.name, host.address))
    return out


@dataclass
class TargetInfo:
    host: str
    backend: str
    iqn: str
    tid: int | None
    luns: dict[int, str] = field(default_factory=dict)  # LUN -> backing path
    acl: list[str] = field(default_factory=list)
    chap_users: list[str] = field(default_factory=list)
    sessions: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "luns": {str(k): v for k, v in self.luns.items()}}


# --- tgt ------------------------------------------------------------------------------

def parse_tgt_show(text: str, host: str) -> list[TargetInfo]:
    """`tgtadm --lld iscsi --op show --mode target` -> targets (pure)."""
    targets: list[TargetInfo] = []
    section = None
    lun: int | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if m := re.match(r"^Target (\d+): (\S+)$", raw):
            targets.append(TargetInfo(host, TGT, m.group(2), int(m.group(1))))
            section, lun = None, None
            continue
        if not targets:
            continue
        t = targets[-1]
        if line.endswith("information:"):
            section = line.removesuffix(" information:")
            continue
        if section == "LUN":
            if m := re.match(r"^LUN: (\d+)$", line):
                lun = int(m.group(1))
            elif (m := re.match(r"^Backing store path: (.+)$", line)) and lun is not None and m.group(1) != "None":
                t.luns[lun] = m.group(1)
        elif section == "I_T nexus" and line.startswith("I_T nexus:"):
            t.sessions += 1
        elif section == "Account" and line:
            t.chap_users.append(line.removesuffix(" (outgoing)"))
        elif section == "ACL" and line:
            t.acl.append(line)
    return targets


class Tgt:
    name = TGT

    def __init__(self, host: Host, runner: Runner):
        self.host, self.runner = host, runner

    def _adm(self, *args: str, check: bool = True):
        return self.runner.run([*_TGTADM, *args], check=check, timeout=30)

    def running(self) -> bool:
        return self._adm("--op", "show", "--mode", "sys", check=False).ok

    def ensure_running(self) -> bool:
        """Start tgtd inside the host (its own /run holds the control socket); True if started."""
        if self.running():
            return False
        started = self.runner.run(["tgtd"], check=False, timeout=30)
        if started.returncode == NOT_FOUND:
            raise VpdError(f"{self.host.name}: tgtd is not installed", hint="install tgt (scripts/setup.sh does)")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.running():
                return True
            time.sleep(0.1)
        raise VpdError(f"{self.host.name}: tgtd did not start: {started.stderr.strip()}")

    def targets(self) -> list[TargetInfo]:
        if not self.running():
            return []
        return parse_tgt_show(self._adm("--op", "show", "--mode", "target").stdout, self.host.name)

    def _accounts(self) -> list[str]:
        out = self._adm("--op", "show", "--mode", "account").stdout
        return [line.strip() for line in out.splitlines()[1:] if line.strip()]

    def create(self, iqn: str, lun: int, path: str, initiators: list[str], chap_user: str | None,
               password: str | None) -> None:
        if lun < 1:
            raise UsageError("tgt keeps LUN 0 for its controller: use --lun 1 or higher")
        if chap_user and chap_user in self._accounts():
            users = [t.iqn for t in self.targets() if chap_user in t.chap_users]
            if users:
                raise UsageError(f"CHAP user {chap_user} already belongs to target(s) {', '.join(users)}",
                                 hint="give each target its own --chap user")
            self._adm("--op", "delete", "--mode", "account", "--user", chap_user)
        tid = str(max((t.tid or 0 for t in self.targets()), default=0) + 1)
        self._adm("--op", "new", "--mode", "target", "--tid", tid, "-T", iqn)
        try:
            self._adm("--op", "new", "--mode", "logicalunit", "--tid", tid, "--lun", str(lun), "-b", path)
            for initiator in initiators:
                self._adm("--op", "bind", "--mode", "target", "--tid", tid, "--initiator-name", initiator)
            if chap_user:
                if password is None:
                    raise UsageError(f"CHAP user {chap_user} needs a password")
                self.runner.run_secret([*_TGTADM, "--op", "new", "--mode", "account", "--user", chap_user,
                                        "--password"], password, timeout=30)
                self._adm("--op", "bind", "--mode", "account", "--tid", tid, "--user", chap_user)
        except BaseException:
            self._adm("--op", "delete", "--mode", "target", "--tid", tid, "--force", check=False)
            if chap_user:
                self._adm("--op", "delete", "--mode", "account", "--user", chap_user, check=False)
            raise

    def delete(self, target: TargetInfo) -> list[str]:
        notes = []
        self._adm("--op", "delete", "--mode", "target", "--tid", str(target.tid), "--force")
        others = {u for t in self.targets() for u in t.chap_users}
        for user in target.chap_users:
            if user not in others:
                self._adm("--op", "delete", "--mode", "account", "--user", user, check=False)
        if not self.targets():
            # tgtd ignores SIGTERM: this is how it stops.
            self._adm("--op", "delete", "--mode", "system", check=False)
            notes.append("tgtd stopped (no target left)")
        return notes


# --- LIO (targetcli) --------------------------------------------------------------------

class Lio:
    """LIO through targetcli, as the seed does on real hosts. Not exercised on the lab (its
    kernel has no LIO target): verified against targetcli's documented commands only."""

    name = LIO
    SAVED = "/etc/target/saveconfig.json"

    def __init__(self, host: Host, runner: Runner):
        self.host, self.runner = host, runner

    def _cli(self, *args: str, check: bool = True):
        return self.runner.run(["targetcli", *args], check=check, timeout=60)

    def ensure_running(self) -> bool:
        return False  # the kernel target needs no daemon

    def targets(self) -> list[TargetInfo]:
        self._cli("saveconfig")
        data = json.loads(self.runner.run(["cat", self.SAVED]).stdout or "{}")
        storage = {f"/backstores/{o['plugin']}/{o['name']}": o.get("dev") for o in data.get("storage_objects", [])}
        out = []
        for t in data.get("targets", []):
            if t.get("fabric") != "iscsi":
                continue
            info = TargetInfo(self.host.name, LIO, t["wwn"], None)
            for tpg in t.get("tpgs", []):
                for lun in tpg.get("luns", []):
                    info.luns[int(lun["index"])] = storage.get(lun["storage_object"], lun["storage_object"])
                for acl in tpg.get("node_acls", []):
                    info.acl.append(acl["node_wwn"])
                    if acl.get("chap_userid"):
                        info.chap_users.append(acl["chap_userid"])
            out.append(info)
        return out

    @staticmethod
    def backstore(iqn: str) -> str:
        return "vpd-" + hashlib.sha1(iqn.encode()).hexdigest()[:12]

    def create(self, iqn: str, lun: int, path: str, initiators: list[str], chap_user: str | None,
               password: str | None) -> None:
        store = self.backstore(iqn)
        kind = "block" if self.runner.run(["test", "-b", path], check=False).ok else "fileio"
        source = "dev" if kind == "block" else "file_or_dev"
        self._cli(f"/backstores/{kind}", "create", f"name={store}", f"{source}={path}")
        try:
            self._cli("/iscsi", "create", iqn)
            tpg = f"/iscsi/{iqn}/tpg1"
            self._cli(f"{tpg}/luns", "create", f"/backstores/{kind}/{store}", f"lun={lun}")
            for initiator in initiators:
                self._cli(f"{tpg}/acls", "create", initiator)
                if chap_user:
                    if password is None:
                        raise UsageError(f"CHAP user {chap_user} needs a password")
                    self.runner.run_secret(["targetcli", f"{tpg}/acls/{initiator}", "set", "auth",
                                            f"userid={chap_user}"], password, prefix="password=", timeout=60)
            self._cli(tpg, "set", "attribute", f"authentication={1 if chap_user else 0}")
            self._cli("saveconfig")
        except BaseException:
            self._cli("/iscsi", "delete", iqn, check=False)
            self._cli(f"/backstores/{kind}", "delete", store, check=False)
            raise

    def delete(self, target: TargetInfo) -> list[str]:
        self._cli("/iscsi", "delete", target.iqn)
        store = self.backstore(target.iqn)
        for kind in ("fileio", "block"):
            self._cli(f"/backstores/{kind}", "delete", store, check=False)
        self._cli("saveconfig")
        return []


def backend_for(host: Host) -> Tgt | Lio:
    runner = runner_for(host)
    has = lambda *argv: runner.run(list(argv), check=False).ok  # noqa: E731
    if has("test", "-d", "/sys/kernel/config/target") and has("targetcli", "version"):
        return Lio(host, runner)
    if has("sh", "-c", "command -v tgtadm"):
        return Tgt(host, runner)
    raise UsageError(f"{host.name} has no iSCSI target: no LIO (targetcli + the kernel's target_core_mod) and no tgt",
                     hint="install targetcli-fb (LIO) or tgt")


# --- firewall: 3260/tcp for the initiators' hosts only -------------------------------------

def firewall_tag(iqn: str) -> str:
    """nft rule comments of one target (its IQN may be longer than a comment allows)."""
    return "vpd-iscsi " + hashlib.sha1(iqn.encode()).hexdigest()[:10]


def open_firewall(host: Host, peers: list[Initiator], iqn: str) -> list[str]:
    """Admit each initiator's host to 3260/tcp; returns what was done."""
    runner = runner_for(host)
    done: list[str] = []
    # The target host's own initiators connect over its loopback: no rule for them.
    addressed = sorted({(p.host or p.iqn, p.address) for p in peers if p.address and p.host != host.name})
    if firewalld_running(host):
        for name, address in addressed:
            for rule in firewalld.rich_rules(address, PORTS):
                for permanent in (False, True):
                    runner.run(_firewalld_argv(host, address, rule, permanent, "--add-rich-rule"))
            done.append(f"firewalld: admit {name} ({address}) to 3260/tcp")
        return done
    listing = runner.run(["nft", "-j", "-a", "list", "ruleset"], check=False)
    if listing.returncode == NOT_FOUND or not listing.ok:
        return ["no nftables or firewalld here: nothing to open"]
    plan = nft.plan(nft.parse(listing.stdout), list(addressed), PORTS, tag=firewall_tag(iqn))
    for chain, name, address, argv in plan:
        runner.run(argv)
        done.append(f"nftables: admit {name} ({address}) to 3260/tcp in {chain}")
    return done


def _firewalld_argv(host: Host, address: str, rule: str, permanent: bool, option: str) -> list[str]:
    zone = runner_for(host).run(["firewall-cmd", "--get-default-zone"]).stdout.strip()
    return ["firewall-cmd", *(["--permanent"] if permanent else []), f"--zone={firewalld.check_zone(zone)}",
            f"{option}={rule}"]


def close_firewall(host: Host, target: TargetInfo, peers_addresses: list[str]) -> list[str]:
    runner = runner_for(host)
    done: list[str] = []
    if firewalld_running(host):
        for address in peers_addresses:
            for rule in firewalld.rich_rules(address, PORTS):
                for permanent in (False, True):
                    runner.run(_firewalld_argv(host, address, rule, permanent, "--remove-rich-rule"), check=False)
            done.append(f"firewalld: 3260/tcp closed to {address}")
        return done
    listing = runner.run(["nft", "-j", "-a", "list", "ruleset"], check=False)
    if not listing.ok:
        return done
    tag = firewall_tag(target.iqn) + " "
    for nft_rule in nft.parse(listing.stdout).rules:
        if nft_rule.comment and nft_rule.comment.startswith(tag):
            runner.run(nft.delete_argv(nft_rule))
            done.append(f"nftables: removed {nft_rule.comment!r}")
    return done


# --- the procedures ------------------------------------------------------------------------

def find_target(backend: Tgt | Lio, iqn: str) -> TargetInfo | None:
    return next((t for t in backend.targets() if t.iqn == iqn), None)


def create_target(host: Host, iqn: str, path: str, lun: int, initiators: list[Initiator], chap_user: str | None,
                  password: str | None, undo: Undo | None = None, plan: Callable[[], None] | None = None) -> dict:
    """Export `path` (a file or block device on `host`) as LUN `lun` of target `iqn`. A failure
    half-way removes what was made: through `undo` (an Operation's) when given, else here.
    `plan` is called once the target is known to be new, just before it is made."""
    iqn = check_iqn(iqn, "target IQN")
    if chap_user:
        check_chap_user(chap_user)
        if password is None:
            raise UsageError("--chap needs the secret: --chap-secret-file FILE or $VPD_CHAP_SECRET")
    if not 0 <= lun <= 255:
        raise UsageError(f"LUN {lun} is out of range (0-255)")
    runner = runner_for(host)
    if not runner.run(["test", "-e", path], check=False).ok:
        raise UsageError(f"{host.name}: {path} does not exist there")
    backend = backend_for(host)
    wanted_acl = sorted(i.iqn for i in initiators)
    existing = find_target(backend, iqn)
    result = {"host": host.name, "backend": backend.name, "iqn": iqn, "lun": lun, "path": path,
              "allowed": [asdict(i) for i in initiators], "chap_user": chap_user}
    if existing is not None:
        same = (existing.luns.get(lun) == path and sorted(existing.acl) == wanted_acl
                and existing.chap_users == ([chap_user] if chap_user else []))
        if not same:
            raise UsageError(f"target {iqn} already exists on {host.name} with other settings "
                             f"(LUNs {existing.luns}, ACL {existing.acl}, CHAP {existing.chap_users})",
                             hint="`vpd iscsi target delete` it first")
        return {**result, "changed": False, "firewall": open_firewall(host, initiators, iqn)}
    in_use = [t.iqn for t in backend.targets() if path in t.luns.values()]
    if in_use:
        raise UsageError(f"{path} is already exported by {', '.join(in_use)}")
    if plan is not None:
        plan()
    started = backend.ensure_running()
    steps_undo = undo if undo is not None else Undo()
    with steps_undo if undo is None else nullcontext():
        steps_undo.push(lambda: _remove_partial(host, backend, iqn, started, initiators),
                  f"remove target {iqn} and its firewall openings on {host.name}")
        backend.create(iqn, lun, path, wanted_acl, chap_user, password)
        firewall = open_firewall(host, initiators, iqn)
    return {**result, "changed": True, "tgtd_started": started, "firewall": firewall}


def _remove_partial(host: Host, backend: Tgt | Lio, iqn: str, started: bool, initiators: list[Initiator]) -> None:
    """Undo a create that failed half-way: the target if it was made (else tgtd if vpd started
    it), and whatever firewall openings were made for it."""
    target = find_target(backend, iqn)
    if target is not None:
        backend.delete(target)
    elif started and isinstance(backend, Tgt):
        backend._adm("--op", "delete", "--mode", "system", check=False)
    close_firewall(host, TargetInfo(host.name, backend.name, iqn, None), [i.address for i in initiators if i.address])


def delete_target(host: Host, iqn: str, inventory: Inventory) -> dict:
    iqn = check_iqn(iqn, "target IQN")
    backend = backend_for(host)
    target = find_target(backend, iqn)
    if target is None:
        raise NotFound(f"no iSCSI target {iqn} on {host.name}", hint=f"`vpd iscsi target list --host {host.name}`")
    notes = backend.delete(target)
    addresses = [h.address for h in inventory.hosts if h.address]
    firewall = close_firewall(host, target, addresses)
    return {"host": host.name, "iqn": iqn, "deleted": True, "sessions_dropped": target.sessions,
            "firewall": firewall, "notes": notes}


def list_targets(hosts: list[Host]) -> list[dict]:
    out = []
    for host in hosts:
        try:
            backend = backend_for(host)
            out.append({"host": host.name, "backend": backend.name, "error": None,
                        "targets": [t.to_dict() for t in backend.targets()]})
        except VpdError as exc:
            out.append({"host": host.name, "backend": None, "error": exc.message, "targets": []})
    return out
