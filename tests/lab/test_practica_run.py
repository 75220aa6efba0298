"""`vpd practica run 4` on the session's lab: each step shows the seed's hand commands and what
vpd did as hand commands (from its recorded calls), the grader validates, the seed's questions are
answered from the migration's own figures, and `vpd practica report 4` writes the report from
the journal. Everything it made is undone afterwards (other tests expect the lab as it came up)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from vpd.connect import inventory as inv
from vpd.connect.libvirt_conn import open_connection
from vpd.lab import control, hostproc

from .cluster_helpers import cluster_processes, running_on
from .conftest import vpd

pytestmark = pytest.mark.lab

VM = "mvp4_run"


def _prepared_rules(host: str) -> list[str]:
    """The vpd-prepare rules of a lab host's firewall, without their handles."""
    listing = hostproc.run_in_host(control.load_state().host(host).holder_pid, ["nft", "list", "ruleset"]).stdout
    return sorted(re.sub(r"\s+# handle \d+", "", line).strip() for line in listing.splitlines()
                  if "vpd-prepare" in line)


@pytest.fixture
def run_cleanup(lab):
    yield
    for host in ("hostb", "hosta"):
        vpd("vm", "destroy", VM, "--host", host, timeout=60)
        vpd("vm", "undefine", VM, "--host", host, "--remove-storage", timeout=60)
    vpd("host", "unprepare", "hosta", "hostb", timeout=120)


def test_practica_run_4_performs_explains_validates_and_reports(lab, run_cleanup):
    proc = vpd("practica", "run", "4", "--hosts", "hosta,hostb", "--vm", VM, "--lang", "en", "--json", timeout=600)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert all(s["ok"] for s in report["steps"]), report["steps"]
    # What the learner types (the seed's), and what vpd did, as hand commands from its recorded calls.
    prepare = next(s for s in report["steps"] if s["vpd"].startswith("vpd host prepare"))
    assert "sudo firewall-cmd --add-port=49152-49216/tcp --permanent" in prepare["hand"]
    assert any("nft insert rule inet vpd_lab_host input ip saddr" in d and d.startswith("ssh ") for d in prepare["did"])
    assert not any("python3 -c" in d for d in prepare["did"])  # the reach probes only read
    migrate = next(s for s in report["steps"] if s["vpd"].startswith("vpd migrate"))
    [virsh] = [d for d in migrate["did"] if d.startswith("virsh ")]
    assert " migrate --live " in virsh and "--persistent --undefinesource" in virsh and VM in virsh
    assert not any("PRIVATE KEY" in d and "-----END" in d for d in migrate["did"])  # the grant's key is not shown
    create = next(s for s in report["steps"] if s["vpd"].startswith("vpd vm create"))
    assert any(d.startswith("virsh -c qemu+tcp://") and " define /dev/stdin <<'EOF'\n<domain" in d
               for d in create["did"])
    # The validation is the grader's: every goal met (the lab's firewall opens libvirt to its
    # own network only, so the world check holds too) and exit 0.
    goals = {g["id"]: g for g in report["validation"]["goals"]}
    for gid in ("fqdn", "shared-storage", "migrated", "key-revoked", "disk-readable", "firewall"):
        assert goals[gid]["ok"], goals[gid]
    assert report["ok"] and proc.returncode == 0
    # The seed's questions, answered with the migration's own figures.
    measured = report["measured"]["migration"]
    assert measured["mode"] == "live" and measured["downtime_ms"] is not None
    answers = {q["question"]: q["answer"] for q in report["questions"]}
    assert answers["How long was the VM stopped during the live migration?"] == f"{measured['downtime_ms']} ms"
    assert answers["Does the VM run on the destination, persistent, and is it gone from the source?"] == "yes"

    # Replay: `host prepare`'s printed commands, pasted into a shell once vpd's rules are gone,
    # give each host the same vpd-tagged rules.
    made = {h: _prepared_rules(h) for h in ("hosta", "hostb")}
    assert all(made.values()), made
    assert vpd("host", "unprepare", "hosta", "hostb", timeout=120).returncode == 0
    assert not any(_prepared_rules(h) for h in ("hosta", "hostb"))
    for command in prepare["did"]:
        subprocess.run(["bash", "-c", command], check=True, capture_output=True, timeout=60)
    assert {h: _prepared_rules(h) for h in ("hosta", "hostb")} == made

    md = vpd("practica", "report", "4", "--lang", "es", timeout=60)
    assert md.returncode == 0, md.stderr
    for heading in ("## Preparación", "## Migración", "## Pruebas y validación", "## Conclusiones"):
        assert heading in md.stdout
    assert virsh in md.stdout and f"{measured['downtime_ms']} ms" in md.stdout


