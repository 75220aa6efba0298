"""The `vpd` command: a thin layer that parses, calls the library, and renders."""
from __future__ import annotations

import functools
import sys

import click

from .. import __version__
from ..core.errors import EXIT_FAILED, EXIT_USAGE, VpdError
from .render import emit_json, err_console


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def handle_errors(fn):
    """VpdErrors become one clear message (or a JSON object) and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VpdError as exc:
            if kwargs.get("as_json"):
                if not getattr(exc, "reported", False):  # the command already printed its JSON report
                    emit_json(exc.to_dict())
            else:
                # soft_wrap: one line per message, so logs and grep see it whole.
                err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
                if exc.hint:
                    err_console.print(f"  [dim]hint:[/] {exc.hint}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vpd")
@click.option("--inventory", "-i", envvar="VPD_INVENTORY", type=click.Path(dir_okay=False),
              help="Inventory file (default: the lab's while it is up, else ~/.config/vpd/inventory.toml, "
                   "else the local qemu:///system).")
@click.pass_context
def cli(ctx: click.Context, inventory: str | None) -> None:
    """vpd: run a KVM/libvirt infrastructure as software."""
    ctx.obj = {"inventory": inventory}


# Modules that define each top-level command, for commands that must answer fast (a storage
# listing in well under a second): only these are imported. Any other command (and --help)
# imports every module.
_ALL_COMMANDS = ("commands_access", "commands_backup", "commands_cluster", "commands_host", "commands_host_bridge",
                 "commands_iscsi", "commands_journal", "commands_lab", "commands_migrate", "commands_net",
                 "commands_ovf", "commands_pool", "commands_snapshot", "commands_template", "commands_vm",
                 "commands_vm_disk", "commands_vm_iface", "commands_vol")
_FAST_PATHS = {"pool": ("commands_pool",), "vol": ("commands_vol",), "iscsi": ("commands_iscsi",),
               "net": ("commands_net",), "cluster": ("commands_cluster",), "ha": ("commands_cluster",)}


def _command_modules(argv: list[str]) -> tuple[str, ...]:
    args = iter(argv)
    for arg in args:
        if arg in ("--inventory", "-i"):
            next(args, None)
        elif not arg.startswith("-"):
            return _FAST_PATHS.get(arg, _ALL_COMMANDS)
    return _ALL_COMMANDS


def main() -> None:
    import importlib

    for module in _command_modules(sys.argv[1:]):
        importlib.import_module(f"{__package__}.{module}")  # registers its commands

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(EXIT_FAILED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
