"""What vpd records of its changes, and running commands on the local host."""
from __future__ import annotations

import subprocess
import sys

import pytest

from vpd.connect.inventory import Host
from vpd.connect.ssh import NOT_FOUND
from vpd.hostprep import remote, state


def test_records_accumulate_and_the_file_goes_with_the_last(monkeypatch, tmp_path):
    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    assert state.records("hosta") == []
    state.add_record("hosta", {"kind": "nft-rule", "comment": "vpd-prepare hostb 198.18.0.12"})
    state.add_record("hosta", {"kind": "hosts-lines", "lines": ["198.18.0.12 hostb.vpd.lab hostb"]})
    assert [r["kind"] for r in state.records("hosta")] == ["nft-rule", "hosts-lines"]
    assert all("at" in r for r in state.records("hosta"))
    state.set_records("hosta", [])
    assert not state.state_file("hosta").exists()


def test_backups_keep_each_version(monkeypatch, tmp_path):
    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    first = state.backup("hosta", "/etc/hosts", "one\n")
    second = state.backup("hosta", "/etc/hosts", "two\n")
    assert first != second and first.read_text() == "one\n" and second.read_text() == "two\n"
    assert first.parent == tmp_path / "hostprep" / "backups"


def test_a_missing_program_is_exit_127_on_the_local_host_too():
    local = Host(name="here", uri="qemu:///system")
    assert remote.run(local, ["vpd-no-such-program"], check=False).returncode == NOT_FOUND
    ok = remote.run(local, [sys.executable, "-c", "import sys; print(sys.stdin.read())"], input="x")
    assert ok.stdout == "x\n"


def test_commands_display_as_a_shell_would_take_them():
    cmd = remote.Command(("nft", "insert", "rule", "{ 22 }", 'comment "x"'))
    assert cmd.display() == "nft insert rule '{ 22 }' 'comment \"x\"'"
    assert remote.Command(("tee", "-a", "/etc/hosts"), "1.2.3.4 a.b a\n").display() == \
        "tee -a /etc/hosts <<'EOF'\n1.2.3.4 a.b a\nEOF"


@pytest.mark.parametrize("text", ["web1.example.org\n", "no newline at the end", "two\nlines\n", "EOF\nx'$(id)`\n",
                                  "", "\n\n"])
def test_a_displayed_command_pasted_into_bash_writes_exactly_its_input(tmp_path, text):
    # The old display `tee /etc/hostname <<< 'x\\n'` wrote a backslash and an n.
    target = tmp_path / "hostname"
    shown = remote.Command(("tee", str(target)), text).display()
    subprocess.run(["bash", "-c", shown], check=True, capture_output=True)
    assert target.read_bytes() == text.encode()
