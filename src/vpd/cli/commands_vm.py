from __future__ import annotations

import click

from ..core import journal, paths
from ..core.errors import UsageError
from ..core.names import check_name, parse_size
from ..vm import lifecycle
from ..vm.create import VmSpec, create_vm
from ..vm.inventory import list_vms
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, progress, table


@cli.group()
def vm() -> None:
    """Virtual machines on the inventory's hosts."""


@vm.command("list")
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@click.option("--all", "include_inactive", is_flag=True, help="Include VMs that are not running.")
@json_option
@click.pass_context
@handle_errors
def vm_list(ctx, names, include_inactive: bool, as_json: bool) -> None:
    """All VMs of all hosts (one bulk-stats call per host)."""
    inv = context.inventory(ctx)
    per_host = list_vms(context.connections(ctx), inv.select(list(names)), include_inactive)
    if as_json:
        emit_json({"hosts": [{"host": h.host, "error": h.error, "vms": [v.to_dict() for v in h.vms]} for h in per_host]})
        return
    table("VMs", ["host", "name", "state", "vCPUs", "memory MiB", "persistent"],
          [[v.host, v.name, v.state, v.vcpus, v.memory_mib, "yes" if v.persistent else "no"]
           for h in per_host for v in h.vms])
    for h in per_host:
        if h.error:
            console.print(f"[red]{h.host}[/]: {h.error}", highlight=False)


def _key_values(text: str, option: str, keys: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or key not in keys:
            raise UsageError(f"{option}: unexpected {part!r}", hint=f"use {','.join(k + '=...' for k in sorted(keys))}")
        out[key] = value
    return out


def _dirty(text: str, memory_mib: int) -> tuple[int, int]:
    size, sep, rate = text.partition(",")
    if not (sep and size.isdigit() and rate.isdigit()):
        raise UsageError(f"--dirty {text!r}: use SIZE_MIB,RATE_MIB_S, e.g. 64,20")
    if not 1 <= int(size) <= memory_mib - 48:
        raise UsageError(f"--dirty size must be 1-{memory_mib - 48} MiB for a {memory_mib} MiB guest")
    return int(size), int(rate)


@vm.command("create")
@click.argument("name")
@click.option("--host", "host_name", required=True, help="Host to create it on.")
@click.option("--memory", "memory_mib", default=128, show_default=True, type=int, help="Memory in MiB.")
@click.option("--vcpus", default=1, show_default=True, type=int)
@click.option("--disk", help="size=SIZE[,pool=POOL][,format=qcow2|raw], e.g. size=64M,pool=CONT_VOL_COMP")
@click.option("--boot", help="kernel=PATH,initrd=PATH[,cmdline=...] (direct kernel boot)")
@click.option("--lab-guest", is_flag=True, help="Boot the lab's tiny guest (built locally on first use).")
@click.option("--dirty", metavar="SIZE_MIB,RATE_MIB_S",
              help="With --lab-guest: the guest rewrites and checks SIZE MiB at RATE MiB/s (0 = flat out).")
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True)
@click.option("--start", is_flag=True, help="Start it after defining it.")
@click.option("--wait-boot", is_flag=True, help="With --start: wait for the lab guest's boot marker.")
@json_option
@click.pass_context
@handle_errors
def vm_create(ctx, name, host_name, memory_mib, vcpus, disk, boot, lab_guest, dirty, accel, start, wait_boot,
              as_json) -> None:
    """Define a VM (the virt-install equivalent), optionally start it."""
    check_name(name, "VM name")
    if bool(boot) == bool(lab_guest):
        raise UsageError("give exactly one of --boot or --lab-guest")
    if dirty and not lab_guest:
        raise UsageError("--dirty needs --lab-guest")
    if lab_guest:
        from ..lab.guest_image import build_guest_image

        image = build_guest_image(paths.cache_dir() / "guest")
        kernel, initrd, cmdline = str(image.kernel), str(image.initrd), image.cmdline
        if dirty:
            size_mib, rate = _dirty(dirty, memory_mib)
            cmdline = image.cmdline_with_dirtier(size_mib, rate)
    else:
        b = _key_values(boot, "--boot", {"kernel", "initrd", "cmdline"})
        if "kernel" not in b:
            raise UsageError("--boot needs kernel=PATH")
        kernel, initrd, cmdline = b["kernel"], b.get("initrd", ""), b.get("cmdline", "")
    d = _key_values(disk, "--disk", {"size", "pool", "format"}) if disk else {}
    if disk and "size" not in d:
        raise UsageError("--disk needs size=SIZE")
    spec = VmSpec(name=name, kernel=kernel, initrd=initrd, cmdline=cmdline, memory_mib=memory_mib, vcpus=vcpus,
                  disk_size=parse_size(d["size"], "disk size") if d else None, disk_pool=d.get("pool", "default"),
                  disk_format=d.get("format", "qcow2"), accel=accel)
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    with journal.record("vm.create", target=f"{host.name}/{name}", memory_mib=memory_mib, vcpus=vcpus,
                        disk=disk, start=start) as entry:
        dom, created = conns.call(host, lambda c: create_vm(c, host, spec))
        result = vars(created)
        if start:
            try:
                result.update(conns.call(host, lambda c: lifecycle.start(dom, wait_boot=wait_boot)))
            except BaseException:
                # A VM that did not start is not left behind half-made.
                lifecycle.undefine(dom, remove_storage=True)
                raise
        entry.result = result
    if as_json:
        emit_json(result)
    else:
        console.print(f"VM {name} defined on {host.name} ({created.domain_type})"
                      + (f", disk {created.disk}" if created.disk else "")
                      + (f"; booted in {result['boot_seconds']} s (boot id {result['boot_id']})" if "boot_id" in result
                         else "; started" if start else ""), highlight=False)


