"""`vpd cluster destroy|standby|unstandby|start`: what happens to a cluster and
its members after `create` (create.py)."""
from __future__ import annotations

from ..connect.inventory import Host, Inventory
from ..connect.ssh import runner_for
from ..core.errors import UsageError, VpdError
from ..core.names import check_name
from . import firewall, ha, pcs, store
from . import status as st
from .create import teardown


def destroy(inv: Inventory, name: str, timeout: float = 180.0) -> dict:
    """Disable every resource, wait until they stopped, then tear the cluster down
    and put each host back as create found it. VMs made highly available are
    defined again (stopped) on the host where they ran."""
    rec = store.load(name)
    given_back: list[str] = []
    try:
        host, s = pcs.online_member(rec, inv)
    except VpdError:
        host, s = None, None  # no member answers: nothing runs to disable
    if host and s:
        given_back = ha.release_all(rec, inv, host, s, timeout)
    problems = teardown(rec, inv)
    store.remove(name)
    return {"cluster": name, "hosts": rec.hosts, "vms_given_back": given_back, "problems": problems}


def _member(rec: store.ClusterRecord, inv: Inventory, host_name: str) -> Host:
    check_name(host_name, "host name")
    if host_name not in rec.hosts:
        raise UsageError(f"{host_name} is not a member of cluster {rec.name}", hint="members: " + ", ".join(rec.hosts))
    return inv.get(host_name)


def standby(inv: Inventory, host_name: str, on: bool, timeout: float = 180.0) -> dict:
    """Drain a member (its resources live-migrate away) or take it back."""
    cluster = store.cluster_of(check_name(host_name, "host name"))
    if not cluster:
        raise UsageError(f"{host_name} is in no cluster vpd made")
    rec = store.load(cluster)
    _member(rec, inv, host_name)
    member, _ = pcs.online_member(rec, inv)
    pcs.run(member, "node", "standby" if on else "unstandby", host_name)

    def drained(s: st.ClusterStatus) -> bool:
        m = s.member(host_name)
        ok = m is not None and m.standby == on
        if on:
            ok = ok and not any(host_name in r.running_on for r in s.resources if not r.agent.startswith("stonith:"))
        return ok

    final = pcs.wait_for(rec, inv, drained, timeout, "drained" if on else "back from standby")
    return {"cluster": rec.name, "host": host_name, "standby": on,
            "resources": {r.id: r.running_on for r in final.resources}}


def start_member(inv: Inventory, host_name: str, timeout: float = 120.0) -> dict:
    """Start the cluster services on a member again (after a fence or a power cut):
    fenced lab hosts stay out until asked, as after a two-node fence they must."""
    cluster = store.cluster_of(check_name(host_name, "host name"))
    if not cluster:
        raise UsageError(f"{host_name} is in no cluster vpd made")
    rec = store.load(cluster)
    host = _member(rec, inv, host_name)
    # A reboot drops firewall rules that were never saved (plain nft): admit the members again.
    reopened = firewall.open_ports(host, [inv.get(n) for n in rec.hosts if n != host_name])
    if reopened:
        restore = rec.restore.setdefault(host_name, store.HostRestore())
        restore.firewall += [r for r in reopened if r not in restore.firewall]
        store.save(rec)
    runner_for(host, 90).run(["systemctl", "start", "pcsd"], timeout=90)
    pcs.run(host, "cluster", "start", timeout=timeout)
    pcs.wait_for(rec, inv, lambda s: (m := s.member(host_name)) is not None and m.online, timeout,
                 f"{host_name} online")
    return {"cluster": rec.name, "host": host_name, "online": True}
