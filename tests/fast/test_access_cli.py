"""`vpd access` refuses bad requests with exit 2 before touching any host."""
from __future__ import annotations

import json

import pytest

from .conftest import run_vpd


def test_list_starts_empty(test_inventory):
    out = json.loads(run_vpd("access", "list", "--json", inventory=test_inventory, check_rc=0).stdout)
    assert out == {"grants": []}


def test_revoke_expired_with_nothing_to_do(test_inventory):
    out = json.loads(run_vpd("access", "revoke", "--expired", "--json", inventory=test_inventory, check_rc=0).stdout)
    assert out == {"revoked": [], "failed": []}


@pytest.mark.parametrize("args, message", [
    (("access", "grant", "t1", "nosuch"), "unknown host"),
    (("access", "grant", "t1", "t1"), "both t1"),
    (("access", "grant", "t1", "t2"), "no address"),  # from= needs SRC's address
    (("access", "grant", "t1", "t2", "--ttl", "soon"), "invalid TTL"),
    (("access", "grant", "t1", "t2", "--ttl", "3d"), "out of range"),
    (("access", "revoke", "0123abcd"), "no grant"),
    (("access", "revoke"), "either a grant ID or --expired"),
    (("access", "revoke", "0123abcd", "--expired"), "either a grant ID or --expired"),
])
def test_bad_requests_exit_2(test_inventory, args, message):
    proc = run_vpd(*args, inventory=test_inventory)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    as_json = run_vpd(*args, "--json", inventory=test_inventory)
    assert as_json.returncode == 2 and message in json.loads(as_json.stdout)["error"]
