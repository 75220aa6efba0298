"""The operation layer over libvirt's test driver: host names, finding VMs across the
inventory, the journal's planned objects, locks, undo, and literal error text."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vpd.connect.inventory import Host, Inventory
from vpd.core import journal
from vpd.core.errors import NotFound, UsageError, VpdError
from vpd.core.undo import Undo
from vpd.ops import Operation, Session
from vpd.ops.locks import Busy, LockSet, vm_key
from vpd.vm.inventory import locate_vm

from .conftest import run_vpd

_DOMAIN = ("<domain type='test'><name>{name}</name><memory>65536</memory><os><type>hvm</type></os>"
           "<devices><interface type='network'><mac address='{mac}'/><source network='default'/></interface>"
           "</devices>{state}</domain>")
_SHUTOFF = "<test:runstate xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>5</test:runstate>"


def _node(path: Path, vms: dict[str, tuple[str, bool]]) -> str:
    """A test-driver host of its own (each file is a separate libvirt instance): name -> (mac, running)."""
    path.write_text("<node>" + "".join(_DOMAIN.format(name=n, mac=mac, state="" if running else _SHUTOFF)
                                       for n, (mac, running) in vms.items()) + "</node>")
    return f"test://{path}"


@pytest.fixture
def two_hosts(tmp_path: Path) -> Path:
    """hosta runs `web` and has `db` shut off; hostb has `db` running (a migration that kept
    the source's definition) and `solo` shut off."""
    a = _node(tmp_path / "a.xml", {"web": ("52:54:00:00:00:01", True), "db": ("52:54:00:00:00:02", False)})
    b = _node(tmp_path / "b.xml", {"db": ("52:54:00:00:00:02", True), "solo": ("52:54:00:00:00:03", False)})
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[[hosts]]\nname = "hosta"\nuri = "{a}"\naddress = "198.18.7.11"\nfqdn = "hosta.vpd.lab"\n\n'
                   f'[[hosts]]\nname = "hostb"\nuri = "{b}"\naddress = "198.18.7.12"\nfqdn = "hostb.vpd.lab"\n')
    return inv


# --- hosts by any of their names ---------------------------------------------------------

def test_host_by_name_fqdn_address_and_uri_host():
    inv = Inventory(hosts=[Host(name="hosta", uri="qemu+ssh://root@hosta.example.org/system", address="192.0.2.1"),
                           Host(name="hostb", uri="qemu+tcp://198.18.0.2/system", fqdn="hostb.vpd.lab")])
    assert inv.get("hosta").name == "hosta"
    assert inv.get("HOSTA.example.org").name == "hosta"
    assert inv.get("192.0.2.1").name == "hosta"
    assert inv.get("hostb.vpd.lab.").name == "hostb"
    assert inv.get("198.18.0.2").name == "hostb"
    with pytest.raises(NotFound, match="unknown host"):
        inv.get("hostc.vpd.lab")


@pytest.mark.parametrize("bad", ["a b", "host..lab", "-x.lab", "x" * 300, "a\n", "a;b"])
def test_bad_fqdn_refused(bad):
    with pytest.raises(ValueError):
        Host(name="h", uri="test:///default", fqdn=bad)


# --- finding a VM ------------------------------------------------------------------------

def test_locate_unique_vm_without_host(two_hosts):
    with Session(two_hosts) as s:
        found = locate_vm(s, "solo")
        assert found.host.name == "hostb" and found.found_by_search
        assert s.notices == ["solo is on hostb"]


def test_locate_prefers_the_running_copy(two_hosts):
    with Session(two_hosts) as s:
        assert locate_vm(s, "db").host.name == "hostb"
        with pytest.raises(UsageError, match="defined on hosta, hostb"):
            locate_vm(s, "db", prefer_running=False)


def test_locate_missing_and_named_host(two_hosts):
    with Session(two_hosts) as s:
        with pytest.raises(NotFound, match="on any host"):
            locate_vm(s, "nosuch")
        with pytest.raises(NotFound, match="no VM named 'web' on hostb"):
            locate_vm(s, "web", "hostb.vpd.lab")
        assert locate_vm(s, "web", "198.18.7.11").host.name == "hosta"


def test_cli_finds_the_vm_and_says_where(two_hosts):
    proc = run_vpd("vm", "info", "solo", inventory=two_hosts, check_rc=0)
    assert "solo is on hostb" in proc.stderr and "shut off" in proc.stdout
    data = json.loads(run_vpd("vm", "info", "web", "--json", inventory=two_hosts, check_rc=0).stdout)
    assert data["host"] == "hosta" and data["name"] == "web"
    data = json.loads(run_vpd("vm", "info", "db", "--host", "hosta.vpd.lab", "--json", inventory=two_hosts,
                              check_rc=0).stdout)
    assert data["host"] == "hosta" and data["state"] == "shut off"


def test_cli_ambiguous_vm_exits_2_naming_hosts(two_hosts):
    proc = run_vpd("vm", "start", "db", inventory=two_hosts)
    assert proc.returncode == 2 and "hosta, hostb" in proc.stderr and "--host" in proc.stderr


