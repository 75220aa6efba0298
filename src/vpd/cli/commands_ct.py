"""`vpd ct ...`: system containers on the hosts' incusd (Práctica 1 §3, the seed's `lxc ...`).
Parse, call vpd.ct.operations, render. No Incus calls and no domain rules here."""
from __future__ import annotations

import sys

import click

from ..core import steps
from ..core.errors import EXIT_INTERRUPTED, VpdError
from ..ct import checks
from ..ct import operations as ct_ops
from ..ops import explain
from .command import EXPLAIN_HELP, command, say, session_of
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
def ct_launch(session, image, name, host_ref, limits, no_start):
    """Create a container from an image and start it (the seed's `lxc launch`)."""
    return ct_ops.launch(session, image, name, host_ref, checks.parse_limits(limits), start=not no_start)


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
@click.argument("name")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED, metavar="[--] CMD...")
@ct_host_option()
@click.option("--explain", "explain_steps", is_flag=True, help=EXPLAIN_HELP + " (before NAME)")
@json_option
@click.pass_context
def ct_exec(ctx, name, argv, host_ref, explain_steps, as_json):
    """Run a command in a container and pass its exit code on (the seed's `lxc exec NAME -- CMD`).

    Its output is shown when it ends (no interactive shell yet)."""
    session = session_of(ctx)
    argv = list(argv[1:] if argv[:1] == ("--",) else argv)  # options stop at NAME: `--` reaches us
    try:
        with steps.listening() as seen:
            result = ct_ops.exec_(session, name, argv, host_ref)
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
