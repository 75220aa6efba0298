"""Práctica 6 on the lab: the seed's iSCSI scenario with real guests.

hosta runs the target (userspace tgt: the lab kernel has no LIO) exporting a raw volume to two
initiators with CHAP. A guest on hostb writes data to the LUN through an iscsi-direct pool;
once it is stopped, a second guest -- on hosta, through its own iscsi-direct pool logging in
as another admitted initiator (the session lab has 2 hosts) -- reads the same data. A wrong
CHAP secret or an initiator outside the ACL is refused clearly, leaving no pool behind."""
from __future__ import annotations

import json

import pytest

from vpd.hostprep.firewall import probe_ports
from vpd.lab import control, hostproc

from .conftest import started_argvs, vpd, vpd_json, vpd_traced
from .test_storage import channel

pytestmark = pytest.mark.lab

IQN = "iqn.2024-01.org.vpd:san1"
READER = "iqn.2024-01.org.vpd:reader"
SECRET = "vpdsecret1234"


def nft_rules(host: str) -> str:
    holder = control.load_state().host(host).holder_pid
    return hostproc.run_in_host(holder, ["nft", "list", "ruleset"]).stdout


@pytest.fixture
def san(lab, tmp_path):
    secret = tmp_path / "chap"
    secret.write_text(SECRET + "\n")
    wrong = tmp_path / "wrong"
    wrong.write_text("notthesecret1\n")
    vpd_json("pool", "create", "st-san", "--host", "hosta", "--type", "dir", "--path", "/var/lib/libvirt/images/st-san")
    vpd_json("vol", "create", "st-san", "lun.raw", "--host", "hosta", "--size", "16M", "--format", "raw")
    try:
        yield secret, wrong
    finally:
        for vm, host in (("iw", "hostb"), ("ir", "hosta")):
            vpd("vm", "destroy", vm, "--host", host)
            vpd("vm", "undefine", vm, "--host", host)
        vpd("pool", "delete", "st-isc", "--host", "hostb")
        vpd("pool", "delete", "st-isc", "--host", "hosta")
        vpd("iscsi", "target", "delete", "--host", "hosta", "--iqn", IQN)
        vpd("pool", "delete", "st-san", "--host", "hosta", "--wipe", "--yes")


def initiator_pool(host: str, secret_file, *extra: str):
    return vpd("pool", "create", "st-isc", "--host", host, "--type", "iscsi-direct", "--portal",
               control.load_state().host("hosta").address, "--target", IQN, "--chap", "vpduser",
               "--chap-secret-file", str(secret_file), *extra, "--json")