@pytest.fixture
def p6_cleanup(lab):
    yield
    vpd("pool", "delete", "iscsi1", "--host", "hostb", timeout=60)
    vpd("iscsi", "target", "delete", "--host", "hosta", "--iqn", "iqn.2024-01.es.vpd:p6", timeout=60)
    vpd("vol", "delete", "CONT_VOL_COMP", "p6-lun.raw", "--host", "hosta", timeout=60)


def test_practica_run_6_on_the_lab(lab, p6_cleanup):
    # An iSCSI target on hosta, its LUN seen by hostb through an iscsi-direct pool; the run's
    # validation is `vpd practica check 6`'s grader.
    proc = vpd("practica", "run", "6", "--hosts", "hosta,hostb", "--lang", "en", "--json", timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["validation"]["ok"] and all(s["ok"] for s in report["steps"])
    target = next(s for s in report["steps"] if s["vpd"].startswith("vpd iscsi target create"))
    assert target["hand"][0] == "targetcli"
    assert any("tgtadm --lld iscsi --op new --mode target" in d or "targetcli" in d for d in target["did"])
    assert not any("--op show" in d for d in target["did"])  # reads are left out
    assert report["questions"][1]["answer"].startswith("iSCSI pool iscsi1 on hostb logged in, with LUNs: ")


def _run_on_hosta(number: int) -> dict:
    """`vpd practica run N` of a one-host Práctica on hosta: exit 0, every step done, every
    graded goal met (the run's validation is `vpd practica check N`'s grader)."""
    proc = vpd("practica", "run", str(number), "--hosts", "hosta", "--lang", "en", "--json", timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["src"] == "hosta" and report["ok"]
    assert report["steps"] and all(s["ok"] for s in report["steps"]), report["steps"]
    assert report["validation"]["ok"] and all(g["ok"] for g in report["validation"]["goals"])
    return report


def _answers(report: dict) -> list[str]:
    return [q["answer"] for q in report["questions"]]


def _hosta_objects() -> tuple[list[str], list[str], list[str]]:
    """hosta's domains, volumes of the shared pool and networks, as its libvirt lists them."""
    conn = open_connection(inv.resolve().get("hosta"))
    try:
        pool = conn.storagePoolLookupByName("CONT_VOL_COMP")
        pool.refresh(0)
        return (sorted(d.name() for d in conn.listAllDomains()), sorted(pool.listVolumes()),
                sorted(n.name() for n in conn.listAllNetworks()))
    finally:
        conn.close()


@pytest.fixture
def p2_cleanup(lab):
    before = _hosta_objects()
    yield
    for name in ("clon_virt_clone", "mvp1"):
        vpd("vm", "undefine", name, "--host", "hosta", "--remove-storage", timeout=60)
    assert _hosta_objects() == before


def test_practica_run_2_on_the_lab(lab, p2_cleanup):
    # The seed's mvp1 made in the lab's shared pool, cloned with its own identity, snapshotted.
    report = _run_on_hosta(2)
    assert {"clone", "templates-snapshots"} <= {g["id"] for g in report["validation"]["goals"]}
    clone = next(s for s in report["steps"] if s["vpd"].startswith("vpd vm clone"))
    assert clone["hand"], clone  # the seed's own commands for the goal
    assert any(d.startswith("virsh ") for d in clone["did"]), clone["did"]
    own, snapshot = _answers(report)
    assert "clon_virt_clone" in own and "t0" in snapshot, (own, snapshot)


@pytest.fixture
def p3_cleanup(lab):
    before = _hosta_objects()
    yield
    vpd("vm", "undefine", "mvp3", "--host", "hosta", "--remove-storage", timeout=60)
    vpd("vol", "delete", "CONT_VOL_COMP", "Vol1_p3.img", "--host", "hosta", timeout=60)
    assert _hosta_objects() == before


def test_practica_run_3_on_the_lab(lab, p3_cleanup):
    # A raw volume in the lab's shared pool (the seed's default pool is not on the lab), attached
    # to the seed's mvp3 in its persistent definition.
    report = _run_on_hosta(3)
    assert {g["id"] for g in report["validation"]["goals"]} == {"volumes", "attach"}
    vol = next(s for s in report["steps"] if s["vpd"].startswith("vpd vol create"))
    assert vol["hand"][0].startswith("virsh vol-create-as")
    assert any("vol-create-as" in d or "qemu-img create" in d or "vol-create" in d for d in vol["did"]), vol["did"]
    attach = next(s for s in report["steps"] if s["vpd"].startswith("vpd vm disk attach"))
    assert any(d.startswith("virsh ") for d in attach["did"]), attach["did"]
    # The seed's questions, answered by what the grader read from libvirt.
    size, attached = _answers(report)
    assert size == "volume Vol1_p3.img in CONT_VOL_COMP: format raw, 64 MiB"
    assert attached == "mvp3 has CONT_VOL_COMP/Vol1_p3.img as a disk (persistent): as vdb"


@pytest.fixture
def p5_cleanup(lab):
    before = _hosta_objects()
    yield
    vpd("vm", "undefine", "mvp5", "--host", "hosta", "--remove-storage", timeout=60)
    for net in ("Cluster", "Almacenamiento"):
        vpd("net", "delete", net, "--host", "hosta", timeout=60)
    assert _hosta_objects() == before


def test_practica_run_5_on_the_lab(lab, p5_cleanup):
    # A NAT network and an isolated one (in the lab's 198.19.x range, not the seed's subnets) and a
    # NIC of mvp5 on each.
    report = _run_on_hosta(5)
    assert {g["id"] for g in report["validation"]["goals"]} == {"networks", "nics"}
    assert report["values"]["SUBNET1"].startswith("198.19.") and report["values"]["SUBNET2"].startswith("198.19.")
    nets = [s for s in report["steps"] if s["vpd"].startswith("vpd net create")]
    assert len(nets) == 2 and all(any("net-define" in d for d in s["did"]) for s in nets), [s["did"] for s in nets]
    networks, nics = _answers(report)
    for net, mode in (("Cluster", "nat"), ("Almacenamiento", "isolated")):
        assert (f"network {net} active: active; network {net} autostarts: autostart; "
                f"network {net} is {mode}: mode {mode}") in networks
    assert nics == ("mvp5 has a NIC on Cluster: NICs on: Cluster, Almacenamiento; "
                    "mvp5 has a NIC on Almacenamiento: NICs on: Cluster, Almacenamiento")


@pytest.fixture
def p7_cleanup(lab):
    before = _hosta_objects()
    yield
    # Whatever the run left: hosts powered, the cluster gone (its VMs given back to libvirt), the VM removed.
    for hs in control.load_state().hosts:
        if not hs.powered:
            vpd("lab", "host-up", hs.name, timeout=300)
    vpd("cluster", "destroy", "clustervpd", timeout=600)
    for host in ("hosta", "hostb"):
        vpd("vm", "destroy", "mvp7", "--host", host, timeout=60)
        vpd("vm", "undefine", "mvp7", "--host", host, "--remove-storage", timeout=60)
    # `ha enable` keeps the VM's definition in .vpd-ha next to its disk; `cluster destroy` removes
    # the file but not the directory. libvirt deletes a directory volume with rmdir: only if empty
    # (vpd's `vol delete` refuses a name with a leading dot).
    if ".vpd-ha" not in before[1]:
        conn = open_connection(inv.resolve().get("hosta"))
        try:
            pool = conn.storagePoolLookupByName("CONT_VOL_COMP")
            pool.refresh(0)
            if ".vpd-ha" in pool.listVolumes():
                pool.storageVolLookupByName(".vpd-ha").delete(0)
        finally:
            conn.close()
    assert _hosta_objects() == before
    assert not (cluster_processes("hosta") or cluster_processes("hostb"))


@pytest.mark.slow
def test_practica_run_7_on_the_lab(lab, p7_cleanup):
    # A two-host Pacemaker cluster fenced by the lab's power switch, the seed's mvp7 made a
    # VirtualDomain resource and moved to hostb through pacemaker (~1 min).
    proc = vpd("practica", "run", "7", "--hosts", "hosta,hostb", "--lang", "en", "--json", timeout=900)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["ok"] and all(s["ok"] for s in report["steps"]), report["steps"]
    goals = {g["id"]: g for g in report["validation"]["goals"]}
    assert set(goals) == {"cluster", "fencing", "ha-vm"} and all(g["ok"] for g in goals.values()), goals
    create = next(s for s in report["steps"] if s["vpd"].startswith("vpd cluster create"))
    assert any("pcs " in d for d in create["did"]), create["did"]
    quorum, where = _answers(report)
    assert quorum.startswith("cluster has quorum and a DC: quorate=True, DC ")
    assert "hosta online in the cluster: online=True, standby=False" in quorum
    assert "hostb online in the cluster: online=True, standby=False" in quorum
    # Moved to the destination, and the hosts' own libvirt agrees.
    assert where == "mvp7 is a running VirtualDomain resource: ocf:heartbeat:VirtualDomain Started on hostb"
    assert running_on("mvp7") == ["hostb"]
