"""Every vpd command, fed hostile values: a clear error (exit 1 or 2), never a traceback, and
nothing created on the hosts.

The commands are discovered from click (the LazyGroup imports every command module), so a new
command is swept without touching this file. Each run goes in-process against an inventory of
libvirt's test driver (test:///default), whose state is one per process while a connection
holds it open: the test keeps one open, snapshots the driver before and after, and compares.
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click
import click.testing
import libvirt
import pytest

from vpd.cli import main as cli_main

# Commands that are interactive or long-running by nature, or that build the lab (root,
# network namespaces): they are covered by their own tests, not by this sweep.
SKIP = {
    ("vm", "console"): "attaches to the guest console (interactive)",
    ("vm", "edit"): "opens $EDITOR (interactive)",
    ("lab", "up"): "builds the lab (root, namespaces, minutes)",
    ("lab", "down"): "tears the lab down (root)",
    ("lab", "host-up"): "starts a lab host (root)",
    ("lab", "host-down"): "stops a lab host (root)",
    ("web", "serve"): "serves HTTP until stopped (long-running)",
}

HOSTILE = [
    "",
    "x" * 300,
    "abc\n",
    "a\nb",
    "a\tb\x01c\x7f",
    "\x1b[31mred",
    "../x",
    "/etc/../etc/passwd",
    ";rm -rf /",
    "$(id)",
    "`id`",
    "é✓名前",
    "-x",
    "%s%n",
    "[bold]x[/bold]",
    "a\\b",
    "*",
]

# A benign value for the parameters a command needs besides the hostile one, so the hostile
# value gets past click and reaches vpd's own checks.
BENIGN = {
    "host_ref": "t1", "host_name": "t1", "host": "t1", "src": "t1", "dst": "t1", "dst_name": "t1",
    "src_name": "t1", "names": "t1", "hosts_text": "t1,t2",
    "name": "test", "vm": "test", "vm_name": "test", "source": "test", "new_name": "hostile-new",
    "pool_name": "default-pool", "pool": "default-pool", "to_pool": "default-pool",
    "network": "default", "root": "/nonexistent-vpd-backups", "backup_path": "/nonexistent-vpd-backups/b",
    "iqn": "iqn.2024-01.org.example:t", "allow": "iqn.2024-01.org.example:i", "size": "1M",
    "target": "vdz", "key": "limits.cpu", "value": "1", "image": "img", "argv": "true",
    "cluster_name": "c1", "iface": "eth9", "token_id": "0123456789abcdef", "grant_id": "0123456789abcdef",
}


def _walk(group: click.Group, path: tuple[str, ...], ctx: click.Context):
    for sub_name in group.list_commands(ctx):
        sub = group.get_command(ctx, sub_name)
        assert sub is not None, f"{' '.join(path + (sub_name,))} is listed but not registered"
        sub_ctx = click.Context(sub, parent=ctx, info_name=sub_name)
        if isinstance(sub, click.Group):
            yield from _walk(sub, path + (sub_name,), sub_ctx)
        else:
            yield path + (sub_name,), sub


def all_commands() -> list[tuple[tuple[str, ...], click.Command]]:
    root = cli_main.cli
    return list(_walk(root, (), click.Context(root, info_name="vpd")))


def _option_flag(param: click.Option) -> str:
    return next((o for o in param.opts if o.startswith("--")), param.opts[0])


def _needs_value(param: click.Parameter) -> bool:
    return param.name != "as_json" and not (isinstance(param, click.Option) and param.is_flag)


def _argv(command: click.Command, path: tuple[str, ...], hostile_param: click.Parameter, value: str) -> list[str]:
    args: list[str] = []
    opts: list[str] = []
    for param in command.params:
        if not _needs_value(param):
            continue
        if param is hostile_param:
            chosen: str | None = value
        elif param.required:
            chosen = BENIGN.get(param.name or "", "x")
        else:
            chosen = None
        if chosen is None:
            continue
        if isinstance(param, click.Argument):
            args.append(chosen)
        else:
            opts += [_option_flag(param), chosen]  # type: ignore[arg-type]
    # '--' ends the options, so an argument such as '-x' reaches vpd as a value.
    return [*path, *opts, "--", *args]


def _cases():
    cases = []
    for path, command in all_commands():
        if path in SKIP:
            continue
        for param in command.params:
            if not _needs_value(param):
                continue
            # click checks typed parameters itself (choice, integer, file): two values suffice.
            values = HOSTILE if isinstance(param.type, click.types.StringParamType) else HOSTILE[:2]
            cases.append(pytest.param(path, command, param, values, id=f"{' '.join(path)}:{param.name}"))
    return cases


def test_skips_name_existing_commands():
    found = {path for path, _ in all_commands()}
    assert {p for p in SKIP if p[0] != "web"} <= found  # the list stays honest


def driver_state(conn: libvirt.virConnect) -> dict:
    """Everything a command could create on the test driver."""
    doms = {}
    for dom in conn.listAllDomains():
        doms[dom.name()] = (dom.state()[0], sorted(dom.snapshotListNames()),
                            sorted(c.getName() for c in dom.listAllCheckpoints()),
                            dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    pools = {}
    for pool in conn.listAllStoragePools():
        vols = sorted(pool.listVolumes()) if pool.isActive() else []
        pools[pool.name()] = (pool.isActive(), pool.autostart(), vols)
    return {
        "domains": doms,
        "pools": pools,
        "networks": {n.name(): (n.isActive(), n.autostart()) for n in conn.listAllNetworks()},
        "interfaces": sorted(i.name() for i in conn.listAllInterfaces()),
        "nodedevs": sorted(d.name() for d in conn.listAllDevices()),
    }


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if "journal" not in p.name}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[[hosts]]\nname = "t1"\nuri = "test:///default"\n\n'
                         '[[hosts]]\nname = "t2"\nuri = "test:///default"\n')
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.setenv("VPD_INVENTORY", str(inventory))
    monkeypatch.setenv("VPD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VPD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("EDITOR", "false")
    monkeypatch.setenv("VPD_LAB_STATE", str(tmp_path / "lab"))
    monkeypatch.chdir(work)
    conn = libvirt.open("test:///default")  # holds the driver's state for the whole test
    yield tmp_path, conn
    conn.close()


def invoke(argv: list[str]) -> tuple[int, str]:
    """Run `vpd ARGV` as the console script does; return (exit code, what went to stderr),
    where an exception escaping the CLI is a traceback."""
    runner = click.testing.CliRunner()
    with runner.isolation() as (_out, err, *_):
        old_argv = sys.argv
        sys.argv = ["vpd", *argv]
        try:
            cli_main.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - any escape is the finding
            sys.stderr.write(traceback.format_exc())
            code = 99
        finally:
            sys.argv = old_argv
        sys.stderr.flush()
        text = err.getvalue().decode(errors="replace")
    return code, text


@pytest.mark.parametrize(("path", "command", "param", "values"), _cases())
def test_hostile_values(sandbox, path, command, param, values):
    tmp_path, conn = sandbox
    before = driver_state(conn), files_under(tmp_path / "cwd")
    failures = []
    for value in values:
        argv = _argv(command, path, param, value)
        code, err = invoke(argv)
        if code not in (1, 2) or "Traceback" in err:
            failures.append(f"vpd {argv!r}: exit {code}\n{err[-1500:]}")
        after = driver_state(conn), files_under(tmp_path / "cwd")
        if after != before:
            failures.append(f"vpd {argv!r} changed the host or the working directory")
            before = after
    assert not failures, "\n\n".join(failures)


if os.environ.get("VPD_HOSTILE_LIST"):  # VPD_HOSTILE_LIST=1 pytest ... -s: print the sweep
    for _path, _cmd in all_commands():
        print(" ".join(_path), "SKIP: " + SKIP[_path] if _path in SKIP else "")
