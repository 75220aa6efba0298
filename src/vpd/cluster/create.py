"""`vpd cluster create`: a Pacemaker + Corosync cluster built through pcs on
the inventory's hosts, as the course's Práctica 7 assembles it by hand. vpd never
re-implements membership, quorum or fencing: it
checks first, drives pcs, waits until the cluster says it is whole, and undoes
its own work when a step fails. Every command runs on a host through its runner
(argv, never a shell string). What follows create is in members.py; talking to
the cluster, in pcs.py."""
from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..connect.inventory import Host, Inventory
from ..connect.ssh import NOT_FOUND, runner_for
from ..core import events
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from . import fencing, firewall, pcs, store
from . import status as st
from .fencing import FenceSpec

PACKAGES = ["pacemaker", "pacemaker-cli-utils", "corosync", "pcs", "resource-agents", "fence-agents"]
RPM_PACKAGES = ["pacemaker", "pacemaker-cli", "corosync", "pcs", "resource-agents", "fence-agents-all"]
COROSYNC_CONF = "/etc/corosync/corosync.conf"
SET_ASIDE = COROSYNC_CONF + ".vpd-orig"
MAX_MEMBERS = 16
_CLUSTER_NAME_LINE = re.compile(r"^\s*cluster_name\s*:\s*(\S+)\s*$", re.MULTILINE)


# --- validation (pure where it can be) ----------------------------------------------

def check_members(inv: Inventory, names: list[str]) -> list[Host]:
    if len(names) < 2:
        raise UsageError("a cluster needs at least 2 hosts", hint="--hosts H1,H2[,H3]")
    if len(names) > MAX_MEMBERS:
        raise UsageError(f"at most {MAX_MEMBERS} hosts")
    if len(set(names)) != len(names):
        raise UsageError("a host is listed twice in --hosts")
    hosts = [inv.get(check_name(n, "host name")) for n in names]  # NotFound (exit 2) for unknown hosts
    for h in hosts:
        if not h.address:
            raise UsageError(f"host {h.name} has no address in the inventory",
                             hint="corosync and the firewall rules need each member's address")
    return hosts


def sample_corosync_conf(text: str) -> bool:
    """The distribution's placeholder (Debian ships one naming `debian` / node1 at
    127.0.0.1): it must go before `pcs cluster setup`, or pcs believes the host
    is already in a cluster with a node1."""
    names = _CLUSTER_NAME_LINE.findall(text)
    return names in ([], ["debian"]) and ("127.0.0.1" in text or not names)


def existing_cluster(text: str) -> str | None:
    names = _CLUSTER_NAME_LINE.findall(text)
    return names[0] if names else "(unnamed)"


# --- the procedure ------------------------------------------------------------------

@dataclass
class CreateReport:
    name: str
    hosts: list[str]
    fencing: dict | None
    warnings: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _missing_packages(host: Host) -> tuple[list[str], str]:
    run = runner_for(host)
    probe = run.run(["dpkg-query", "-W", "-f=${Package} ${Status}\n", *PACKAGES], check=False)
    if probe.returncode != NOT_FOUND:
        have = {line.split()[0] for line in probe.stdout.splitlines() if line.endswith("install ok installed")}
        return [p for p in PACKAGES if p not in have], "apt"
    missing = [p for p in RPM_PACKAGES if not run.run(["rpm", "-q", p], check=False).ok]
    return missing, "dnf"


def _install(host: Host, missing: list[str], manager: str) -> None:
    if host.lab:
        # Lab hosts share the machine's /usr and dpkg database: never install from inside one.
        raise VpdError(f"{host.name}: cluster packages missing ({', '.join(missing)})",
                       hint="run scripts/setup.sh on the machine (it installs them for every lab host)")
    argv = (["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", *missing]
            if manager == "apt" else ["dnf", "install", "-y", "-q", *missing])
    runner_for(host, 900).run(argv, timeout=900)


