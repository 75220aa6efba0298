"""The `vpd` command: a thin layer that parses, calls the library, and renders."""
from __future__ import annotations

import functools
import sys

import click
from rich.text import Text

from .. import __version__
from ..core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Terminated, VpdError
from ..core.names import check_local_path
from .render import emit_json, err_console


class LocalPath(click.Path):
    """click.Path that also refuses what no file name should hold (empty, control characters,
    over-long components): a clear exit 2 instead of an OSError traceback later on."""

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            try:
                check_local_path(value, param.human_readable_name if param else "path")
            except VpdError as exc:
                self.fail(exc.message, param, ctx)
        return super().convert(value, param, ctx)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def handle_errors(fn):
    """VpdErrors become one clear message (or a JSON object) and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VpdError as exc:
            report_error(exc, bool(kwargs.get("as_json")))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            err_console.print(Text("terminated" if isinstance(exc, Terminated) else "interrupted", style="bold red"))
            sys.exit(interrupt_exit_code(exc))

    return wrapper


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"signal {signum}")


def report_error(exc: VpdError, as_json: bool) -> None:
    if as_json:
        if not getattr(exc, "reported", False):  # the command already printed its JSON report
            emit_json(exc.to_dict())
        return
    # Messages are printed literally: libvirt's and qemu-img's texts hold brackets that rich
    # would read as markup. soft_wrap: one line per message, so logs and grep see it whole.
    err_console.print(Text.assemble(("error:", "bold red"), " ", exc.message), highlight=False, soft_wrap=True)
    if exc.hint:
        err_console.print(Text.assemble("  ", ("hint:", "dim"), " ", exc.hint), highlight=False, soft_wrap=True)


# Which modules define each top-level command (and the subgroups other modules add to it).
# A command imports only these, so `vpd --version` and `vpd vm list` do not pay for pyroute2,
# the lab or the cluster code; `vpd --help` imports them all.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "access": ("commands_access",),
    "backup": ("commands_backup",),
    "restore": ("commands_backup",),
    "cluster": ("commands_cluster",),
    "ct": ("commands_ct",),
    "ha": ("commands_cluster",),
    "host": ("commands_host", "commands_host_bridge", "commands_host_bond"),
    "iscsi": ("commands_iscsi",),
    "journal": ("commands_journal",),
    "lab": ("commands_lab",),
    "migrate": ("commands_migrate",),
    "history": ("commands_migrate",),
    "net": ("commands_net",),
    "export": ("commands_ovf",),
    "import": ("commands_ovf",),
    "pool": ("commands_pool",),
    "practica": ("commands_practica",),
    "recover": ("commands_recover",),
    "vol": ("commands_vol",),
    "snapshot": ("commands_snapshot",),
    "template": ("commands_template",),
    "vm": ("commands_vm",),  # which imports `vm disk` and `vm iface` lazily
    "web": ("commands_web",),
}


class LazyGroup(click.Group):
    """A group whose subcommands' modules are imported when a subcommand is asked for.
    `lazy` maps a subcommand name to the modules that register it on this group."""

    def __init__(self, *args, lazy: dict[str, tuple[str, ...]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.lazy) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        import importlib

        for module in self.lazy.get(cmd_name, ()):
            importlib.import_module(f"{__package__}.{module}")  # registers its commands on this group
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, lazy=COMMAND_MODULES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vpd")
@click.option("--inventory", "-i", envvar="VPD_INVENTORY", type=LocalPath(dir_okay=False),
              help="Inventory file (default: the lab's while it is up, else ~/.config/vpd/inventory.toml, "
                   "else the local qemu:///system).")
@click.pass_context
def cli(ctx: click.Context, inventory: str | None) -> None:
    """vpd: run a KVM/libvirt infrastructure as software."""
    ctx.obj = {"inventory": inventory}


def main() -> None:
    import signal

    # SIGTERM unwinds like Ctrl-C: the running operation undoes what it made, exit 143.
    signal.signal(signal.SIGTERM, _raise_terminated)
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
