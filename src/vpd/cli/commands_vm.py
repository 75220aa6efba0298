"""`vpd vm ...`: parse, call vpd.vm.operations, render. No libvirt calls, no domain rules here."""
from __future__ import annotations

import click
from click.core import ParameterSource

from ..core.errors import UsageError
from ..ops import require_an_answer
from ..vm import operations as vm_ops
from ..vm.inventory import list_vms
from .command import command, host_option, say
from .main import LazyGroup, LocalPath, cli
from .render import err_console, table


@cli.group(cls=LazyGroup, lazy={"disk": ("commands_vm_disk",), "iface": ("commands_vm_iface",),
                                 "bond": ("commands_vm_bond",),
                                 **dict.fromkeys(("ip", "exec", "fs", "ssh", "seed-remove"), ("commands_vm_guest",))})
def vm() -> None:
    """Virtual machines on the inventory's hosts."""


def _render_list(per_host) -> None:
    table("VMs", ["host", "name", "state", "vCPUs", "memory MiB", "persistent"],
          [[v["host"], v["name"], v["state"], v["vcpus"], v["memory_mib"], "yes" if v["persistent"] else "no"]
           for h in per_host["hosts"] for v in h["vms"]])
    for h in per_host["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")


@command(vm, "list", render=_render_list, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
@click.option("--all", "include_inactive", is_flag=True, help="Include VMs that are not running.")
def vm_list(session, names, include_inactive: bool):
    """All VMs of all hosts (one bulk-stats call per host)."""
    per_host = list_vms(session.conns, session.hosts(names), include_inactive)
    return require_an_answer({"hosts": [{"host": h.host, "error": h.error, "vms": [v.to_dict() for v in h.vms]}
                                        for h in per_host]}, [h.error for h in per_host])


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


def _render_created(result: dict) -> None:
    if "template" in result:
        say(f"VM {result['name']} created on {result['host']} from template {result['template']}"
            f" ({'linked' if result['linked'] else 'full'} clone), disks {', '.join(result['disks']) or '-'}"
            + ("; started" if result.get("started") else ""))
        if result.get("seed"):
            say(f"  hostname {result['hostname']}" + (f", address {result['ip']}" if result.get("ip") else "")
                + f"; cloud-init seed {result['seed']}")
        for note in result.get("notes") or []:
            say(f"  note: {note}", "yellow")
        return
    say(f"VM {result['name']} defined on {result['host']} ({result['domain_type']})"
        + (f", disks {', '.join(result['disks'])}" if result["disks"] else "")
        + (f", MACs {', '.join(result['macs'])}" if result["macs"] else "")
        + (f"; booted in {result['boot_seconds']} s (boot id {result['boot_id']})" if "boot_id" in result
           else "; started" if result.get("started") else ""))
    if result.get("cdroms"):
        say(f"  CD-ROM {', '.join(result['cdroms'])}" + ("" if result.get("install") else " (boots first)"))
    if result.get("seed"):
        say(f"  cloud-init seed {result['seed']} (read-only CD-ROM, label cidata)")
    _render_install(result)
    if result.get("graphics"):
        g = result["graphics"]
        say(f"  {g['type'].upper()} on {g['listen']}, password {g['password']} (shown only now); "
            f"`vpd vm display {result['name']}` once it runs")
    for note in result.get("notes") or []:
        say(f"  note: {note}", "yellow")


def _render_install(result: dict) -> None:
    if result.get("install"):
        i = result["install"]
        say(f"  installer ({i['layout']} layout): kernel {i['kernel']}, initrd {i['initrd']}, "
            f"command line {i['cmdline']!r}")
    if result.get("firmware"):
        f = result["firmware"]
        say("  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in f.items() if v))


def customise_options(fn):
    """The options that give a clone its own cloud-init seed (vm clone, vm create --template)."""
    for opt in reversed([
        click.option("--hostname", help="The clone's host name (with --count: numbered, H-1, H-2...)."),
        click.option("--ip", metavar="A/P", help="A static address for the first NIC, matched by its MAC "
                                                 "(with --count: counted up from A); checked free and in the "
                                                 "network's subnet, outside its DHCP range."),
        click.option("--gateway", metavar="G", help="With --ip: the default gateway."),
        click.option("--dns", metavar="D", multiple=True, help="With --ip: a DNS server (repeatable)."),
        click.option("--user", help="A user with sudo, created at first boot."),
        click.option("--ssh-key", "ssh_key_file", type=LocalPath(dir_okay=False), metavar="FILE.pub",
                     help="Public key(s) to log in with (the --user's, else the image's default user's)."),
    ]):
        fn = opt(fn)
    return fn


def _customise(hostname, ip, gateway, dns, user, ssh_key_file) -> dict | None:
    given = {"hostname": hostname, "ip": ip, "gateway": gateway, "dns": tuple(dns), "user": user,
             "ssh_key_file": ssh_key_file}
    return {k: v for k, v in given.items() if v} or None


@command(vm, "create", render=_render_created)
@click.argument("name", required=False)
@click.option("--host", "host_name", help="Host to create it on (or `host` in the spec file).")
@click.option("--spec", "spec_file", type=LocalPath(dir_okay=False),
              help="A TOML file with the same settings as the flags (see the docs of vpd.vm.spec).")
@click.option("--memory", "memory_mib", type=int,
              help="Memory in MiB [default: what --os-variant recommends, else 128].")
@click.option("--vcpus", default=1, show_default=True, type=int)
@click.option("--disk", "disks", multiple=True,
              help="size=SIZE[,pool=POOL][,format=qcow2|raw][,bus=ide|virtio|sata|scsi] or import=IMAGE[,pool=..]"
                   " (repeatable), e.g. size=64M,pool=CONT_VOL_COMP")
@click.option("--import", "import_image", help="Boot an existing image on the host (copied into --disk's pool "
                                               "or 'default' unless it is already a pool volume).")
@click.option("--network", "networks", multiple=True,
              help="network=NAME or bridge=NAME, then [,mac=MAC][,model=virtio|e1000...] (repeatable).")
@click.option("--boot", help="kernel=PATH[,initrd=PATH][,cmdline=...] (direct kernel boot), and/or uefi "
                             "(OVMF firmware, NVRAM per VM), e.g. --boot uefi")
@click.option("--os-variant", help="An osinfo-db short id (debian11, rhel9.0, win11, generic... as `osinfo-query os` "
                                   "lists): recommended memory, disk bus and NIC model; warns below its minimums.")
@click.option("--cdrom", metavar="ISO", help="Install from an ISO: a file on the host or a pool volume POOL/VOLUME; "
                                            "the VM boots it first, then its disk (give one with --disk size=...).")
@click.option("--graphics", type=click.Choice(["none", "vnc", "spice"]), default="none", show_default=True,
              help="A graphical display on the host's loopback with a random password, shown once "
                   "(`vpd vm display` tells how to reach it).")
@click.option("--video", type=click.Choice(["vga", "virtio", "qxl", "bochs", "cirrus", "ramfb", "none"]),
              help="Video card model (default: libvirt's, when there is a display).")
@click.option("--cloud-init", "cloud_init",
              help="user=NAME,ssh-key=FILE.pub,hostname=H,password-hash=HASH (any of them): a NoCloud seed ISO "
                   "(label cidata) uploaded next to the first disk and attached read-only.")
@click.option("--cloud-init-file", type=LocalPath(dir_okay=False), help="Your own user-data (#cloud-config) instead.")
@click.option("--network-config", type=LocalPath(dir_okay=False),
              help="With --cloud-init(-file): a network-config file (version 1 or 2).")
@click.option("--bond", help="A bond inside the guest over its NICs (named eth0.. after the order of --network): "
                             "NAME:mode=M,ports=all|eth0+eth1[,miimon=100][,primary=eth0][,addr=A/P|dhcp]"
                             "[,xmit_hash_policy=H][,lacp_rate=R]; told to the lab guest on its command line, "
                             "to a --cloud-init guest in its network-config.")
@click.option("--location", metavar="ISO|DIR", help="Install tree on the host (an ISO, read without mounting it, "
                                                   "or a directory): its installer kernel and initrd are booted "
                                                   "directly; an ISO is also attached as the CD-ROM.")
@click.option("--extra-args", help="With --location: the installer's kernel command line, e.g. console=ttyS0.")
@click.option("--arch", help="Guest architecture (x86_64, i686, aarch64...), checked against the host's libvirt.")
@click.option("--cpu", help="host-model, host-passthrough (KVM only) or a CPU model (qemu64, EPYC...) the host "
                            "can give.")
@click.option("--lab-guest", is_flag=True, help="Boot the lab's tiny guest (built locally on first use).")
@click.option("--debian-guest", is_flag=True,
              help="Boot vpd's minimal Debian 12 (systemd, sshd, cloud-init, guest agent; built by the set-up): "
                   "its image is copied as the first disk into the pool of --disk (else `default`).")
@click.option("--iperf3", is_flag=True, help="With --lab-guest: put iperf3 and its libraries in the guest (about "
                                              "8 MiB more RAM), for `vpd net perf`.")
@click.option("--dirty", metavar="SIZE_MIB,RATE_MIB_S",
              help="With --lab-guest: the guest rewrites and checks SIZE MiB at RATE MiB/s (0 = flat out).")
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True)
@click.option("--start", is_flag=True, help="Start it after defining it.")
@click.option("--wait-boot", is_flag=True, help="With --start: wait for the lab guest's boot marker.")
@click.option("--template", help="Clone this template (on the same host) instead of defining from scratch.")
@click.option("--linked", is_flag=True, help="With --template: a linked clone (qcow2 overlay on its disks).")
@customise_options
def vm_create(session, name, host_name, spec_file, memory_mib, vcpus, disks, import_image, networks, boot, os_variant,
              cdrom, graphics, video, cloud_init, cloud_init_file, network_config, location, extra_args, arch, cpu,
              bond, lab_guest, debian_guest, iperf3, dirty, accel, start, wait_boot, template, linked, hostname, ip,
              gateway, dns, user, ssh_key_file):
    """Define a VM (the virt-install equivalent) or clone a template, optionally start it."""
    from ..vm.spec import VmRequest, load_request

    customise = _customise(hostname, ip, gateway, dns, user, ssh_key_file)
    if template and cloud_init:
        # The same keys as a new VM's seed, spelt as vm create spells them: they customise the clone.
        ci = _key_values(cloud_init, "--cloud-init", {"user", "ssh-key", "hostname"})
        customise = {**(customise or {}), **{{"ssh-key": "ssh_key_file"}.get(k, k): v for k, v in ci.items()}}
        cloud_init = None
    if customise and not template:
        raise UsageError(f"{', '.join('--' + k.replace('_file', '').replace('_', '-') for k in customise)} "
                         "customise a clone: they go with --template",
                         hint="a new VM takes --cloud-init user=...,ssh-key=...,hostname=... and --network-config")

    ctx = click.get_current_context()
    hardware = {"memory_mib": "--memory", "vcpus": "--vcpus", "disks": "--disk", "dirty": "--dirty",
                "accel": "--accel", "import_image": "--import", "networks": "--network", "boot": "--boot",
                "os_variant": "--os-variant", "lab_guest": "--lab-guest", "debian_guest": "--debian-guest",
                "cdrom": "--cdrom",
                "graphics": "--graphics", "video": "--video", "cloud_init": "--cloud-init",
                "cloud_init_file": "--cloud-init-file", "network_config": "--network-config",
                "location": "--location", "extra_args": "--extra-args", "arch": "--arch", "cpu": "--cpu",
                "bond": "--bond", "iperf3": "--iperf3"}
    given = [flag for param, flag in hardware.items() if ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE
             and not (param == "cloud_init" and template)]
    if template:
        # The template fixes the hardware: options that would silently be ignored are refused.
        if given or spec_file:
            raise UsageError(f"{', '.join(given) or '--spec'} cannot go with --template: "
                             "the template fixes the hardware")
        if not name or not host_name:
            raise UsageError("--template needs NAME and --host")
        return vm_ops.create_from_template(session, name, host_name, template, linked, start, wait_boot,
                                           customise=customise)
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
        boot_request, firmware = _boot_request(boot) if boot else (None, None)
        request = VmRequest(
            memory=memory_mib, vcpus=vcpus, accel=accel, os_variant=os_variant, lab_guest=lab_guest,
            debian_guest=debian_guest, iperf3=iperf3,
            boot=boot_request, firmware=firmware, location=location, extra_args=extra_args, arch=arch, cpu=cpu,
            disks=[_disk_request(text) for text in disks] + ([_disk_request(f"import={import_image}")]
                                                              if import_image else []),
            networks=[_nic_request(text) for text in networks], cdrom=cdrom, graphics=graphics, video=video,
            cloud_init=_cloud_init_request(cloud_init, cloud_init_file, network_config), bond=bond)
        if import_image:  # the imported image boots: it goes first
            request.disks.insert(0, request.disks.pop())
    if not name:
        raise UsageError("give the VM's NAME (or `name` in the spec file)")
    if not host_name:
        raise UsageError("give --host (or `host` in the spec file)")
    if sum(map(bool, (request.boot, request.lab_guest, request.debian_guest))) > 1:
        raise UsageError("give only one of --boot kernel=..., --lab-guest or --debian-guest")
    if request.location and (request.boot or request.lab_guest or request.debian_guest):
        raise UsageError("--location boots the installer's kernel: it cannot go with --boot kernel=..., "
                         "--lab-guest or --debian-guest")
    if request.debian_guest and any(d.import_ for d in request.disks):
        raise UsageError("--import cannot go with --debian-guest: the Debian image is the first disk")
    if not (request.boot or request.lab_guest or request.debian_guest or request.disks or request.cdrom
            or request.location):
        raise UsageError("nothing to boot: give --boot kernel=..., --lab-guest, --debian-guest, --import, --cdrom, "
                         "--location or --template")
    if request.video and request.graphics == "none":
        raise UsageError("--video needs --graphics vnc|spice")
    if dirty and not request.lab_guest:
        raise UsageError("--dirty needs --lab-guest")
    if request.iperf3 and not request.lab_guest:
        raise UsageError("--iperf3 needs --lab-guest (other guests install iperf3 as their OS does)")
    request.guest_bond()  # checked here too, so a bad --bond is refused before any host is reached
    return vm_ops.create(session, name, host_name, request, start=start, wait_boot=wait_boot,
                         dirty=_dirty(dirty, request.memory or 128) if dirty else None, spec_file=spec_file)


def _cloud_init_request(text: str | None, user_data: str | None, network_config: str | None):
    from ..vm.spec import CloudInitRequest

    if text is None and user_data is None:
        if network_config is not None:
            raise UsageError("--network-config goes with --cloud-init or --cloud-init-file")
        return None
    keys = {"user": "user", "ssh-key": "ssh_key_file", "hostname": "hostname", "password-hash": "password_hash"}
    given = _key_values(text, "--cloud-init", set(keys)) if text else {}
    return CloudInitRequest(**{keys[k]: v for k, v in given.items()}, user_data_file=user_data,
                            network_config_file=network_config)


def _boot_request(text: str):
    """(BootRequest or None, firmware or None): `uefi` (or `bios`) may stand alone or lead the list."""
    from ..vm.spec import BootRequest

    firmware, sep, rest = text.partition(",")
    if firmware not in ("uefi", "bios"):
        firmware, rest = None, text
    if not rest:
        return None, firmware
    b = _key_values(rest, "--boot", {"kernel", "initrd", "cmdline"})
    if "kernel" not in b:
        raise UsageError("--boot needs kernel=PATH (or uefi)")
    return BootRequest(**b), firmware


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


def _render_clones(result: dict) -> None:
    clones = result.get("clones", [result])
    for c in clones:
        say(f"{c['name']} {'linked to' if c.get('linked') else 'cloned from'} {c['source']} on {c['host']}: "
            f"disks {', '.join(c['disks']) or '-'}, MACs {', '.join(c['macs']) or '-'}")
        if c.get("seed"):
            say(f"  hostname {c['hostname']}" + (f", address {c['ip']}" if c.get("ip") else "")
                + f"; cloud-init seed {c['seed']}")
    for note in (clones[0].get("notes") if clones else None) or []:
        say(f"  note: {note}", "yellow")


@command(vm, "clone", render=_render_clones)
@click.argument("source")
@click.argument("new_name")
@host_option()
@click.option("--pool", help="Pool for the copied disks (default: the source disk's pool).")
@click.option("--allow-running", is_flag=True,
              help="Clone a running or paused guest: libvirt's backup job copies its disks as of one instant "
                   "(crash-consistent, as after a power cut).")
@click.option("--linked", is_flag=True,
              help="Linked clone: qcow2 overlays on the source's disks; the source then stays shut off.")
@click.option("--count", type=int, help="Make N clones, named NEW-1..NEW-N.")
@click.option("--mac", help="MAC address of the clone's first NIC (unicast, unique on every host).")
@customise_options
def vm_clone(session, source, new_name, host_ref, pool, allow_running, linked, count, mac, hostname, ip, gateway, dns,
             user, ssh_key_file):
    """Full clone (disks copied by qemu-img through libvirt) or linked clone; new name, UUID and MACs.
    With --hostname/--ip/--user/--ssh-key each clone gets its own cloud-init seed (a new instance-id),
    so a guest with cloud-init becomes a new machine at its first boot."""
    from ..vm.clone import clone_names

    names = clone_names(new_name, count)
    clones = vm_ops.clone(session, source, names, host_ref, pool, allow_running, linked, mac,
                          customise=_customise(hostname, ip, gateway, dns, user, ssh_key_file))
    for c in clones:
        c.update(source=source, linked=linked)
    return clones[0] if count is None else {"clones": clones}


def _render_action(result: dict) -> None:
    say(f"{result['action']}: {result['vm']} on {result['host']}"
        + (f" -> {result['result']}" if result["result"] else ""))


def _action(action: str, doc: str, extra_options=()):
    def run(session, name, host_ref, **options):
        return vm_ops.act(session, action, name, host_ref, **options)

    run.__doc__ = doc
    run.__name__ = f"vm_{action}"
    for opt in extra_options:
        run = opt(run)
    run = host_option()(click.argument("name")(run))
    command(vm, action, render=_render_action)(run)


_action("start", "Start a VM (--wait-boot waits for the lab guest's boot marker). Templates and VMs that linked "
                 "clones are based on are refused.",
        [click.option("--wait-boot", is_flag=True)])
_action("destroy", "Power a VM off at once.")
_action("undefine", "Remove a stopped VM's definition (--remove-storage: its volumes too, unless linked clones use "
                    "them).",
        [click.option("--remove-storage", is_flag=True)])
_action("shutdown", "Graceful (ACPI) shutdown, waiting until the VM is shut off; --force powers it off after "
                    "--timeout.",
        [click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait."),
         click.option("--force", is_flag=True, help="Power off (destroy) if the guest has not shut down in time.")])
_action("reboot", "Ask the guest to reboot.")
_action("pause", "Pause a running VM (its vCPUs stop; memory stays).")
_action("resume", "Resume a paused VM.")
_action("autostart", "Start the VM when its host's libvirt starts (--disable: do not).",
        [click.option("--disable", is_flag=True)])


@command(vm, "tag", render=lambda r: say(f"{r['vm']} on {r['host']}: anti-affinity group "
                                          f"{r['anti_affinity'] or '(none)'}" + (f" (was {r['was']})" if r['was']
                                                                                 and r['was'] != r['anti_affinity']
                                                                                 else "")))
@click.argument("name")
@host_option()
@click.option("--anti-affinity", "group", metavar="GROUP",
              help="Keep this VM off hosts that run another VM of GROUP when vpd places it (drain, migrate --to "
                   "auto).")
@click.option("--no-anti-affinity", "clear", is_flag=True, help="Remove the VM from its anti-affinity group.")
def vm_tag(session, name, host_ref, group, clear):
    """Set the VM's placement tags (kept in its libvirt metadata, so they travel with it)."""
    if bool(group) == clear:
        raise UsageError("give one of --anti-affinity GROUP or --no-anti-affinity")
    return vm_ops.tag(session, name, host_ref, None if clear else group)


def _render_info(data: dict) -> None:
    for key in ("host", "name", "uuid", "state", "vcpus", "memory_mib", "max_memory_mib", "autostart", "persistent",
                "template"):
        say(f"{key:15} {data[key]}")
    if data["linked_clones"]:
        say(f"{'linked clones':15} {', '.join(data['linked_clones'])}")
    sec = data["security"]
    say(f"{'security model':15} {sec['model']}" + (f" (DOI {sec['doi']})" if sec["doi"] else ""))
    if sec["label"]:
        say(f"{'security label':15} {sec['label']} ({'enforcing' if sec['enforcing'] else 'permissive'})")
    table("disks", ["target", "device", "path", "format"],
          [[d["target"], d["device"], d["path"], d["format"]] for d in data["disks"]])
    table("interfaces", ["type", "source", "MAC", "model"],
          [[i["type"], i["source"], i["mac"], i["model"]] for i in data["interfaces"]])


@command(vm, "info", render=_render_info, bars=False, readonly=True)
@click.argument("name")
@host_option()
def vm_info(session, name, host_ref):
    """State, vCPUs, memory, disks, interfaces, autostart and persistence of a VM."""
    return vm_ops.info(session, name, host_ref)


@command(vm, "dumpxml", render=lambda r: click.echo(r["xml"], nl=not r["xml"].endswith("\n")),
         bars=False, readonly=True)
@click.argument("name")
@host_option()
@click.option("--inactive", is_flag=True, help="The persistent definition, not the running one.")
def vm_dumpxml(session, name, host_ref, inactive):
    """The VM's libvirt XML."""
    return vm_ops.dumpxml(session, name, host_ref, inactive)


@command(vm, "define", render=lambda r: say(f"VM {r['name']} {'redefined' if r['replaced'] else 'defined'} on "
                                              f"{r['host']}"))
@click.argument("file", type=click.File("r"))
@click.option("--host", "host_name", required=True)
@click.option("--replace", is_flag=True, help="Update the definition of an existing VM of that name.")
def vm_define(session, file, host_name, replace):
    """Define a VM from a libvirt XML file, checked first (name, structure)."""
    return vm_ops.define(session, file.read(), host_name, replace, source=file.name)


def _render_edit(r: dict) -> None:
    if not r["changed"]:
        say(f"{r['name']}: no changes")
    else:
        say(f"{r['name']} on {r['host']}: definition updated, applies {r['applies']}")


@command(vm, "edit", render=_render_edit, bars=False)
@click.argument("name")
@host_option()
def vm_edit(session, name, host_ref):
    """Edit the VM's definition in $EDITOR (virsh edit), validated before it is applied."""
    located, before = vm_ops.editable_xml(session, name, host_ref)
    edited = click.edit(before, extension=".xml", require_save=True)
    if edited is None or edited == before:
        return {"host": located.host.name, "name": name, "changed": False}
    return vm_ops.apply_edit(session, located, edited)


def _render_display(r: dict) -> None:
    if r.get("opened"):
        say(f"{r['viewer']} showed the {r['type'].upper()} display of {r['vm']} on {r['host']}"
            + (" through an SSH tunnel" if r["tunnel"] else "") + f"; it exited with {r['viewer_exit']}")
        return
    if r["port"] is None:
        say(f"{r['vm']} on {r['host']}: {r['type'].upper()} on {r['listen']}, no port until it runs "
            f"(`vpd vm start {r['vm']}`)")
        return
    say(f"{r['uri']}  ({r['type'].upper()} of {r['vm']} on {r['host']}, listening on {r['listen']})")
    if r["tunnel"]:
        say(f"it listens on the host's loopback only: tunnel with\n  {r['tunnel']}\nthen open {r['local_uri']}")
    if r.get("reason"):
        say(f"not opened: {r['reason']}; {r['hint']}", "yellow")


@command(vm, "display", render=_render_display, bars=False, readonly=True)
@click.argument("name")
@host_option()
@click.option("--open", "open_viewer", is_flag=True,
              help="Start remote-viewer (virt-viewer) on it through an SSH tunnel, and wait until it is closed; "
                   "without remote-viewer, print the tunnel and how to install it.")
def vm_display(session, name, host_ref, open_viewer):
    """The VM's VNC/SPICE URI, and the SSH tunnel that reaches a display on the host's loopback."""
    if open_viewer:
        from ..vm.viewer import open_display

        return open_display(session, name, host_ref)
    return vm_ops.display(session, name, host_ref)


@command(vm, "console", render=lambda r: click.echo(r["output"], nl=False), bars=False, readonly=True)
@click.argument("name")
@host_option()
@click.option("--log", "log", is_flag=True, help="Print what the guest wrote on serial0 (its history) and exit.")
@click.option("--lines", type=click.IntRange(1, 1_000_000), help="With --log: only the last N lines.")
def vm_console(session, name, host_ref, log, lines):
    """Attach to the guest's serial console (Ctrl-] detaches), or print its history with --log."""
    if not log:
        if click.get_current_context().params.get("as_json"):
            raise UsageError("--json goes with --log (an attached console is interactive)")
        from ..vm.console import attach

        located = vm_ops.locate(session, name, host_ref)
        err_console.print(f"attached to {name} on {located.host.name}; Ctrl-] detaches", highlight=False, markup=False)
        attach(located.domain)
        return None
    return vm_ops.console_log(session, name, host_ref, lines)
