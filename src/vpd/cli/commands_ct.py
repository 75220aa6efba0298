"""`vpd ct ...`: system containers on the hosts' incusd (Práctica 1 §3, the seed's `lxc ...`).
Parse, call vpd.ct.operations, render. No Incus calls and no domain rules here."""
from __future__ import annotations

import os
import sys

import click

from ..core import steps
from ..core.errors import EXIT_INTERRUPTED, VpdError
from ..ct import checks, editing
from ..ct import operations as ct_ops
from ..ops import explain
from .command import EXPLAIN_HELP, command, declared_readonly, say, session_of
from .main import LocalPath, cli, json_option, report_error
from .render import emit_json, err_console, table

CT_HOST_HELP = "Host (inventory name, FQDN or address); default: wherever the container is."


def ct_host_option(help_text: str = CT_HOST_HELP):
    return click.option("--host", "host_ref", help=help_text)


@cli.group()
def ct() -> None:
    """System containers (Incus, LXD's successor) on the inventory's hosts."""


@ct.group("image")
def ct_image() -> None:
    """Container images: build the local busybox image, import, list, delete."""


@ct.group("file")
def ct_file() -> None:
    """Copy files into and out of a container (NAME/PATH, absolute, never outside it)."""


@ct.group("config")
def ct_config() -> None:
    """A container's configuration (hardware limits)."""


@ct.group("snapshot")
def ct_snapshot() -> None:
    """A container's snapshots: create, list, restore, delete."""


@ct.group("profile")
def ct_profile() -> None:
    """Profiles (configuration shared by containers) of a host's incusd."""


# --- engine -------------------------------------------------------------------------------

def _render_init(r: dict) -> None:
    what = "; ".join(r["changed"]) or "nothing to change"
    say(f"incusd on {r['host']}: pool {r['pool']}, bridge {r['bridge']} {r['subnet']} (no NAT): {what}")


@command(ct, "init", render=_render_init, bars=False)
@click.option("--host", "host_ref", required=True, help="Host whose incusd to set up.")
@click.option("--subnet", help="The container bridge's IPv4 subnet (default: a free one in 198.19.200-254.0/24).")
@click.option("--https-address", help="ADDR:PORT where other hosts reach this incusd (core.https_address).")
def ct_init(session, host_ref, subnet, https_address):
    """Set up a host's incusd (the seed's `lxd init --auto`, without NAT); idempotent."""
    return ct_ops.init(session, host_ref, subnet, https_address)


@command(ct, "trust", render=lambda r: say(f"incusd on {r['host']} ({r['endpoint']}) trusts vpd; its certificate "
                                           f"{r['server_fingerprint'][:16]}... is pinned"), bars=False)
@click.option("--host", "host_ref", required=True, help="Host whose incusd vpd reaches over HTTPS.")
@click.option("--token", required=True, help="From `incus config trust add vpd` on that host.")
def ct_trust(session, host_ref, token):
    """Have a remote incusd trust vpd's client certificate (the seed's `lxc remote add` with a token)."""
    return ct_ops.trust_host(session, host_ref, token)


# --- images -------------------------------------------------------------------------------

@command(ct_image, "build", bars=False)
@click.option("--out", "out_dir", type=LocalPath(file_okay=False), help="Directory (default: vpd's cache).")
def ct_image_build(session, out_dir):
    """Build the busybox image's METADATA and ROOTFS tarballs from this machine's busybox-static."""
    return ct_ops.image_build(out_dir)


@command(ct_image, "import", render=lambda r: say(f"image {r['alias']} imported on {r['host']} "
                                                  f"(fingerprint {r['fingerprint'][:12]})"))
@click.argument("rootfs", type=LocalPath(dir_okay=False))
@click.argument("metadata", type=LocalPath(dir_okay=False))
@click.option("--alias", required=True, help="The name to launch it by.")
@click.option("--host", "host_ref", help="Host to import it on (needed when the inventory has several).")
def ct_image_import(session, rootfs, metadata, alias, host_ref):
    """Import a split image (the seed's `lxc image import`); the two tarballs in either order."""
    return ct_ops.image_import(session, rootfs, metadata, alias, host_ref)


