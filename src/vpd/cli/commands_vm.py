from __future__ import annotations

import click
import libvirt
from click.core import ParameterSource

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
@click.option("--template", help="Clone this template (on the same host) instead of defining from scratch.")
@click.option("--linked", is_flag=True, help="With --template: a linked clone (qcow2 overlay on its disks).")
@json_option
@click.pass_context
@handle_errors
def vm_create(ctx, name, host_name, memory_mib, vcpus, disk, boot, lab_guest, dirty, accel, start, wait_boot,
              template, linked, as_json) -> None:
    """Define a VM (the virt-install equivalent) or clone a template, optionally start it."""
    check_name(name, "VM name")
    if sum(map(bool, (boot, lab_guest, template))) != 1:
        raise UsageError("give exactly one of --boot, --lab-guest or --template")
    if linked and not template:
        raise UsageError("--linked needs --template")
    if template:
        # The template fixes the hardware: options that would silently be ignored are refused.
        options = {"memory_mib": "--memory", "vcpus": "--vcpus", "disk": "--disk", "dirty": "--dirty",
                   "accel": "--accel"}
        given = [flag for param, flag in options.items()
                 if ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE]
        if given:
            raise UsageError(f"{', '.join(given)} cannot go with --template: the template fixes the hardware")
        _create_from_template(ctx, name, host_name, template, linked, start, wait_boot, as_json)
        return
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
            result.update(conns.call(host, lambda c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        entry.result = result
    if as_json:
        emit_json(result)
    else:
        console.print(f"VM {name} defined on {host.name} ({created.domain_type})"
                      + (f", disk {created.disk}" if created.disk else "")
                      + (f"; booted in {result['boot_seconds']} s (boot id {result['boot_id']})" if "boot_id" in result
                         else "; started" if start else ""), highlight=False)


def _create_from_template(ctx, name, host_name, template, linked, start, wait_boot, as_json) -> None:
    from ..vm.clone import clone_vm
    from ..vm.template import find_template

    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record("vm.create", target=f"{host.name}/{name}", template=template, linked=linked,
                        start=start) as entry:
        conns.call(host, lambda c: find_template(c, host, template))
        cloned = conns.call(host, lambda c: clone_vm(c, host, template, name, linked=linked))
        result = {**vars(cloned), "template": template, "linked": linked}
        if start:
            dom = conns.call(host, lambda c: lifecycle.find_domain(c, host, name))
            result.update(conns.call(host, lambda c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        entry.result = result
    if as_json:
        emit_json(result)
    else:
        console.print(f"VM {name} created on {host.name} from template {template}"
                      f" ({'linked' if linked else 'full'} clone), disks {', '.join(cloned.disks) or '-'}"
                      + ("; started" if start else ""), highlight=False)


def _mac_unique_everywhere(ctx, mac: str) -> str:
    """A MAC given by hand must be unique on every host: VMs migrate, and hosts share networks."""
    from ..vm.clone import macs_in_use
    from ..xml.checks import require_unicast_mac

    mac = require_unicast_mac(mac, "MAC address")
    conns = context.connections(ctx)
    for h in context.inventory(ctx).hosts:
        if mac in conns.call(h, macs_in_use):
            raise UsageError(f"MAC {mac} is already in use on {h.name}")
    return mac


@vm.command("clone")
@click.argument("source")
@click.argument("new_name")
@click.option("--host", "host_name", required=True)
@click.option("--pool", help="Pool for the copied disks (default: the source disk's pool).")
@click.option("--allow-running", is_flag=True, help="Clone a running guest (its disks are only crash-consistent).")
@click.option("--linked", is_flag=True,
              help="Linked clone: qcow2 overlays on the source's disks; the source then stays shut off.")
@click.option("--count", type=int, help="Make N clones, named NEW-1..NEW-N.")
@click.option("--mac", help="MAC address of the clone's first NIC (unicast, unique on every host).")
@json_option
@click.pass_context
@handle_errors
def vm_clone(ctx, source, new_name, host_name, pool, allow_running, linked, count, mac, as_json) -> None:
    """Full clone (disks copied by qemu-img through libvirt) or linked clone; new name, UUID and MACs."""
    from ..vm.clone import clone_names, clone_vms

    names = clone_names(new_name, count)
    if mac is not None and len(names) > 1:
        raise UsageError("--mac names one NIC of one VM: it cannot go with --count")
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    if mac is not None:
        mac = _mac_unique_everywhere(ctx, mac)
    with journal.record("vm.clone", target=f"{host.name}/{source}->{','.join(names)}", pool=pool, linked=linked,
                        mac=mac) as entry, progress(not as_json):
        clones = conns.call(host, lambda c: clone_vms(c, host, source, names, pool, allow_running, linked, mac))
        entry.result = [vars(c) for c in clones]
    if as_json:
        emit_json(vars(clones[0]) if count is None else {"clones": [vars(c) for c in clones]})
    else:
        for c in clones:
            console.print(f"{c.name} {'linked to' if linked else 'cloned from'} {source} on {host.name}: "
                          f"disks {', '.join(c.disks) or '-'}, MACs {', '.join(c.macs) or '-'}", highlight=False)


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


_simple("start", lifecycle.start,
        "Start a VM (--wait-boot waits for the lab guest's boot marker). Templates and VMs that linked clones "
        "are based on are refused.",
        [click.option("--wait-boot", is_flag=True)])
_simple("destroy", lambda dom: lifecycle.destroy(dom), "Power a VM off at once.")
_simple("undefine", lifecycle.undefine,
        "Remove a stopped VM's definition (--remove-storage: its volumes too, unless linked clones use them).",
        [click.option("--remove-storage", is_flag=True)])
_simple("shutdown", lifecycle.shutdown,
        "Graceful (ACPI) shutdown, waiting until the VM is shut off; --force powers it off after --timeout.",
        [click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait."),
         click.option("--force", is_flag=True, help="Power off (destroy) if the guest has not shut down in time.")])
_simple("reboot", lifecycle.reboot, "Ask the guest to reboot.")
_simple("pause", lifecycle.pause, "Pause a running VM (its vCPUs stop; memory stays).")
_simple("resume", lifecycle.resume, "Resume a paused VM.")
_simple("autostart", lifecycle.set_autostart, "Start the VM when its host's libvirt starts (--disable: do not).",
        [click.option("--disable", is_flag=True)])


@vm.command("info")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def vm_info(ctx, name, host_name, as_json) -> None:
    """State, vCPUs, memory, disks, interfaces, autostart and persistence of a VM."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    data = conns.call(host, lambda c: lifecycle.info(lifecycle.find_domain(c, host, name)))
    if as_json:
        emit_json({"host": host.name, **data})
        return
    for key in ("name", "uuid", "state", "vcpus", "memory_mib", "max_memory_mib", "autostart", "persistent",
                "template"):
        console.print(f"{key:15} {data[key]}", highlight=False)
    if data["linked_clones"]:
        console.print(f"{'linked clones':15} {', '.join(data['linked_clones'])}", highlight=False)
    table("disks", ["target", "device", "path", "format"],
          [[d["target"], d["device"], d["path"], d["format"]] for d in data["disks"]])
    table("interfaces", ["type", "source", "MAC", "model"],
          [[i["type"], i["source"], i["mac"], i["model"]] for i in data["interfaces"]])


@vm.command("dumpxml")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--inactive", is_flag=True, help="The persistent definition, not the running one.")
@json_option
@click.pass_context
@handle_errors
def vm_dumpxml(ctx, name, host_name, inactive, as_json) -> None:
    """The VM's libvirt XML."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
    xml = conns.call(host, lambda c: lifecycle.find_domain(c, host, name).XMLDesc(flags))
    if as_json:
        emit_json({"host": host.name, "vm": name, "xml": xml})
    else:
        click.echo(xml, nl=not xml.endswith("\n"))


@vm.command("define")
@click.argument("file", type=click.File("r"))
@click.option("--host", "host_name", required=True)
@click.option("--replace", is_flag=True, help="Update the definition of an existing VM of that name.")
@json_option
@click.pass_context
@handle_errors
def vm_define(ctx, file, host_name, replace, as_json) -> None:
    """Define a VM from a libvirt XML file, checked first (name, structure)."""
    xml = file.read()
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    with journal.record("vm.define", target=f"{host.name}/{file.name}", replace=replace) as entry:
        result = conns.call(host, lambda c: lifecycle.define(c, host, xml, replace))
        entry.result = result
    if as_json:
        emit_json({"host": host.name, **result})
    else:
        console.print(f"VM {result['name']} {'redefined' if result['replaced'] else 'defined'} on {host.name}",
                      highlight=False)


@vm.command("console")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--log", "log", is_flag=True, help="Print what the guest writes on serial0 (for 1.5 s).")
@json_option
@click.pass_context
@handle_errors
def vm_console(ctx, name, host_name, log, as_json) -> None:
    """Show the guest's serial console output (an interactive console is `virsh console`)."""
    if not log:
        raise UsageError("vpd shows console output only: give --log", hint=f"interactive: virsh console {name}")
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    text = conns.call(host, lambda c: lifecycle.console_log(lifecycle.find_domain(c, host, name)))
    if as_json:
        emit_json({"host": host.name, "vm": name, "output": text})
    else:
        click.echo(text, nl=False)