@vm.command("clone")
@click.argument("source")
@click.argument("new_name")
@click.option("--host", "host_name", required=True)
@click.option("--pool", help="Pool for the copied disks (default: the source disk's pool).")
@click.option("--allow-running", is_flag=True, help="Clone a running guest (its disks are only crash-consistent).")
@json_option
@click.pass_context
@handle_errors
def vm_clone(ctx, source, new_name, host_name, pool, allow_running, as_json) -> None:
    """Full clone: disks copied (qemu-img through libvirt), new name, UUID and MACs."""
    from ..vm.clone import clone_vm

    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    with journal.record("vm.clone", target=f"{host.name}/{source}->{new_name}", pool=pool) as entry, \
            progress(not as_json):
        cloned = conns.call(host, lambda c: clone_vm(c, host, source, new_name, pool, allow_running))
        entry.result = vars(cloned)
    if as_json:
        emit_json(vars(cloned))
    else:
        console.print(f"{new_name} cloned from {source} on {host.name}: disks {', '.join(cloned.disks) or '-'}",
                      highlight=False)


def _simple(action: str, fn, doc: str, extra_options=()):
    @click.argument("name")
    @click.option("--host", "host_name", required=True)
    @json_option
    @click.pass_context
    @handle_errors
    def command(ctx, name, host_name, as_json, **kwargs):
        inv = context.inventory(ctx)
        host = inv.get(host_name)
        conns = context.connections(ctx)
        with journal.record(f"vm.{action}", target=f"{host.name}/{name}", **kwargs) as entry:
            dom = conns.call(host, lambda c: lifecycle.find_domain(c, host, name))
            result = conns.call(host, lambda c: fn(dom, **kwargs))
            entry.result = result
        if as_json:
            emit_json({"host": host.name, "vm": name, "action": action, "result": result})
        else:
            console.print(f"{action}: {name} on {host.name}" + (f" -> {result}" if result else ""), highlight=False)

    command.__doc__ = doc
    for opt in extra_options:
        command = opt(command)
    vm.command(action)(command)


_simple("start", lifecycle.start, "Start a VM (--wait-boot waits for the lab guest's boot marker).",
        [click.option("--wait-boot", is_flag=True)])
_simple("destroy", lambda dom: lifecycle.destroy(dom), "Power a VM off at once.")
_simple("undefine", lifecycle.undefine, "Remove a stopped VM's definition (--remove-storage: its volumes too).",
        [click.option("--remove-storage", is_flag=True)])