def test_clone_name_taken_on_another_host_is_refused(two_hosts):
    proc = run_vpd("vm", "clone", "web", "solo", "--json", inventory=two_hosts)
    assert proc.returncode == 2
    assert "already exists on hostb" in json.loads(proc.stdout)["error"]


def test_error_text_with_brackets_is_printed_literally(two_hosts):
    proc = run_vpd("vm", "list", "--host", "a[/]b[bold]", inventory=two_hosts)
    assert proc.returncode == 2, proc.stderr
    assert "a[/]b[bold]" in proc.stderr and "Traceback" not in proc.stderr


# --- the operation itself -------------------------------------------------------------

def test_operation_journals_planned_objects_and_undoes_on_failure(two_hosts):
    done: list[str] = []
    with Session(two_hosts) as s:
        with pytest.raises(VpdError, match="disk full"):
            with Operation(s, "test.make", target="hosta/x", locks=[vm_key("x")]) as op:
                op.plan("volume", "x.qcow2", "hosta")
                op.undo.push(lambda: done.append("volume"), "delete volume x.qcow2")
                op.undo.push(lambda: (_ for _ in ()).throw(OSError("host gone")), "remove file")
                raise VpdError("disk full")
    # the failing undo step neither hid the error nor stopped the older one
    assert done == ["volume"]
    row = journal.entries(1, "test.make")[0]
    assert row["status"] == "failed" and row["objects"] == [{"kind": "volume", "name": "x.qcow2", "host": "hosta"}]
    assert row["result"] == {"error": "disk full"}  # nothing reported: the error alone
    assert "undo: remove file: failed: host gone" in row["notes"]
    assert "undo: delete volume x.qcow2: done" in row["notes"]


def test_failed_operation_keeps_its_report_next_to_the_error(two_hosts):
    """A migration whose preflight failed: the journal keeps the checks (the web console's VM page
    shows them without JavaScript), not only the error."""
    with Session(two_hosts) as s, pytest.raises(VpdError):
        with Operation(s, "test.check", target="t") as op:
            op.result = {"preflight": [{"name": "ports", "ok": False}]}
            raise VpdError("preflight failed: ports")
    assert journal.entries(1, "test.check")[0]["result"] == {
        "error": "preflight failed: ports", "report": {"preflight": [{"name": "ports", "ok": False}]}}


def test_operation_result_is_journaled(two_hosts):
    with Session(two_hosts) as s, Operation(s, "test.ok", target="t") as op:
        op.result = {"made": 1}
    assert journal.entries(1, "test.ok")[0]["result"] == {"made": 1}


def test_lock_held_elsewhere_is_busy_and_released_after(two_hosts):
    holder = LockSet([vm_key("web")], {"journal_id": 7, "operation": "vm.clone", "pid": 1}).acquire()
    try:
        with Session(two_hosts) as s:
            with pytest.raises(Busy, match=r"vm web is busy: vm.clone started by PID 1 at .* \(journal #7\)"):
                with Operation(s, "vm.start", locks=[vm_key("web")]):
                    pass
    finally:
        holder.release()
    with Session(two_hosts) as s, Operation(s, "vm.start", locks=[vm_key("web")]):
        pass


def test_lock_dies_with_its_process(tmp_path):
    """flock is dropped by the kernel when the holder dies, even by SIGKILL."""
    code = ("from vpd.ops.locks import LockSet; import os, signal; "
            "LockSet(['vm:x'], {}).acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    LockSet(["vm:x"], {}).acquire().release()


def test_undo_runs_every_step_newest_first():
    order: list[str] = []
    with pytest.raises(RuntimeError):
        with Undo() as undo:
            undo.push(lambda: order.append("first"), "first")
            undo.push(lambda: (_ for _ in ()).throw(OSError("gone")), "second")
            undo.push(lambda: order.append("third"), "third")
            raise RuntimeError("boom")
    assert order == ["third", "first"]
    assert [(s.description, s.ok) for s in undo.steps] == [("third", True), ("second", False), ("first", True)]


def test_undo_does_nothing_on_success():
    ran: list[int] = []
    with Undo() as undo:
        undo.push(lambda: ran.append(1))
    assert ran == [] and undo.steps == []


SIGTERM_SCRIPT = """
import signal, sys, time
from vpd.cli.main import _raise_terminated, interrupt_exit_code
from vpd.ops import Operation, Session
signal.signal(signal.SIGTERM, _raise_terminated)
try:
    with Session(sys.argv[1]) as s, Operation(s, "test.long", target="t") as op:
        op.plan("volume", "v.qcow2", "hosta")
        op.undo.push(lambda: open(sys.argv[2], "w").write("undone"), "delete volume v.qcow2")
        print("ready", flush=True)
        time.sleep(60)
except KeyboardInterrupt as exc:
    sys.exit(interrupt_exit_code(exc))
"""


def test_sigterm_undoes_and_exits_143(two_hosts, tmp_path):
    import signal

    marker = tmp_path / "undone"
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, str(two_hosts), str(marker)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert marker.read_text() == "undone"
    row = journal.entries(1, "test.long")[0]
    assert row["status"] == "interrupted" and "undo: delete volume v.qcow2: done" in row["notes"]
