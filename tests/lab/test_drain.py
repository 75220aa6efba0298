"""`vpd host drain` and `vpd host maintenance` on the three-host lab (`lab3`): hosta's four guests
drained at once onto hostb and hostc - the two of anti-affinity group `web` onto different hosts,
the third shared one wherever placement puts it, each validated, their migrations overlapping in
time - while the one whose disk is on hosta's own storage (a pool at the same path on every host,
so placement cannot tell) is refused by the preflight's token proof and reported, still running
on hosta. A drain ended by SIGTERM first leaves every guest on exactly one host. Maintenance then
keeps vpd from placing anything on hosta, and `host check security`
reports the lab's hosts as they are (no sVirt, libvirt on TCP without auth, to the lab only)."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import libvirt
import pytest
from lxml import etree

from vpd.core.errors import EXIT_TERMINATED
from vpd.xml.pool import dir_pool

from .conftest import VPD, vpd, vpd_json
from .migration_helpers import (
    SHARED_POOL,
    connect,
    migration_ports_open,
    open_grants,
    where,
)

pytestmark = pytest.mark.lab

HOSTS = ("hosta", "hostb", "hostc")
WEB = ("drw1", "drw2")  # anti-affinity group web
OTHER = "drn1"
LOCAL = "drnl"
LOCAL_POOL = "drainlocal"
LOCAL_DIR = "/var/lib/libvirt/images/drainlocal"  # under each host's own /var/lib/libvirt
MOVING = (*WEB, OTHER)


def remove_domains(conn: libvirt.virConnect, names: tuple[str, ...]) -> None:
    """Each of these domains on that host, gone with its disk volumes."""
    for name in names:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            continue
        disks = etree.fromstring(dom.XMLDesc(0).encode()).xpath("devices/disk[@device='disk']/source/@file")
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        for path in disks:
            try:
                conn.storageVolLookupByPath(path).delete(0)
            except libvirt.libvirtError:
                pass  # already gone with another host's copy of the domain (shared pool)


@pytest.fixture(scope="module")
def guests(lab3):
    pools = []
    started = time.monotonic()
    try:
        for host in HOSTS:
            pool = connect(host).storagePoolDefineXML(dir_pool(LOCAL_POOL, LOCAL_DIR).to_xml_string())
            pool.build(0)
            pool.create(0)
            pools.append(pool)
        wanted = [(WEB[0], SHARED_POOL), (WEB[1], SHARED_POOL), (OTHER, SHARED_POOL), (LOCAL, LOCAL_POOL)]
        # Made one by one (libvirt refuses a volume in a pool that is still building another:
        # "has asynchronous jobs running"), then booted at once: about one TCG boot's time.
        for name, pool_name in wanted:
            vpd_json("vm", "create", name, "--host", "hosta", "--lab-guest", "--memory", "96",
                     "--disk", f"size=16M,pool={pool_name}")
        with ThreadPoolExecutor(len(wanted)) as boot:
            list(boot.map(lambda w: vpd_json("vm", "start", w[0], "--host", "hosta", "--wait-boot"), wanted))
        for name in WEB:
            vpd_json("vm", "tag", name, "--anti-affinity", "web")
        print(f"\nfour guests made and booted in {time.monotonic() - started:.1f} s")
        yield
    finally:
        vpd("host", "maintenance", "off", "hosta")
        for host in HOSTS:  # through libvirt: 24 `vpd vm destroy|undefine` runs took ~50 s under load
            remove_domains(connect(host), (*MOVING, LOCAL))
        for pool in pools:
            pool.refresh(0)
            for vol in pool.listAllVolumes(0):
                vol.delete(0)
            pool.destroy()
            pool.undefine()


def _sending(conn: libvirt.virConnect, name: str) -> bool:
    """Whether a migration job of `name` runs there and has sent bytes."""
    try:
        stats = conn.lookupByName(name).jobStats(0)
    except libvirt.libvirtError:
        return False
    return stats.get("type", 0) != libvirt.VIR_DOMAIN_JOB_NONE and stats.get("data_processed", 0) > 0


def test_a_terminated_drain_leaves_each_guest_on_exactly_one_host(guests):
    """SIGTERM while two migrations may run: the main thread aborts the running jobs, starts no
    other, revokes its grants and reports where each guest is."""
    source = connect("hosta")
    with ExitStack() as ports:
        for dst in ("hostb", "hostc"):
            ports.enter_context(migration_ports_open("hosta", dst))
        proc = subprocess.Popen([*VPD, "host", "drain", "hosta", "--parallel", "2", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while not any(_sending(source, n) for n in MOVING):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no migration job began"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_TERMINATED, out + err
    report = json.loads(out)
    assert report["error"] == "terminated" and report["parallel"] == 2
    results = {r["vm"]: r for r in report["results"]}
    assert set(results) == {*MOVING, LOCAL}
    assert any(r["stage"] == "interrupted" for r in results.values()), results
    for r in results.values():
        expected = {r["destination"]: "running"} if r["moved"] else {"hosta": "running"}
        assert r["on"] == expected, r
    assert open_grants() == []
    for r in results.values():  # back where the next test expects them
        if r["moved"]:
            vpd_json("migrate", r["vm"], "--to", "hosta", "--persistent", "--undefinesource")


def test_parallel_drain_spreads_the_group_and_reports_the_refused_guest(guests):
    plan = vpd_json("host", "drain", "hosta", "--dry-run")
    placed = {p["vm"]: p["host"] for p in plan["plan"]["placements"]}
    assert set(placed) == {*MOVING, LOCAL} and set(placed.values()) <= {"hostb", "hostc"}
    assert placed[WEB[0]] != placed[WEB[1]], placed  # anti-affinity: one of group web per host
    # idle guests, a 1 Gbit/s link, 2 CPUs: every move at once (bound by VMs or CPUs, not the link)
    assert plan["parallel"] == 4 and "bound by link" not in plan["parallel_reason"], plan["parallel_reason"]

    with ExitStack() as ports:
        for dst in ("hostb", "hostc"):
            ports.enter_context(migration_ports_open("hosta", dst))
        proc = vpd("host", "drain", "hosta", "--json", timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    results = {r["vm"]: r for r in report["results"]}
    print(f"\ndrain: {report['seconds']} s, {report['parallel']} at once; " +
          ", ".join(f"{r['vm']} -> {r['destination']} {r['stage']} {r['seconds']} s ({r['downtime_ms']} ms)"
                    for r in report["results"]))
    assert sorted(report["moved"]) == sorted(MOVING) and report["not_moved"] == [LOCAL]
    for name in MOVING:
        r = results[name]
        validation = {c["name"] for c in r["report"]["validation"] if c["ok"]}
        assert {"running on destination", "not running on source", "guest did not reboot",
                "disk readable and unchanged"} <= validation, r
        assert r["on"] == {r["destination"]: "running"}, r
    # placed again when it ran (free memory on a shared machine moves): the group still spread
    assert results[WEB[0]]["destination"] != results[WEB[1]]["destination"]
    listed = vpd_json("vm", "list", "--all")["hosts"]  # one look at the three hosts, as a user would
    found = {v["name"]: (h["host"], v["state"]) for h in listed for v in h["vms"] if v["name"] in results}
    assert found == {**{n: (results[n]["destination"], "running") for n in MOVING}, LOCAL: ("hosta", "running")}
    # the migrations really ran at once: the last to begin began before the first to end ended
    moving = [results[n] for n in MOVING]
    assert max(r["started_at"] for r in moving) < min(r["ended_at"] for r in moving), moving

    refused = results[LOCAL]
    assert refused["stage"] == "preflight" and refused["on"] == {"hosta": "running"}
    assert [c["name"] for c in refused["report"]["preflight"] if not c["ok"] and c["blocking"]] == \
        ["shared storage (token proof)"]
    assert open_grants() == []  # one grant per destination, both revoked


def test_maintenance_on_blocks_placement_there(guests):
    # hosta still runs the guest whose disk is its own: the drain fails, the host stays marked.
    proc = vpd("host", "maintenance", "on", "hosta", "--json", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["maintenance"] and report["drain"]["not_moved"] == [LOCAL]
    assert "hosta" in vpd_json("host", "maintenance-list")

    created = vpd("vm", "create", "drnx", "--host", "hosta", "--lab-guest")
    assert created.returncode == 2 and "hosta is in maintenance" in created.stderr
    back = vpd("migrate", OTHER, "--to", "hosta", "--dry-run")
    assert back.returncode == 2 and "hosta is in maintenance" in back.stderr
    auto = vpd_json("host", "drain", "hostb", "--dry-run", "--parallel", "1")  # placement only
    assert all(p["refusals"].get("hosta") == "in maintenance" for p in auto["plan"]["placements"]), auto
    found = where(OTHER)
    assert list(found.values()) == ["running"] and "hosta" not in found, found

    vpd_json("host", "maintenance", "off", "hosta")
    assert vpd_json("host", "maintenance-list") == {}


def test_security_check_reports_the_lab_as_it_is(guests):
    """The lab's hosts run security_driver = "none" and libvirt on TCP without auth, its port
    open to the lab's network only: `host check security` must say exactly that, not pass it over."""
    report = vpd_json("host", "check", "security", "hosta")["hosts"][0]
    assert report["error"] is None
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["security driver"]["ok"] and "none" in checks["security driver"]["detail"]
    assert checks["security mode"]["detail"] == ("no confining driver in libvirt; the host has no SELinux, "
                                                 "no AppArmor")
    assert not checks[f"label {LOCAL}"]["ok"]  # the guest still there: no sVirt label to give it
    (image,) = [c for n, c in checks.items() if n.startswith("image ") and LOCAL in n]
    assert image["ok"] and image["detail"].startswith("600 ")  # its disk readable by root only
    assert not checks["libvirtd TCP"]["ok"] and "auth_tcp = none" in checks["libvirtd TCP"]["detail"]
    assert checks["exposure libvirt TCP 16509"]["ok"]  # peers only: the lab's rule names its network
    assert checks["exposure migration 49152-49216"]["ok"]  # the test's rules for the drain are gone
    info = vpd_json("vm", "info", LOCAL, "--host", "hosta")
    assert info["security"]["model"] == "none" and info["security"]["label"] is None
