"""Every kind of name, through the CLI: a name with a control character, non-ASCII letters, a
leading dash or a trailing newline is refused with exit 2, a message naming the problem, and
nothing created on the (test driver) host.

The names come from hypothesis: a valid name with one bad thing added."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpd.core.errors import UsageError
from vpd.core.names import check_existing_name, check_ifname, check_name

from .test_hostile_cli import driver_state, files_under, invoke, sandbox  # noqa: F401 - the fixture

_valid = st.from_regex(r"[a-z][a-z0-9]{0,12}", fullmatch=True)
_control = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from(["\x7f", "\x85", "\x9b"])
_unicode = st.characters(min_codepoint=0xA0, exclude_categories=("Cs",))


def _insert(base: str, char: str, at: int) -> str:
    at %= len(base) + 1
    return base[:at] + char + base[at:]


BAD_NAMES = st.one_of(
    _valid.map(lambda s: s + "\n"),
    _valid.map(lambda s: "-" + s),
    _valid.map(lambda s: s + "/.."),
    st.builds(_insert, _valid, _control, st.integers(0, 20)),
    st.builds(_insert, _valid, _unicode, st.integers(0, 20)),
    st.builds(_insert, _valid, st.sampled_from([" ", "/", "'", '"', ";", "$", "`", "\\", "*", "%"]),
              st.integers(0, 20)),
)

# kind -> argv with NAME where the name goes; positional names come after '--'.
KINDS = {
    "VM": ["vm", "clone", "--host", "t1", "--", "test", "NAME"],
    "pool": ["pool", "create", "--host", "t1", "--type", "dir", "--path", "/srv/vpd-test-pool", "--", "NAME"],
    "volume": ["vol", "create", "--host", "t1", "--size", "1M", "--", "default-pool", "NAME"],
    "network": ["net", "create", "--host", "t1", "--mode", "isolated", "--", "NAME"],
    "snapshot": ["snapshot", "create", "--host", "t1", "--", "test", "NAME"],
    "template": ["template", "create", "--host", "t1", "--", "NAME"],
    "cluster": ["cluster", "create", "--hosts", "t1,t2", "--no-fencing", "--", "NAME"],
    "container": ["ct", "launch", "--host", "t1", "--", "busybox", "NAME"],
    "host": ["vm", "list", "--host", "NAME"],
    "bridge": ["host", "bridge", "create", "--host", "t1", "--iface", "eth0", "--", "NAME"],
    "network bridge": ["net", "create", "--host", "t1", "--mode", "isolated", "--bridge", "NAME", "--", "okname"],
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=BAD_NAMES)
def test_bad_names_exit_2_and_create_nothing(sandbox, kind, name):  # noqa: F811 - the fixture
    tmp_path, conn = sandbox
    before = driver_state(conn), files_under(tmp_path / "cwd")
    argv = [name if a == "NAME" else a for a in KINDS[kind]]
    code, err = invoke(argv)
    assert code == 2, (argv, code, err)
    assert "Traceback" not in err and "error:" in err, err
    assert (driver_state(conn), files_under(tmp_path / "cwd")) == before


@given(name=BAD_NAMES)
def test_every_name_checker_refuses_them(name):
    for check in (check_name, check_existing_name, check_ifname):
        with pytest.raises(UsageError):
            check(name)
