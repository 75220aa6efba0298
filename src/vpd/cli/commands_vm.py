from __future__ import annotations

import click
import libvirt
from click.core import ParameterSource

from ..core import journal, paths
from ..core.errors import UsageError
from ..core.names import check_name
from ..vm import lifecycle
from ..vm.create import create_vm
from ..vm.inventory import list_vms
from . import context
from .main import cli, handle_errors, json_option
from .render import console, emit_json, err_console, progress, table


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
@click.argument("name", required=False)
@click.option("--host", "host_name", help="Host to create it on (or `host` in the spec file).")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False),
              help="A TOML file with the same settings as the flags (see the docs of vpd.vm.spec).")
@click.option("--memory", "memory_mib", default=128, show_default=True, type=int, help="Memory in MiB.")
@click.option("--vcpus", default=1, show_default=True, type=int)
@click.option("--disk", "disks", multiple=True,
              help="size=SIZE[,pool=POOL][,format=qcow2|raw][,bus=ide|virtio|sata|scsi] or import=IMAGE[,pool=..]"
                   " (repeatable), e.g. size=64M,pool=CONT_VOL_COMP")
@click.option("--import", "import_image", help="Boot an existing image on the host (copied into --disk's pool "
                                               "or 'default' unless it is already a pool volume).")
@click.option("--network", "networks", multiple=True,
              help="network=NAME or bridge=NAME, then [,mac=MAC][,model=virtio|e1000...] (repeatable).")
@click.option("--boot", help="kernel=PATH[,initrd=PATH][,cmdline=...] (direct kernel boot)")
@click.option("--os-variant", help="OS family and version (debian12, rhel9, win11, generic...): picks disk bus and "
                                   "NIC model defaults.")
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
def vm_create(ctx, name, host_name, spec_file, memory_mib, vcpus, disks, import_image, networks, boot, os_variant,
              lab_guest, dirty, accel, start, wait_boot, template, linked, as_json) -> None:
    """Define a VM (the virt-install equivalent) or clone a template, optionally start it."""
    from ..vm.spec import VmRequest, load_request

    hardware = {"memory_mib": "--memory", "vcpus": "--vcpus", "disks": "--disk", "dirty": "--dirty",
                "accel": "--accel", "import_image": "--import", "networks": "--network", "boot": "--boot",
                "os_variant": "--os-variant", "lab_guest": "--lab-guest"}
    given = [flag for param, flag in hardware.items() if ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE]
    if template:
        # The template fixes the hardware: options that would silently be ignored are refused.
        if given or spec_file:
            raise UsageError(f"{', '.join(given) or '--spec'} cannot go with --template: the template fixes the hardware")
        if not name or not host_name:
            raise UsageError("--template needs NAME and --host")
        _create_from_template(ctx, check_name(name, "VM name"), host_name, template, linked, start, wait_boot, as_json)
        return
    if linked:
        raise UsageError("--linked needs --template")
    if spec_file:
        if given:
            raise UsageError(f"{', '.join(given)} cannot go with --spec: put them in the file")
        request = load_request(spec_file)
        if name and request.name and name != request.name:
            raise UsageError(f"NAME {name!r} differs from name {request.name!r} in {spec_file}")
        if host_name and request.host and host_name != request.host:
            raise UsageError(f"--host {host_name!r} differs from host {request.host!r} in {spec_file}")
        name, host_name = name or request.name, host_name or request.host
        start, wait_boot = start or request.start, wait_boot or request.wait_boot
    else:
        request = VmRequest(
            memory=memory_mib, vcpus=vcpus, accel=accel, os_variant=os_variant, lab_guest=lab_guest,
            boot=_boot_request(boot) if boot else None,
            disks=[_disk_request(text) for text in disks] + ([_disk_request(f"import={import_image}")]
                                                              if import_image else []),
            networks=[_nic_request(text) for text in networks])
        if import_image:  # the imported image boots: it goes first
            request.disks.insert(0, request.disks.pop())
    if not name:
        raise UsageError("give the VM's NAME (or `name` in the spec file)")
    if not host_name:
        raise UsageError("give --host (or `host` in the spec file)")
    check_name(name, "VM name")
    if sum(map(bool, (request.boot, request.lab_guest))) > 1:
        raise UsageError("give only one of --boot or --lab-guest")
    if not (request.boot or request.lab_guest or request.disks):
        raise UsageError("nothing to boot: give --boot, --lab-guest, --import or --template")
    if dirty and not request.lab_guest:
        raise UsageError("--dirty needs --lab-guest")
    kernel = initrd = None
    cmdline = ""
    if request.lab_guest:
        from ..vm.guest_image import build_guest_image

        image = build_guest_image(paths.cache_dir() / "guest")
        kernel, initrd, cmdline = str(image.kernel), str(image.initrd), image.cmdline
        if dirty:
            size_mib, rate = _dirty(dirty, request.memory)
            cmdline = image.cmdline_with_dirtier(size_mib, rate)
    spec = request.to_spec(name, kernel, initrd, cmdline)
    inv = context.inventory(ctx)
    host = inv.get(host_name)
    conns = context.connections(ctx)
    _refuse_disks_used_elsewhere(ctx, host, [d.import_image for d in spec.disks if d.import_image])
    with journal.record("vm.create", target=f"{host.name}/{name}", memory_mib=spec.memory_mib, vcpus=spec.vcpus,
                        disks=[vars(d) for d in spec.disks], nics=[vars(n) for n in spec.nics], start=start,
                        spec=spec_file) as entry, progress(not as_json):
        dom, created = conns.call(host, lambda c: create_vm(c, host, spec))
        result = vars(created)
        if start:
            result.update(conns.call(host, lambda c: lifecycle.start_new(dom, wait_boot=wait_boot)))
        entry.result = result
    if as_json:
        emit_json(result)
    else:
        console.print(f"VM {name} defined on {host.name} ({created.domain_type})"
                      + (f", disks {', '.join(created.disks)}" if created.disks else "")
                      + (f", MACs {', '.join(created.macs)}" if created.macs else "")
                      + (f"; booted in {result['boot_seconds']} s (boot id {result['boot_id']})" if "boot_id" in result
                         else "; started" if start else ""), highlight=False)