def test_iscsi_seed_scenario(san, lab_inventory, conns):
    secret, wrong = san
    # Bad input first: nothing is made.
    bad = vpd("iscsi", "target", "create", "--host", "hosta", "--iqn", "iqn.bad name", "--vol", "st-san/lun.raw",
              "--allow", "hostb")
    assert bad.returncode == 2 and "invalid target IQN" in bad.stderr
    assert vpd("iscsi", "target", "create", "--host", "hosta", "--iqn", IQN, "--vol", "st-san/lun.raw",
               "--allow", "iqn.2024-01.org.other:x").returncode == 2  # which host? the firewall must know

    # Before the target exists, the portal is closed by hosta's firewall: found in seconds, nothing defined.
    closed = initiator_pool("hostb", secret)
    assert closed.returncode == 1 and "filtered" in json.loads(closed.stdout)["error"], closed.stdout

    # Traced: the secret is in the argv of no process vpd starts (the local ssh command line
    # would show it to every local user), only on stdin.
    made_proc, trace = vpd_traced("iscsi", "target", "create", "--host", "hosta", "--iqn", IQN, "--vol",
                                  "st-san/lun.raw", "--allow", "hostb", "--allow", f"hosta={READER}", "--chap",
                                  "vpduser", "--chap-secret-file", str(secret), "--json")
    assert made_proc.returncode == 0, made_proc.stderr
    made = json.loads(made_proc.stdout)
    assert any("tgtadm" in line for line in started_argvs(trace))
    assert not [line for line in started_argvs(trace) if SECRET in line]
    assert made["changed"] and made["backend"] == "tgt" and made["lun"] == 1
    again = vpd_json("iscsi", "target", "create", "--host", "hosta", "--iqn", IQN, "--vol", "st-san/lun.raw",
                     "--allow", "hostb", "--allow", f"hosta={READER}", "--chap", "vpduser",
                     "--chap-secret-file", str(secret))
    assert again["changed"] is False
    hostb_address = lab_inventory.get("hostb").address
    rules = nft_rules("hosta")
    assert f"ip saddr {hostb_address} tcp dport 3260 accept" in rules  # hostb only, not the world
    assert "tcp dport 3260 accept" not in rules.replace(f"ip saddr {hostb_address} tcp dport 3260 accept", "")
    assert probe_ports(lab_inventory.get("hostb"), lab_inventory.get("hosta").address, [3260])[3260] == "open"

    listing = vpd("iscsi", "target", "list", "--json")
    assert SECRET not in listing.stdout
    [target] = json.loads(listing.stdout)["hosts"][0]["targets"]
    assert sorted(target["acl"]) == sorted(["iqn.2024-01.org.vpd:hostb", READER])
    assert target["chap_users"] == ["vpduser"] and target["luns"]["1"].endswith("/lun.raw")

    # Wrong CHAP secret, then an initiator outside the ACL: clear errors, no pool left.
    refused = initiator_pool("hostb", wrong)
    assert refused.returncode == 1 and "CHAP" in json.loads(refused.stdout)["error"]
    outsider = initiator_pool("hostb", secret, "--initiator", "iqn.2024-01.org.vpd:intruder")
    assert outsider.returncode == 1 and "does not admit" in json.loads(outsider.stdout)["error"]
    pools_b = vpd_json("pool", "list", "--all", "--host", "hostb")["hosts"][0]["pools"]
    assert "st-isc" not in {p["name"] for p in pools_b}

    # hostb: the writer.
    writer_pool, trace = vpd_traced("pool", "create", "st-isc", "--host", "hostb", "--type", "iscsi-direct",
                                    "--portal", control.load_state().host("hosta").address, "--target", IQN,
                                    "--chap", "vpduser", "--chap-secret-file", str(secret), "--json")
    assert writer_pool.returncode == 0, writer_pool.stderr
    assert started_argvs(trace) and not [line for line in started_argvs(trace) if SECRET in line]
    assert SECRET not in writer_pool.stdout
    luns = {v["name"]: v for v in vpd_json("vol", "list", "st-isc", "--host", "hostb")["hosts"][0]["volumes"]}
    assert luns["unit:0:0:1"]["capacity"] > 15 * 1024**2
    vpd_json("vm", "create", "iw", "--host", "hostb", "--lab-guest")
    vpd_json("vm", "disk", "attach", "iw", "--host", "hostb", "--vol", "st-isc/unit:0:0:1", "--target", "vdb")
    vpd_json("vm", "start", "iw", "--host", "hostb", "--wait-boot")
    with channel(conns, lab_inventory, host="hostb", vm="iw") as ch:
        assert ch.disks().get("vda", 0) > 15 * 1024**2
        wrote = ch.run("dd if=/dev/urandom of=/tmp/d bs=1M count=2 2>/dev/null && "
                       "dd if=/tmp/d of=/dev/vda bs=1M oflag=direct conv=fsync 2>/dev/null && sha256sum /tmp/d",
                       timeout=120)
        assert wrote.exit_code == 0, wrote.output
        digest = wrote.output.split()[0]
    vpd_json("vm", "shutdown", "iw", "--host", "hostb", "--force")

    # hosta: the reader, as another admitted initiator.
    reader_pool = initiator_pool("hosta", secret, "--initiator", READER)
    assert reader_pool.returncode == 0, reader_pool.stderr
    vpd_json("vm", "create", "ir", "--host", "hosta", "--lab-guest")
    vpd_json("vm", "disk", "attach", "ir", "--host", "hosta", "--vol", "st-isc/unit:0:0:1", "--target", "vdb")
    vpd_json("vm", "start", "ir", "--host", "hosta", "--wait-boot")
    with channel(conns, lab_inventory, host="hosta", vm="ir") as ch:
        read = ch.run("dd if=/dev/vda bs=1M count=2 iflag=direct 2>/dev/null | sha256sum", timeout=120)
        assert read.exit_code == 0 and read.output.split()[0] == digest
    vpd_json("vm", "destroy", "ir", "--host", "hosta")

    for host in ("hosta", "hostb"):
        vpd_json("vm", "undefine", "ir" if host == "hosta" else "iw", "--host", host)
        assert vpd_json("pool", "delete", "st-isc", "--host", host)["notes"] == ["removed its CHAP secret"]
    gone = vpd_json("iscsi", "target", "delete", "--host", "hosta", "--iqn", IQN)
    assert gone["deleted"] and "tgtd stopped (no target left)" in gone["notes"]
    assert "3260" not in nft_rules("hosta")
    journal = vpd("journal", "--json").stdout
    assert "iscsi.target.create" in journal and SECRET not in journal
