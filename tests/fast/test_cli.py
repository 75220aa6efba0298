"""The CLI over libvirt's test driver: JSON output, exit codes, nothing changed on bad input."""
from __future__ import annotations

import json

import pytest

from .conftest import run_vpd


def test_host_list_json(test_inventory):
    out = json.loads(run_vpd("host", "list", "--json", inventory=test_inventory, check_rc=0).stdout)
    hosts = {h["name"]: h for h in out["hosts"]}
    assert set(hosts) == {"t1", "t2"}
    assert hosts["t1"]["reachable"] and hosts["t1"]["libvirt_version"].startswith("1")
    assert hosts["t1"]["vms_total"] >= 1


def test_vm_list_json(test_inventory):
    out = json.loads(run_vpd("vm", "list", "--all", "--json", inventory=test_inventory, check_rc=0).stdout)
    vms = [v for h in out["hosts"] for v in h["vms"]]
    assert {"host": "t1", "name": "test"}.items() <= vms[0].items()
    assert vms[0]["state"] == "running" and vms[0]["vcpus"] >= 1 and vms[0]["memory_mib"] > 0


def test_table_output(test_inventory):
    out = run_vpd("host", "list", inventory=test_inventory, check_rc=0).stdout
    assert "t1" in out and "t2" in out


@pytest.mark.parametrize("args", [
    ("vm", "list", "--host", "nosuch"),
    ("host", "list", "--host", "../etc"),
    ("vm", "start", "bad name", "--host", "t1"),
    ("vm", "start", "x" * 300, "--host", "t1"),
    ("vm", "create", "a'b", "--host", "t1", "--lab-guest"),
    ("vm", "create", "ok", "--host", "t1", "--boot", "kernel=/k", "--disk", "size=-1"),
    ("vm", "create", "ok", "--host", "t1", "--boot", "kernel=/k", "--disk", "pool=x"),
    ("vm", "nosuchcommand",),
    ("lab", "up", "--hosts", "0"),
    ("lab", "up", "--link-rate", "fast"),
])
def test_bad_input_exits_2(test_inventory, args):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_bad_input_json_error(test_inventory):
    proc = run_vpd("vm", "list", "--host", "nosuch", "--json", inventory=test_inventory)
    assert proc.returncode == 2
    assert "unknown host" in json.loads(proc.stdout)["error"]


def test_malformed_inventory_exits_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[hosts]]\nname = 'a b'\nuri = 'qemu:///system'\n")
    proc = run_vpd("host", "list", inventory=bad)
    assert proc.returncode == 2 and "invalid host name" in proc.stderr


def test_unreachable_host_is_reported_not_raised(tmp_path):
    inv = tmp_path / "inv.toml"
    inv.write_text("[[hosts]]\nname = 'gone'\nuri = 'qemu+unix:///system?socket=/nonexistent/sock'\n")
    # Its only host is down: exit 1 (issue 12), the host's own error still in the report.
    out = json.loads(run_vpd("host", "list", "--json", inventory=inv, check_rc=1).stdout)
    host = out["hosts"][0]
    assert host["reachable"] is False and "not running" in host["error"]


def test_lab_down_without_lab_exits_2():
    proc = run_vpd("lab", "down")
    # Another run's lab on the same network is never torn down by a state directory that does not own it.
    assert proc.returncode == 2 and ("no lab is up" in proc.stderr or "removes only its own" in proc.stderr)


def test_journal_records_operations(test_inventory):
    run_vpd("lab", "down")
    out = json.loads(run_vpd("journal", "--json", check_rc=0).stdout)
    assert out[0]["operation"] == "lab.down" and out[0]["status"] == "failed"


def _inventory(tmp_path, *uris):
    path = tmp_path / "inv.toml"
    path.write_text("".join(f'[[hosts]]\nname = "h{i}"\nuri = "{u}"\n\n' for i, u in enumerate(uris)))
    return path


DEAD = "qemu+tcp://127.0.0.1:1/system"  # nothing listens on port 1: refused at once


@pytest.mark.parametrize("args", [("host", "list"), ("vm", "list")])
def test_listing_exits_1_when_no_host_answers(tmp_path, args):
    inv = _inventory(tmp_path, DEAD, DEAD)
    proc = run_vpd(*args, "--json", inventory=inv)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    out = json.loads(proc.stdout)
    assert "answered" in out["error"] and len(out["hosts"]) == 2  # the per-host errors stay
    assert all(h["error"] for h in out["hosts"])
    plain = run_vpd(*args, inventory=inv)
    assert plain.returncode == 1 and "error:" in plain.stderr and "Traceback" not in plain.stderr


@pytest.mark.parametrize("args", [("host", "list"), ("vm", "list")])
def test_listing_is_partial_when_some_host_answers(tmp_path, args):
    out = json.loads(run_vpd(*args, "--json", inventory=_inventory(tmp_path, "test:///default", DEAD),
                             check_rc=0).stdout)
    errors = {h.get("host", h.get("name")): h["error"] for h in out["hosts"]}
    assert errors["h0"] is None and errors["h1"]