def _render_images(r: dict) -> None:
    table("Container images", ["host", "alias", "fingerprint", "description", "size MiB", "created"],
          [[h["host"], ", ".join(i["aliases"]) or None, i["fingerprint"][:12], i["description"],
            f"{i['size'] / 2**20:.2f}", i["created"][:19]] for h in r["hosts"] for i in h["images"]])
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")


@command(ct_image, "list", render=_render_images, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def ct_image_list(session, names):
    """Images of every host (the seed's `lxc image list`)."""
    return ct_ops.image_list(session, names)


@command(ct_image, "delete", render=lambda r: say(f"image {r['deleted'][:12]} deleted on {r['host']}"), bars=False)
@click.argument("image")
@click.option("--host", "host_ref", help="Host (needed when the inventory has several).")
def ct_image_delete(session, image, host_ref):
    """Delete an image by alias or fingerprint (the seed's `lxc image delete`)."""
    return ct_ops.image_delete(session, image, host_ref)


# --- containers -----------------------------------------------------------------------------

@command(ct, "launch", render=lambda r: say(f"container {r['name']} launched on {r['host']} from {r['image']}"
                                            + (f" ({', '.join(f'{k}={v}' for k, v in r['config'].items())})"
                                               if r["config"] else "")))
@click.argument("image")
@click.argument("name")
@click.option("--host", "host_ref", help="Host to launch it on (needed when the inventory has several).")
@click.option("--limit", "limits", metavar="cpu=N,memory=SIZE",
              help="Hardware limits, e.g. cpu=1,memory=128MiB (keys of `config set` without 'limits.').")
@click.option("--no-start", is_flag=True, help="Create it stopped (the seed's `lxc init`).")
@click.option("--profile", "profiles", multiple=True, help="Profile to apply (repeatable, in order; default: default).")
def ct_launch(session, image, name, host_ref, limits, no_start, profiles):
    """Create a container from an image and start it (the seed's `lxc launch`)."""
    return ct_ops.launch(session, image, name, host_ref, checks.parse_limits(limits), start=not no_start,
                         profiles=list(profiles) or None)


def _render_list(r: dict) -> None:
    table("Containers", ["host", "name", "state", "image", "IPv4", "memory", "CPUs"],
          [[c["host"], c["name"], c["state"], c["image"], ", ".join(c["addresses"]) or None, c["memory_limit"],
            c["cpu_limit"]] for h in r["hosts"] for c in h["containers"]])
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")


@command(ct, "list", render=_render_list, bars=False, readonly=True)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def ct_list(session, names):
    """Containers of every host, one request per host."""
    return ct_ops.list_cts(session, names)


def _render_action(r: dict) -> None:
    say(f"{r['name']} on {r['host']}: {r['action']} -> {r['status']}")


def _action(action: str, doc: str, *, stop_options: bool = False) -> None:
    def body(session, name, host_ref, force=False, timeout=None):
        return ct_ops.act(session, action, name, host_ref, force=force, timeout=timeout)

    body.__doc__ = doc
    body.__name__ = f"ct_{action}"
    fn = ct_host_option()(click.argument("name")(body))
    if stop_options:
        fn = click.option("--force", is_flag=True, help="Kill it at once instead of a clean shutdown.")(fn)
        fn = click.option("--timeout", type=int, help="Seconds to wait for a clean shutdown.")(fn)
    command(ct, action, render=_render_action, bars=False)(fn)


_action("start", "Start a container (the seed's `lxc start`).")
_action("stop", "Stop a container (the seed's `lxc stop [--force]`).", stop_options=True)
_action("restart", "Restart a container.", stop_options=True)
_action("pause", "Freeze every process of a container (the seed's `lxc pause`).")
_action("resume", "Thaw a paused container.")


@command(ct, "delete", render=lambda r: say(f"container {r['name']} deleted on {r['host']}"), bars=False)
@click.argument("name")
@ct_host_option()
@click.option("--force", is_flag=True, help="Stop it first if it runs.")
def ct_delete(session, name, host_ref, force):
    """Delete a container and its storage (the seed's `lxc delete`)."""
    return ct_ops.delete(session, name, host_ref, force)


def _render_info(r: dict) -> None:
    for key in ("host", "name", "status", "image", "created", "pid", "processes"):
        say(f"{key:18} {r.get(key)}")
    say(f"{'addresses':18} {', '.join(r['addresses']) or '-'}")
    mem = r.get("memory_usage_bytes")
    say(f"{'memory used':18} {f'{mem / 2**20:.1f} MiB' if mem is not None else '-'}")
    cpu = r.get("cpu_usage_ns")
    say(f"{'CPU time':18} {f'{cpu / 1e9:.2f} s' if cpu is not None else '-'}")
    say(f"{'limits':18} {', '.join(f'{k}={v}' for k, v in r['limits'].items()) or '-'}")
    say(f"{'snapshots':18} {', '.join(r['snapshots']) or '-'}")


@command(ct, "info", render=_render_info, bars=False, readonly=True)
@click.argument("name")
@ct_host_option()
def ct_info(session, name, host_ref):
    """State, processes, addresses, resource use, limits and snapshots (the seed's `lxc info`)."""
    return ct_ops.info(session, name, host_ref)


@command(ct_config, "set", render=lambda r: say(f"{r['name']} on {r['host']}: {r['key']} = {r['value']}"
                                                f" (was {r['previous'] or 'unset'})"), bars=False)
@click.argument("name")
@click.argument("key")
@click.argument("value")
@ct_host_option()
def ct_config_set(session, name, key, value, host_ref):
    """Set a hardware limit (the seed's `lxc config set NAME KEY VALUE`): limits.cpu, limits.memory, ..."""
    return ct_ops.config_set(session, name, key, value, host_ref)


@command(ct_file, "push", render=lambda r: say(f"{r['bytes']} bytes -> {r['name']}{r['path']} on {r['host']}"),
         bars=False)
@click.argument("source", type=LocalPath(dir_okay=False))
@click.argument("target", metavar="NAME/PATH")
@ct_host_option()
def ct_file_push(session, source, target, host_ref):
    """Copy a local file into a container (the seed's `lxc file push`)."""
    return ct_ops.file_push(session, source, target, host_ref)


@command(ct_file, "pull", render=lambda r: say(f"{r['name']}{r['path']} on {r['host']} -> {r['dest']} "
                                               f"({r['bytes']} bytes)"), bars=False)
@click.argument("source", metavar="NAME/PATH")
@click.argument("dest", type=LocalPath())
@ct_host_option()
def ct_file_pull(session, source, dest, host_ref):
    """Copy a file out of a container (the seed's `lxc file pull`)."""
    return ct_ops.file_pull(session, source, dest, host_ref)


@ct.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@ct_host_option()
@click.option("-T", "--no-tty", is_flag=True, help="Never a terminal: output shown when the command ends.")
@json_option
@click.argument("name")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED, metavar="[--] CMD...")
@click.option("--explain", "explain_steps", is_flag=True, help=EXPLAIN_HELP + " (before NAME)")
@click.pass_context
def ct_exec(ctx, name, argv, host_ref, no_tty, explain_steps, as_json):
    """Run a command in a container and pass its exit code on (the seed's `lxc exec NAME -- CMD`).

    With stdin a terminal (and no --json, -T), the command gets a terminal of its own in the
    container, so `vpd ct exec web1 -- sh` is a shell; otherwise its output is shown when it ends."""
    session = session_of(ctx)
    argv = list(argv[1:] if argv[:1] == ("--",) else argv)  # options stop at NAME: `--` reaches us
    interactive = not (as_json or no_tty) and sys.stdin.isatty()
    try:
        with steps.listening() as seen:
            if interactive:
                result = ct_ops.exec_interactive(session, name, argv, host_ref,
                                                 term=os.environ.get("TERM") or "xterm")
            else:
                result = ct_ops.exec_(session, name, argv, host_ref)
        if interactive:
            if explain_steps:
                sys.stderr.write("\n".join(["# what vpd did, by hand:", *explain.script(seen)]) + "\n")
            sys.exit(result["exit_code"])
    except VpdError as exc:
        report_error(exc, as_json)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    if as_json:
        emit_json({**result, "explain": explain.script(seen)} if explain_steps else result)
    else:
        if explain_steps:  # on stderr: stdout is the command's own output
            sys.stderr.write("\n".join(["# what vpd did, by hand:", *explain.script(seen)]) + "\n")
        sys.stdout.write(result["stdout"])
        sys.stdout.flush()
        sys.stderr.write(result["stderr"])
        sys.stderr.flush()
    sys.exit(result["exit_code"])


