"""`vpd vm ip|exec|fs|ssh`: inside the guest, through its QEMU guest agent or SSH. Parse, call
vpd.vm.guest_operations, render."""
from __future__ import annotations

import sys

import click

from ..core.errors import UsageError
from ..vm import guest_operations as guest_ops
from .command import command, host_option, say
from .commands_vm import vm
from .main import LocalPath
from .render import table


def _render_ip(r: dict) -> None:
    for a in r["addresses"]:
        where = a["interface"] + (f", {a['mac']}" if a["mac"] else "")
        say(f"{a['address']}" + (f"/{a['prefix']}" if a["prefix"] is not None else "") + f"  ({where})")
    say(f"from {r['source_name']}" + "".join(f"; {t['source']}: {t['error']}" for t in r["tried"]), "dim")


@command(vm, "ip", render=_render_ip, bars=False)
@click.argument("name")
@host_option()
def vm_ip(session, name, host_ref):
    """The VM's addresses: asked of its guest agent, else its network's DHCP leases, else the host's ARP table."""
    return guest_ops.ip(session, name, host_ref)


def _size(n: int | None) -> str:
    """Bytes as `df -h` shows them (powers of 1024, one decimal under 10)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            return f"{value:.1f}{unit}" if unit and value < 10 else f"{value:.0f}{unit}"
        value /= 1024
    return str(n)


def _render_fs(r: dict) -> None:
    table(f"filesystems of {r['vm']} on {r['host']} (guest agent)", ["mounted on", "type", "device", "size", "used",
                                                                      "use%"],
          [[f["mountpoint"], f["type"], ", ".join(f["disks"]) or f["device"], _size(f["total_bytes"]),
            _size(f["used_bytes"]), "-" if f["use_percent"] is None else f"{f['use_percent']}%"]
           for f in r["filesystems"]])


@command(vm, "fs", render=_render_fs, bars=False)
@click.argument("name")
@host_option()
def vm_fs(session, name, host_ref):
    """The guest's filesystems, size and use, from its guest agent (the seed's `df -h`, without logging in)."""
    return guest_ops.fs(session, name, host_ref)


def _render_exec(r: dict) -> None:
    # The program's own output, byte for byte as decoded: no table, so it pipes like ssh's.
    sys.stdout.write(r["stdout"])
    sys.stdout.flush()
    sys.stderr.write(r["stderr"])
    if r["truncated"]:
        sys.stderr.write("vpd: the guest agent cut the output short (it keeps at most 16 MiB)\n")
    if r["signal"] is not None:
        sys.stderr.write(f"vpd: {r['argv'][0]} was killed by signal {r['signal']}\n")


@command(vm, "exec", render=_render_exec, bars=False)
@click.argument("name")
@click.argument("argv", nargs=-1, required=True, metavar="-- PROGRAM [ARG...]")
@host_option()
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds to wait for the program to end.")
def vm_exec(session, name, argv, host_ref, timeout):
    """Run PROGRAM in the guest through its guest agent (no shell, no SSH, no network): its
    output is printed and its exit code is vpd's."""
    return guest_ops.exec_(session, name, list(argv), host_ref, timeout)


@command(vm, "ssh", render=lambda r: None, bars=False)
@click.argument("name")
@click.argument("command_argv", nargs=-1, metavar="[-- COMMAND [ARG...]]")
@host_option()
@click.option("--user", help="Log in as this user (default: the one `vm create --cloud-init user=` made).")
@click.option("--identity", type=LocalPath(dir_okay=False),
              help="Private key (default: the one beside the public key given to `vm create --cloud-init ssh-key=`).")
def vm_ssh(session, name, command_argv, host_ref, user, identity):
    """SSH into the VM: its address from `vm ip`, through its host when the guest is on the host's
    private network, the guest's host key checked against the one it printed at first boot. With
    COMMAND, run it (each word passed as is, never re-split by a shell) and exit with its code;
    with --json, COMMAND's output comes back as JSON."""
    capture = bool(click.get_current_context().params.get("as_json"))
    if capture and not command_argv:
        raise UsageError("--json needs a COMMAND (an interactive session has no JSON)")
    return guest_ops.ssh(session, name, host_ref, user, identity, list(command_argv), capture)


def _render_seed_removed(r: dict) -> None:
    done = ["ejected" if r["ejected"] else None, "removed from the definition" if r["detached"] else None,
            "volume deleted" if r["volume_deleted"] else None]
    say(f"{r['vm']} on {r['host']}: seed {r['seed']} " + ", ".join(d for d in done if d))
    say(f"cloud-init finished: {r['evidence']['detail']} ({r['evidence']['source']})", "dim")


@command(vm, "seed-remove", render=_render_seed_removed, bars=False)
@click.argument("name")
@host_option()
@click.option("--force", is_flag=True, help="Remove it without seeing cloud-init finish (the guest may then boot "
                                            "with no user, key or hostname).")
def vm_seed_remove(session, name, host_ref, force):
    """Eject and delete the VM's cloud-init seed once its first boot has used it."""
    return guest_ops.seed_remove(session, name, host_ref, force)
