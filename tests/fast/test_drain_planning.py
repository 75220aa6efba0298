"""Placement's facts read from libvirt (test-driver hosts of their own), anti-affinity tags, the
maintenance flag, and `vpd host drain --dry-run` / `vpd migrate --to auto --dry-run` planning
over three hosts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpd.core.errors import UsageError
from vpd.host import gather, maintenance
from vpd.ops import Session
from vpd.vm import operations as vm_ops

from .conftest import run_vpd

_SHUTOFF = "<test:runstate xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>5</test:runstate>"
_GROUP = "<metadata><vpd:anti-affinity xmlns:vpd='https://vpd.example/ns/anti-affinity' group='{}'/></metadata>"


def _domain(name: str, mem_mib: int, vcpus: int = 1, disk: str | None = None, running: bool = True,
            group: str | None = None) -> str:
    disk_xml = (f"<disk type='file' device='disk'><source file='{disk}'/><target dev='vda'/></disk>"
                if disk else "")
    return (f"<domain type='test'><name>{name}</name>{_GROUP.format(group) if group else ''}"
            f"<memory unit='MiB'>{mem_mib}</memory><vcpu>{vcpus}</vcpu><os><type>hvm</type></os>"
            f"<devices>{disk_xml}</devices>{'' if running else _SHUTOFF}</domain>")


def _node(path: Path, mem_mib: int, cpus: int, domains: list[str], pools: dict[str, str]) -> str:
    """A test-driver host of its own: memory, CPUs, domains and dir pools (name -> path)."""
    pools_xml = "".join(f"<pool type='dir'><name>{n}</name><target><path>{p}</path></target></pool>"
                        for n, p in pools.items())
    path.write_text(f"<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads>"
                    f"<active>{cpus}</active><mhz>2000</mhz><model>i686</model></cpu>"
                    f"<memory>{mem_mib * 1024}</memory>{''.join(domains)}{pools_xml}</node>")
    return f"test://{path}"


@pytest.fixture
def three_hosts(tmp_path: Path) -> Path:
    """hosta runs web1, web2 (anti-affinity web), db (1.5 GiB) and local (disk on hosta's own
    pool), has `cold` shut off; hostb has 2 GiB and runs `other` (group web); hostc has 4 GiB but
    no pool for /local."""
    a = _node(tmp_path / "a.xml", 8192, 4, [
        _domain("web1", 512, disk="/shared/web1.qcow2", group="web"),
        _domain("web2", 512, disk="/shared/web2.qcow2", group="web"),
        _domain("db", 1536, 2, disk="/shared/db.qcow2"),
        _domain("local", 256, disk="/local/local.qcow2"),
        _domain("cold", 256, disk="/shared/cold.qcow2", running=False),
    ], {"shared": "/shared", "local": "/local"})
    b = _node(tmp_path / "b.xml", 2560, 2, [_domain("other", 512, disk="/shared/other.qcow2", group="web")],
              {"shared": "/shared/", "local": "/local"})
    c = _node(tmp_path / "c.xml", 4096, 4, [], {"shared": "/shared"})
    inv = tmp_path / "inventory.toml"
    inv.write_text("".join(f'[[hosts]]\nname = "{n}"\nuri = "{u}"\n\n' for n, u in
                           (("hosta", a), ("hostb", b), ("hostc", c))))
    return inv


def test_facts_read_from_libvirt(three_hosts):
    with Session(three_hosts) as s:
        facts = gather.gather(s, s.hosts())
    a, a_guests = facts["hosta"]
    b, _ = facts["hostb"]
    # the test driver reports no free memory: total less the running guests'
    assert (a.memory_free_mib, a.cpus, a.vcpus_committed) == (8192 - 512 - 512 - 1536 - 256, 4, 5)
    assert a.storage == frozenset({"/shared", "/local"}) and b.storage == frozenset({"/shared", "/local"})
    assert a.groups == ("web", "web") and b.groups == ("web",) and not a.maintenance
    by_name = {g.name: g for g in a_guests}
    assert by_name["web1"].anti_affinity == "web" and by_name["db"].anti_affinity is None
    assert by_name["db"].disks == ("/shared/db.qcow2",) and by_name["db"].vcpus == 2
    assert by_name["db"].memory_mib == 1536 and not by_name["cold"].running


def test_drain_plan_spreads_the_group_and_refuses_what_fits_nowhere(three_hosts):
    with Session(three_hosts) as s:
        plan, guests = gather.plan_drain(s, "hosta")
    assert set(guests) == {"web1", "web2", "db", "local"}  # running ones only
    where = {p.vm: p.host for p in plan.placements}
    # db (1.5 GiB) goes first, to the host with most free memory (hostc); web1 to hostc too, as
    # hostb already runs `other` of group web; then both have one of the group and web2 takes the
    # most free memory (hostb); local fits only where /local is.
    assert where == {"db": "hostc", "web1": "hostc", "web2": "hostb", "local": "hostb"}
    refusals = {p.vm: p.refusals for p in plan.placements}
    assert refusals["local"]["hostc"] == "no storage for /local"


def test_drain_plan_with_stopped_guests_and_named_targets(three_hosts):
    with Session(three_hosts) as s:
        plan, guests = gather.plan_drain(s, "hosta", to=["hostb"], include_stopped=True)
        assert "cold" in guests
        assert {p.host for p in plan.moves} == {"hostb"}
        # hostb: 2560 - 512 = 2048 MiB free, 2 CPUs x 4 = 8 vCPUs: db (1536+64) fits, then not everything
        assert plan.refused
        with pytest.raises(UsageError, match="the host the VMs leave"):
            gather.plan_drain(s, "hosta", to=["hosta"])


def test_maintenance_flag_is_skipped_by_placement_and_refuses_vm_create(three_hosts):
    maintenance.mark("hostc", "test")
    try:
        with Session(three_hosts) as s:
            plan, _ = gather.plan_drain(s, "hosta")
            assert "hostc" not in {p.host for p in plan.moves}
            assert all(p.refusals.get("hostc") == "in maintenance" for p in plan.placements)
            with pytest.raises(UsageError, match="hostc is in maintenance"):
                vm_ops.create(s, "newvm", "hostc", request=None)
    finally:
        assert maintenance.clear("hostc")
    assert not maintenance.clear("hostc")


def test_tag_sets_and_clears_the_anti_affinity_group(three_hosts):
    with Session(three_hosts) as s:
        result = vm_ops.tag(s, "db", None, "dbs")
        assert result == {"host": "hosta", "vm": "db", "anti_affinity": "dbs", "was": None}
        facts = gather.gather(s, [s.host("hosta")])
        assert {g.name: g.anti_affinity for g in facts["hosta"][1]}["db"] == "dbs"
        assert vm_ops.tag(s, "db", None, None)["was"] == "dbs"
        with pytest.raises(UsageError):
            vm_ops.tag(s, "db", None, "bad group!")
def test_cli_drain_dry_run_prints_the_plan(three_hosts):
    proc = run_vpd("host", "drain", "hosta", "--dry-run", inventory=three_hosts, check_rc=0)
    assert "local" in proc.stdout and "hostb" in proc.stdout and "dry run" in proc.stdout
    data = json.loads(run_vpd("host", "drain", "hosta", "--dry-run", "--json", inventory=three_hosts,
                              check_rc=0).stdout)
    assert data["dry_run"] and data["host"] == "hosta"
    assert {p["vm"]: p["host"] for p in data["plan"]["placements"]}["local"] == "hostb"
    assert data["moved"] == [] and data["results"] == []


def test_cli_drain_usage_errors(three_hosts):
    proc = run_vpd("host", "drain", "hosta", "--to", "hosta", "--dry-run", inventory=three_hosts)
    assert proc.returncode == 2 and "the host the VMs leave" in proc.stderr
    proc = run_vpd("host", "drain", "nosuch", "--dry-run", inventory=three_hosts)
    assert proc.returncode == 2


def test_migrate_to_auto_uses_the_same_placement(three_hosts):
    from vpd.core.errors import VpdError
    from vpd.migration.operations import _placed

    with Session(three_hosts) as s:
        assert _placed(s, "local", s.host("hosta")) == "hostb"  # the only other host with /local
        assert s.notices[-1].startswith("local placed on hostb: ")
        maintenance.mark("hostb")
        try:
            with pytest.raises(VpdError, match="no host can take local: .*hostb: in maintenance"):
                _placed(s, "local", s.host("hosta"))
            proc = run_vpd("migrate", "db", "--to", "hostb", inventory=three_hosts)
            assert proc.returncode == 2 and "hostb is in maintenance" in proc.stderr
        finally:
            maintenance.clear("hostb")


def test_cli_tag_and_maintenance_list(three_hosts):
    proc = run_vpd("vm", "tag", "db", inventory=three_hosts)
    assert proc.returncode == 2 and "--anti-affinity" in proc.stderr
    assert "anti-affinity group dbs" in run_vpd("vm", "tag", "db", "--anti-affinity", "dbs", inventory=three_hosts,
                                                 check_rc=0).stdout
    assert json.loads(run_vpd("host", "maintenance-list", "--json", inventory=three_hosts, check_rc=0).stdout) == {}


def test_cli_maintenance_on_marks_drains_and_off_clears(three_hosts):
    on = json.loads(run_vpd("host", "maintenance", "on", "hostc", "--json", inventory=three_hosts,
                            check_rc=0).stdout)
    assert on["maintenance"] and on["cluster"] is None and on["drain"]["results"] == []  # hostc runs nothing
    assert "hostc" in json.loads(run_vpd("host", "maintenance-list", "--json", inventory=three_hosts).stdout)
    proc = run_vpd("host", "drain", "hosta", "--dry-run", "--json", inventory=three_hosts, check_rc=0)
    assert "hostc" not in {p["host"] for p in json.loads(proc.stdout)["plan"]["placements"]}
    off = run_vpd("host", "maintenance", "off", "hostc", inventory=three_hosts, check_rc=0)
    assert "hostc: back in service" in off.stdout
    assert not maintenance.is_marked("hostc")


def test_dry_run_says_how_many_migrations_would_run_at_once(three_hosts):
    from vpd.migration.drain import drain

    with Session(three_hosts) as s:
        asked = drain(s, "hosta", parallel=3, dry_run=True)
        assert (asked.parallel, asked.results) == (3, [])
        assert asked.parallel_reason == "3 at once, as asked (--parallel 3)"
        # the test driver cannot sample dirty pages: an unknown rate means one at a time
        auto = drain(s, "hosta", dry_run=True)
        assert auto.parallel == 1 and "unknown" in auto.parallel_reason
        assert set(auto.dirty_mib_s) == {"web1", "web2", "db", "local"}
        assert drain(s, "hosta", parallel=16, dry_run=True).parallel == 4  # no more than VMs to move


def test_a_vm_found_on_two_hosts_or_not_where_reported_is_not_moved(three_hosts):
    from vpd.migration.drain import VmOutcome, _settle

    with Session(three_hosts) as s:
        stayed = VmOutcome("web1", "hostb", True, "moved")
        _settle(s, "hosta", stayed)  # web1 still runs on hosta only
        assert (stayed.moved, stayed.stage, stayed.on) == (False, "validation", {"hosta": "running"})
        assert stayed.error == "reported moved but found only on hosta"

        refused = VmOutcome("local", "hostc", False, "preflight", "preflight failed")
        _settle(s, "hosta", refused)
        assert (refused.stage, refused.on) == ("preflight", {"hosta": "running"})

        s.connection(s.host("hostb")).defineXML(
            "<domain type='test'><name>db</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>")
        twice = VmOutcome("db", "hostb", True, "moved")
        _settle(s, "hosta", twice)
        assert not twice.moved and twice.stage == "split"
        assert twice.error == "found on hosta (running) and hostb (defined)"

        gone = VmOutcome("nosuch", "hostc", False, "migration", "migration failed")
        _settle(s, "hosta", gone)
        assert gone.stage == "split" and gone.error.endswith("found on none of hosta, hostc")