def _inspect_host(host: Host) -> tuple[bool, str | None]:
    """(sample corosync.conf to set aside, hacluster's shadow field). UsageError
    when the host already belongs to a cluster."""
    run = runner_for(host)
    conf = run.run(["cat", COROSYNC_CONF], check=False)
    move = False
    if conf.ok:
        if sample_corosync_conf(conf.stdout):
            move = True
        else:
            raise UsageError(f"{host.name} already belongs to cluster {existing_cluster(conf.stdout)}",
                             hint=f"destroy that cluster first (`pcs cluster destroy` on {host.name})")
    shadow = run.run(["getent", "shadow", "hacluster"], check=False)
    if not shadow.ok:
        raise VpdError(f"{host.name}: no hacluster user (is pcs installed?)")
    return move, shadow.stdout.split(":")[1]


def create(inv: Inventory, name: str, host_names: list[str], fence: FenceSpec | None,
           timeout: float = 240.0) -> CreateReport:
    started = time.monotonic()
    check_name(name, "cluster name")
    hosts = check_members(inv, host_names)
    if name in store.names():
        raise UsageError(f"a cluster named {name!r} already exists", hint=f"`vpd cluster status {name}`")
    for h in hosts:
        other = store.cluster_of(h.name)
        if other:
            raise UsageError(f"{h.name} already belongs to cluster {other}", hint="a host can be in one cluster only")
    report = CreateReport(name, [h.name for h in hosts], fence.to_dict() if fence else None)
    if fence is None:
        report.warnings.append(fencing.NO_FENCING_WARNING)
    op, total = "cluster.create", 7
    events.emit(op, "checking hosts", 1, total)
    # _inspect_host may refuse (exit 2): nothing has changed yet.
    found = dict(zip([h.name for h in hosts], each(hosts, _inspect_host), strict=True))
    for h, (missing, manager) in zip(hosts, each(hosts, _missing_packages), strict=True):
        if missing:
            _install(h, missing, manager)
            report.steps.append(f"{h.name}: installed {' '.join(missing)}")
    rec = store.ClusterRecord(name, [h.name for h in hosts], fence.to_dict() if fence else None)
    for h in hosts:
        rec.restore[h.name] = store.HostRestore(shadow_field=found[h.name][1])
    try:
        events.emit(op, "opening 2224/tcp and 5405/udp to the members", 2, total)
        def open_ports(h: Host) -> None:
            rec.restore[h.name].firewall = firewall.open_ports(h, [p for p in hosts if p is not h])

        each(hosts, open_ports)
        events.emit(op, "setting the hacluster password and starting pcsd", 3, total)
        password = secrets.token_urlsafe(24)  # never printed, logged or stored by vpd

        def prepare(h: Host, password: str = password) -> None:
            if found[h.name][0]:
                runner_for(h).run(["mv", COROSYNC_CONF, SET_ASIDE])
                rec.restore[h.name].corosync_conf_moved = True
            runner_for(h).run(["chpasswd"], input=f"hacluster:{password}\n", secret=True)
            rec.restore[h.name].pcsd_started = True  # before: a start that fails half-way is stopped too
            runner_for(h, 90).run(["systemctl", "start", "pcsd"], timeout=90)

        each(hosts, prepare)
        first = hosts[0]
        node_args = [a for h in hosts for a in (h.name, f"addr={h.address}")]
        events.emit(op, "authenticating the hosts (pcs host auth)", 4, total)
        pcs.run(first, "host", "auth", *node_args, input=f"hacluster\n{password}\n", secret=True)
        del password
        events.emit(op, "setting up and starting the cluster (knet, crypto on)", 5, total)
        # pcs writes two_node: 1 for two members itself, and knet with aes256/sha256.
        pcs.run(first, "cluster", "setup", name, *node_args, timeout=timeout)
        each(hosts, seed_cib)
        # pcs's own --wait polls slowly (~10 s late here): vpd waits below instead.
        pcs.run(first, "cluster", "start", "--all", timeout=timeout)
        report.steps.append("pcs cluster setup; pcs cluster start --all")
        events.emit(op, "waiting for every member online and quorum", 6, total)
        pcs.wait_for(rec, inv, lambda s: st.all_online(s, rec.hosts), timeout, "every member online and quorate")
        events.emit(op, "fencing and defaults", 7, total)
        pcs.run(first, "resource", "defaults", "update", f"resource-stickiness={pcs.STICKINESS}")
        if fence:
            params = fencing.device_params(fence, rec.hosts)
            pcs.run(first, "stonith", "create", fencing.device_id(name), fence.agent,
                *(f"{k}={v}" for k, v in params.items()))
            pcs.run(first, "property", "set", "stonith-enabled=true")
            pcs.wait_for(rec, inv, lambda s: bool(st.running_on(s, fencing.device_id(name))), 60,
                     "the fence device started")
        else:
            pcs.run(first, "property", "set", "stonith-enabled=false")
        store.save(rec)
        final = pcs.query(rec, inv)
        report.status = final.to_dict()
    except BaseException:
        teardown(rec, inv, hosts)
        raise
    report.seconds = round(time.monotonic() - started, 2)
    return report


