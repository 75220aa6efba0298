"""--explain: every command that changes something has it, its hand commands come from what
vpd called, and replaying them gives the same libvirt state.

The replay runs the printed virsh commands in one fresh `virsh -c test:///default` process (the
test driver's state lives as long as its process) and compares its XML with the XML vpd left
in this process's test:///default."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import libvirt
import pytest
from click.testing import CliRunner

from vpd.cli import main as cli_main
from vpd.connect.ssh import exec_step
from vpd.core import journal, steps
from vpd.ops import Operation, Session, explain
from vpd.ops.operation import readonly

# Commands allowed without --explain nor readonly=True (none today).
NO_EXPLAIN: set[str] = set()


def _leaves(group: click.Group, ctx: click.Context, path: list[str]):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _leaves(cmd, ctx, path + [name])
        elif cmd is not None:
            yield " ".join(path + [name]), cmd


def test_every_command_that_is_not_declared_read_only_has_explain():
    missing, both = [], []
    for path, cmd in _leaves(cli_main.cli, click.Context(cli_main.cli), []):
        has = any(p.name == "explain_steps" for p in cmd.params)
        ro = getattr(cmd.callback, "__vpd_readonly__", None)
        if not has and not ro and path not in NO_EXPLAIN:
            missing.append(path)
        if has and ro:
            both.append(path)
    assert not missing, f"commands without --explain nor readonly=True: {missing}"
    assert not both


def test_a_read_only_command_cannot_open_an_operation(tmp_path, monkeypatch):
    monkeypatch.setenv("VPD_HOME", str(tmp_path))
    with readonly(), pytest.raises(RuntimeError, match="read-only"):
        with Operation(Session(), "vm.start", target="x", recover=False):
            pass
    with Operation(Session(), "vm.start", target="x", recover=False):
        pass  # outside a read-only command it opens


@pytest.fixture
def env(tmp_path, monkeypatch):
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n')
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VPD_INVENTORY", str(inv))
    conn = libvirt.open("test:///default")  # keeps this process's test driver state alive
    yield conn
    conn.close()


def vpd(*args: str) -> dict:
    result = CliRunner().invoke(cli_main.cli, [*args, "--json", "--explain"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def replay(commands: list[str], reads: list[str], tmp: Path) -> list[str]:
    """Run the printed commands (each `virsh -c test:///default SUB ...`, XML in a here-document)
    in ONE virsh process, then `reads`; return what each read printed."""
    lines = []
    for i, text in enumerate(commands):
        body = None
        heredoc = re.fullmatch(r"(.*) <<'(\w+)'\n(.*)\n\2", text, re.S)
        if heredoc:
            text, body = heredoc.group(1), heredoc.group(3) + "\n"
        argv = shlex.split(text)
        assert argv[:3] == ["virsh", "-c", "test:///default"], text
        argv = argv[3:]
        if body is not None:
            path = tmp / f"step{i}.xml"
            path.write_text(body)
            argv = [str(path) if a == explain.STDIN else a for a in argv]
        lines.append(shlex.join(argv))
    for read in reads:
        lines += ["echo ===vpd-read===", read]
    proc = subprocess.run(["virsh", "-c", "test:///default", " ; ".join(lines)],
                          capture_output=True, text=True, timeout=60)
    assert "error" not in proc.stderr.lower(), (proc.stderr, lines)
    return [part.strip() for part in proc.stdout.split("===vpd-read===")[1:]]


def _normal(xml: str) -> str:
    # Identifiers libvirt generates when the XML leaves them out differ between two runs.
    xml = re.sub(r"<uuid>[^<]*</uuid>", "", xml)
    xml = re.sub(r"<mac address=['\"][^'\"]*['\"]/>", "", xml)
    xml = re.sub(r"<(creationTime|key)>[^<]*</\1>", "", xml)
    return re.sub(r"\s+", " ", xml).strip()


@pytest.mark.parametrize("case", ["pool", "vol", "net", "snapshot", "vm-clone"])
def test_replaying_the_explained_commands_gives_the_same_libvirt_state(env, tmp_path, case):
    tag = f"ex{case.replace('-', '')}{tmp_path.name[-6:].replace('_', '')}"
    if case == "pool":
        out = vpd("pool", "create", tag, "--host", "t1", "--type", "dir", "--path", f"/tmp/{tag}")
        reads = {f"pool-dumpxml {tag}": env.storagePoolLookupByName(tag).XMLDesc()}
    elif case == "vol":
        out = vpd("vol", "create", "default-pool", f"{tag}.qcow2", "--host", "t1", "--size", "64M")
        vol = env.storagePoolLookupByName("default-pool").storageVolLookupByName(f"{tag}.qcow2")
        reads = {f"vol-dumpxml --pool default-pool {tag}.qcow2": vol.XMLDesc()}
    elif case == "net":
        out = vpd("net", "create", tag, "--host", "t1", "--mode", "isolated", "--subnet", "198.19.77.0/24")
        reads = {f"net-dumpxml {tag}": env.networkLookupByName(tag).XMLDesc()}
    elif case == "snapshot":
        made = vpd("vm", "create", f"{tag}vm", "--host", "t1", "--disk", "size=8M,pool=default-pool",
                   "--boot", "kernel=/boot/k", "--memory", "64")
        out = vpd("snapshot", "create", f"{tag}vm", tag, "--host", "t1", "--description", "a 'quoted' note")
        out["explain"] = made["explain"] + out["explain"]
        snap = env.lookupByName(f"{tag}vm").snapshotLookupByName(tag)
        reads = {f"snapshot-dumpxml {tag}vm {tag}": snap.getXMLDesc()}
    else:
        made = vpd("vm", "create", f"{tag}src", "--host", "t1", "--disk", "size=8M,pool=default-pool",
                   "--boot", "kernel=/boot/k", "--memory", "64")
        out = vpd("vm", "clone", f"{tag}src", tag, "--host", "t1")
        out["explain"] = made["explain"] + out["explain"]
        reads = {f"dumpxml {name}": env.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                 for name in (f"{tag}src", tag)}
    commands = out["explain"]
    assert commands and all(c.startswith("virsh -c test:///default ") for c in commands), commands
    replayed = replay(commands, list(reads), tmp_path)
    for (read, mine), theirs in zip(reads.items(), replayed, strict=True):
        if case == "snapshot":  # a snapshot's XML embeds the domain's, with state that differs by run
            mine, theirs = (re.sub(r"<domain .*</domain>", "", x, flags=re.S) for x in (mine, theirs))
        assert _normal(mine) == _normal(theirs), read


def test_explain_with_dry_run_shows_instead_of_acting_and_the_journal_keeps_the_steps(env, tmp_path):
    before = {p.name() for p in env.listAllStoragePools()}
    with steps.listening() as seen:
        vpd("pool", "create", "exdry", "--host", "t1", "--type", "dir", "--path", "/tmp/exdry")
    rows = journal.entries(1, "pool.create", steps=True)
    assert rows[0]["steps"] == seen and explain.script(rows[0]["steps"])[0].startswith(
        "virsh -c test:///default pool-define /dev/stdin <<'EOF'\n<pool")
    assert {p.name() for p in env.listAllStoragePools()} == before | {"exdry"}
    script = CliRunner().invoke(cli_main.cli, ["journal", "--as-script", "--since", "1h"]).stdout
    assert script.startswith("#!/bin/sh") and "pool-start exdry" in script


def test_journal_since_refuses_what_it_cannot_read(env):
    result = CliRunner().invoke(cli_main.cli, ["journal", "--since", "yesterday-ish"])
    assert result.exit_code == 2


def test_an_exec_step_is_shown_through_ssh_quoted_once_for_the_remote_shell():
    step = {"kind": "exec", "host": "a", "ssh": "root@198.18.5.2", "argv": ["tee", "/etc/x y"], "input": "v\n"}
    text = explain.shell(explain.hands(step))
    assert text == "ssh root@198.18.5.2 -- 'tee '\"'\"'/etc/x y'\"'\"'' <<'EOF'\nv\nEOF"
    assert shlex.split(text.split(" <<")[0])[-1] == "tee '/etc/x y'"


def test_reads_are_left_out_unless_asked():
    read = {"kind": "exec", "host": "a", "ssh": None, "argv": ["firewall-cmd", "--list-all-zones"], "input": None}
    change = {"kind": "exec", "host": "a", "ssh": None, "argv": ["firewall-cmd", "--zone=x", "--add-port=22/tcp"],
              "input": None}
    assert explain.script([read, change]) == ["firewall-cmd --zone=x --add-port=22/tcp"]
    assert explain.script([read], queries=True) == ["# firewall-cmd --list-all-zones"]
    for argv in (["tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "sys"], ["sh", "-c", "command -v tgtadm"],
                 ["qemu-img", "info", "--output=json", "x"], ["nft", "-j", "list", "ruleset"]):
        assert explain.is_query(argv), argv
    for argv in (["tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "target"], ["tee", "/etc/hosts"],
                 ["ip", "link", "add", "br0", "type", "bridge"], ["nft", "-f", "-"], ["qemu-img", "create", "x"],
                 ["hostname", "web1"], ["firewall-cmd", "--permanent", "--zone=public", "--add-rich-rule=r"]):
        assert not explain.is_query(argv), argv


def test_secrets_never_reach_a_step():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    step = exec_step("a", None, ["install", "-m", "600", "/dev/stdin", "/root/.ssh/k"], key)
    assert step["input"] is None and "AAAA" not in json.dumps(step)
    assert "private key" in explain.shell(explain.hands(step))
    password = exec_step("a", None, ["chpasswd"], "hacluster:pw123\n", secret=True)
    assert "pw123" not in json.dumps(password)
    chap = exec_step("a", None, ["tgtadm", "--user", "u", "--password", "s3cret", "x"])
    cli = exec_step("a", None, ["targetcli", "/iscsi/acls/x", "set", "auth", "userid=u", "password=s3cret"])
    assert "s3cret" not in json.dumps([chap, cli])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
