"""Races (issue 12, section 2) through the real CLI: while another process holds a VM's lock
(as a first `vpd migrate` does for the whole job), a second migrate of it exits 2 at once,
naming the holder, with no traceback and nothing journaled as started on the VM."""
from __future__ import annotations

import subprocess
import sys

from .conftest import run_vpd

HOLD = ("import os, sys; from vpd.ops.locks import LockSet, vm_key; "
        "owner = {'journal_id': 41, 'operation': 'migrate', 'pid': os.getpid()}; "
        "lock = LockSet([vm_key(sys.argv[1])], owner).acquire(); "
        "print('held', flush=True); sys.stdin.read(); lock.release()")


def test_a_second_migrate_of_a_busy_vm_exits_2_naming_the_first(test_inventory):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "test"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = run_vpd("migrate", "test", "--to", "t2", "--from", "t1", inventory=test_inventory)
        assert second.returncode == 2, (second.stdout, second.stderr)
        assert f"vm test is busy: migrate started by PID {holder.pid}" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        # Any other command on the same VM waits its turn the same way.
        other = run_vpd("vm", "clone", "test", "test2", "--host", "t1", inventory=test_inventory)
        assert other.returncode == 2 and "vm test is busy" in other.stderr, other.stderr
    finally:
        holder.communicate("", timeout=30)