@command(ct_file, "edit", render=lambda r: say(f"{r['name']}{r['path']} on {r['host']}: "
                                               + ("saved" if r["changed"] else "unchanged, nothing sent")),
         bars=False)
@click.argument("target", metavar="NAME/PATH")
@ct_host_option()
def ct_file_edit(session, target, host_ref):
    """Edit a container's file in $VISUAL/$EDITOR (the seed's `lxc file edit`); sent back only if changed."""
    return ct_ops.file_edit(session, target, editing.editor_argv(), host_ref)


# --- console ----------------------------------------------------------------------------------

@ct.command("console")
@click.argument("name")
@ct_host_option()
@click.option("--log", "show_log", is_flag=True, help="Print what the console showed so far, and return.")
@json_option
@click.pass_context
@declared_readonly
def ct_console(ctx, name, host_ref, show_log, as_json):
    """The container's console (the seed's `lxc console`); ctrl-a q detaches."""
    session = session_of(ctx)
    try:
        if show_log or as_json:
            result = ct_ops.console_log(session, name, host_ref)
            if as_json:
                emit_json(result)
            else:
                sys.stdout.write(result["log"])
            return
        ct_ops.console(session, name, host_ref, on_ready=lambda: err_console.print(
            f"console of {name}: press ctrl-a q to detach", highlight=False))
        err_console.print("\ndetached", highlight=False)
    except VpdError as exc:
        report_error(exc, as_json)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