CIB = "/var/lib/pacemaker/cib/cib.xml"
# A new cluster's first DC election waits dc-deadtime (20 s by default) for a DC
# that does not exist yet; members on one LAN answer within a second.
DC_DEADTIME = "5s"


def seed_cib(host: Host) -> None:
    """The first CIB of a member, holding only dc-deadtime: pacemaker reads its
    options from the CIB, which does not exist before the first start."""
    run = runner_for(host)
    empty = run.run(["cibadmin", "--empty"]).stdout
    run.run(["tee", CIB], input=empty)
    run.run(["env", f"CIB_file={CIB}", "crm_attribute", "--type", "crm_config", "--name", "dc-deadtime",
             "--update", DC_DEADTIME])
    run.run(["chown", "hacluster:haclient", CIB])
    run.run(["chmod", "0600", CIB])


def each(hosts: list[Host], fn: Callable[[Host], object]) -> list:
    """fn on every host at once (each host's steps stay in order); the first error is raised
    after all have finished, so the undo that follows sees every host's record."""
    results: list = [None] * len(hosts)
    errors: list[BaseException] = []

    def one(i: int, h: Host) -> None:
        try:
            results[i] = fn(h)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, h)) for i, h in enumerate(hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def teardown(rec: store.ClusterRecord, inv: Inventory, hosts: list[Host] | None = None) -> list[str]:
    """Tear down what create made, host by host (create on failure, destroy always);
    best effort, every step tried."""
    problems = []
    hosts = hosts or [inv.get(n) for n in rec.hosts]
    for h in hosts:
        r = rec.restore.get(h.name, store.HostRestore())
        run = runner_for(h, 120)
        # The steps run within this iteration; default arguments bind this host's values anyway.
        steps: list[tuple[str, Callable[[], object]]] = [
            # Local destroy on each host: stops corosync/pacemaker there and removes the cluster's files.
            ("pcs cluster destroy", lambda run=run: run.run(["pcs", "cluster", "destroy", "--force"], check=False)),
            ("pcs host deauth", lambda run=run: run.run(["pcs", "host", "deauth"], check=False)),
        ]
        if r.pcsd_started:
            steps.append(("stop pcsd", lambda run=run: run.run(["systemctl", "stop", "pcsd"], check=False)))
        if r.corosync_conf_moved:
            steps.append(("restore corosync.conf", lambda run=run: run.run(["mv", SET_ASIDE, COROSYNC_CONF])))
        if r.shadow_field is not None:
            steps.append(("restore hacluster password",
                          # chpasswd -e on stdin: `usermod -p HASH` would show the hash in argv.
                          lambda run=run, r=r: run.run(["chpasswd", "-e"], input=f"hacluster:{r.shadow_field}\n")))
        if r.firewall:
            steps.append(("close cluster ports", lambda h=h, r=r: firewall.close_ports(h, r.firewall)))
        for what, step in steps:
            try:
                step()
            except (VpdError, OSError) as exc:
                problems.append(f"{h.name}: {what}: {exc}")
    return problems