def _refuse_disks_used_elsewhere(ctx, host, images: list[str]) -> None:
    """A shared pool's image may be another host's VM disk: two guests writing one image destroy it."""
    from ..core.errors import VpdError
    from ..vm.inventory import disk_users

    if not images:
        return
    conns = context.connections(ctx)
    for other in context.inventory(ctx).hosts:
        if other.name == host.name:
            continue
        try:
            users = conns.call(other, disk_users)
        except VpdError:
            continue  # an unreachable host cannot be asked: vpd checks the hosts it can reach
        for image in images:
            if image in users:
                raise UsageError(f"{image} is the disk of VM {users[image]} on {other.name}",
                                 hint="clone that VM instead (vpd vm clone)")


def _boot_request(text: str):
    from ..vm.spec import BootRequest

    b = _key_values(text, "--boot", {"kernel", "initrd", "cmdline"})
    if "kernel" not in b:
        raise UsageError("--boot needs kernel=PATH")
    return BootRequest(**b)


def _disk_request(text: str):
    from ..vm.spec import DiskRequest

    d = _key_values(text, "--disk", {"size", "pool", "format", "bus", "import"})
    if ("size" in d) == ("import" in d):
        raise UsageError(f"--disk {text!r}: give size=SIZE for a new disk or import=IMAGE")
    return DiskRequest.model_validate(d)


def _nic_request(text: str):
    from ..vm.spec import NicRequest

    n = _key_values(text, "--network", {"network", "bridge", "mac", "model"})
    if ("network" in n) == ("bridge" in n):
        raise UsageError(f"--network {text!r}: give network=NAME or bridge=NAME")
    return NicRequest(**n)


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


@vm.command("edit")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@json_option
@click.pass_context
@handle_errors
def vm_edit(ctx, name, host_name, as_json) -> None:
    """Edit the VM's definition in $EDITOR (virsh edit), validated before it is applied."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    dom = conns.call(host, lambda c: lifecycle.find_domain(c, host, name))
    before = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    edited = click.edit(before, extension=".xml", require_save=True)
    if edited is None or edited == before:
        result = {"host": host.name, "name": name, "changed": False}
    else:
        with journal.record("vm.edit", target=f"{host.name}/{name}") as entry:
            try:
                result = {"host": host.name, **conns.call(host, lambda c: lifecycle.apply_edit(dom, host, edited)),
                          "changed": True}
            except UsageError as exc:
                # Never lose the user's work: the rejected text stays in a file they can fix and `vm define`.
                kept = paths.state_dir() / "rejected-edits" / f"{host.name}-{name}.xml"
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(edited)
                exc.hint = f"your edit is kept in {kept}; fix it and run `vpd vm define {kept} --replace --host {host.name}`"
                raise
            entry.result = result
    if as_json:
        emit_json(result)
    elif not result["changed"]:
        console.print(f"{name}: no changes", highlight=False)
    else:
        console.print(f"{name} on {host.name}: definition updated, applies {result['applies']}", highlight=False)


@vm.command("console")
@click.argument("name")
@click.option("--host", "host_name", required=True)
@click.option("--log", "log", is_flag=True, help="Print what the guest wrote on serial0 (its history) and exit.")
@click.option("--lines", type=click.IntRange(1, 1_000_000), help="With --log: only the last N lines.")
@json_option
@click.pass_context
@handle_errors
def vm_console(ctx, name, host_name, log, lines, as_json) -> None:
    """Attach to the guest's serial console (Ctrl-] detaches), or print its history with --log."""
    host = context.inventory(ctx).get(host_name)
    conns = context.connections(ctx)
    dom = conns.call(host, lambda c: lifecycle.find_domain(c, host, name))
    if not log:
        if as_json:
            raise UsageError("--json goes with --log (an attached console is interactive)")
        from ..vm.console import attach

        err_console.print(f"attached to {name} on {host.name}; Ctrl-] detaches", highlight=False)
        attach(dom)
        return
    shown = conns.call(host, lambda c: lifecycle.console_log(dom, host, lines))
    if as_json:
        emit_json({"host": host.name, "vm": name, **shown})
    else:
        click.echo(shown["output"], nl=False)