# --- snapshots --------------------------------------------------------------------------------

@command(ct_snapshot, "create", render=lambda r: say(f"snapshot {r['snapshot']} of {r['name']} on {r['host']}"),
         bars=False)
@click.argument("name")
@click.argument("snapshot")
@ct_host_option()
def ct_snapshot_create(session, name, snapshot, host_ref):
    """Snapshot a container's files and configuration (the seed's `lxc snapshot`)."""
    return ct_ops.snapshot_create(session, name, snapshot, host_ref)


def _render_snapshots(r: dict) -> None:
    table(f"Snapshots of {r['name']} on {r['host']}", ["snapshot", "created", "stateful"],
          [[s["name"], s["created"][:19], "yes" if s["stateful"] else "no"] for s in r["snapshots"]])


@command(ct_snapshot, "list", render=_render_snapshots, bars=False)
@click.argument("name")
@ct_host_option()
def ct_snapshot_list(session, name, host_ref):
    """A container's snapshots."""
    return ct_ops.snapshot_list(session, name, host_ref)


@command(ct_snapshot, "restore", render=lambda r: say(f"{r['name']} on {r['host']} restored to {r['snapshot']}"
                                                      f" ({r['status']})"), bars=False)
@click.argument("name")
@click.argument("snapshot")
@ct_host_option()
def ct_snapshot_restore(session, name, snapshot, host_ref):
    """Bring a container back to a snapshot (the seed's `lxc restore`)."""
    return ct_ops.snapshot_restore(session, name, snapshot, host_ref)


@command(ct_snapshot, "delete", render=lambda r: say(f"snapshot {r['snapshot']} of {r['name']} deleted"),
         bars=False)
@click.argument("name")
@click.argument("snapshot")
@ct_host_option()
def ct_snapshot_delete(session, name, snapshot, host_ref):
    """Delete one snapshot of a container."""
    return ct_ops.snapshot_delete(session, name, snapshot, host_ref)


# --- profiles ---------------------------------------------------------------------------------

def _render_profiles(r: dict) -> None:
    table("Container profiles", ["host", "profile", "description", "config", "devices", "used by"],
          [[h["host"], p["name"], p["description"] or None,
            ", ".join(f"{k}={v}" for k, v in p["config"].items()) or None,
            ", ".join(f"{k} ({d.get('type')})" for k, d in p["devices"].items()) or None,
            ", ".join(p["used_by"]) or None] for h in r["hosts"] for p in h["profiles"]])
    for h in r["hosts"]:
        if h["error"]:
            say(f"{h['host']}: {h['error']}", "red")


@command(ct_profile, "list", render=_render_profiles, bars=False)
@click.option("--host", "names", multiple=True, help="Only these hosts (repeatable).")
def ct_profile_list(session, names):
    """Profiles of every host, with the containers using them (the seed's `lxc profile list`)."""
    return ct_ops.profile_list(session, names)


@command(ct_profile, "create", render=lambda r: say(f"profile {r['profile']} created on {r['host']}"), bars=False)
@click.argument("name")
@click.option("--host", "host_ref", help="Host (needed when the inventory has several).")
@click.option("--limit", "limits", metavar="cpu=N,memory=SIZE", help="Limits the profile sets, e.g. memory=64MiB.")
@click.option("--description", default="", help="One line saying what it is for.")
def ct_profile_create(session, name, host_ref, limits, description):
    """Create a profile (the seed's `lxc profile create`); `profile edit` adds more."""
    return ct_ops.profile_create(session, name, host_ref, checks.parse_limits(limits), description)


@command(ct_profile, "edit", render=lambda r: say(f"profile {r['profile']} on {r['host']}: "
                                                  + ("saved" if r["changed"] else "unchanged, nothing sent")),
         bars=False)
@click.argument("name")
@click.option("--host", "host_ref", help="Host (needed when the inventory has several).")
def ct_profile_edit(session, name, host_ref):
    """Edit a profile as YAML in $VISUAL/$EDITOR (the seed's `lxc profile edit`); checked whole before it is sent."""
    return ct_ops.profile_edit(session, name, editing.editor_argv(), host_ref)


@command(ct_profile, "apply", render=lambda r: say(f"{r['name']} on {r['host']}: profiles "
                                                   f"{', '.join(r['profiles'])} (were {', '.join(r['previous'])})"),
         bars=False)
@click.argument("name")
@click.argument("profiles", metavar="PROFILE[,PROFILE...]")
@ct_host_option()
def ct_profile_apply(session, name, profiles, host_ref):
    """Set a container's profiles, in order (the seed's `lxc profile apply`)."""
    return ct_ops.profile_apply(session, name, [p.strip() for p in profiles.split(",")], host_ref)


@command(ct_profile, "delete", render=lambda r: say(f"profile {r['profile']} deleted on {r['host']}"), bars=False)
@click.argument("name")
@click.option("--host", "host_ref", help="Host (needed when the inventory has several).")
def ct_profile_delete(session, name, host_ref):
    """Delete a profile no container uses."""
    return ct_ops.profile_delete(session, name, host_ref)


# --- copy and move ----------------------------------------------------------------------------

@command(ct, "copy", render=lambda r: say(f"{r['name']} ({r['host']}) copied to {r['new_name']} on {r['to_host']}"
                                          f" ({r['status']})"))
@click.argument("name")
@click.argument("new_name")
@ct_host_option()
@click.option("--to-host", help="Host for the copy (default: the same host).")
def ct_copy(session, name, new_name, host_ref, to_host):
    """Copy a container, snapshots included, to a new name on this or another host (the seed's `lxc copy`)."""
    return ct_ops.copy(session, name, new_name, to_host, host_ref)


@command(ct, "move", render=lambda r: say(f"{r['name']} moved from {r['from_host']} to {r['host']}"
                                          f" ({r['status']})"))
@click.argument("name")
@click.option("--to-host", required=True, help="Host to move it to.")
@ct_host_option()
@click.option("--stateless", is_flag=True, help="A running container: stop it, move it, start it there.")
def ct_move(session, name, to_host, host_ref, stateless):
    """Move a container to another host of the inventory (the seed's `lxc move`)."""
    return ct_ops.move(session, name, to_host, host_ref, stateless)
