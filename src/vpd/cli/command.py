"""How a CLI command is declared: parse, hand the library a Session, render what comes back.

    @command(vm, "start", render=lambda r: say(f"started {r['vm']}"))
    @click.argument("name")
    @host_option()
    def vm_start(session, name, host_ref):
        return vm_actions.start(session, name, host_ref)

The body never prints and never branches on --json: it returns its result (a dict, a list,
a dataclass or anything with `to_dict()`), printed as JSON with --json or by `render`
otherwise. VpdErrors become their message and exit code; an error that carries a partial
report (`exc.report`) has that report rendered first. Progress events draw bars while the
body runs (never with --json)."""
from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.text import Text

from ..core import steps
from ..core.errors import Terminated, VpdError
from ..ops import Session, explain
from ..ops.operation import readonly as readonly_guard
from ..ops.results import WithExitCode, jsonable
from .main import interrupt_exit_code, json_option, report_error
from .render import console, emit_json, err_console, progress


def session_of(ctx: click.Context) -> Session:
    """One Session per command run, closed when the command ends."""
    root = ctx.find_root()
    if "session" not in root.obj:
        root.obj["session"] = Session(root.obj.get("inventory"))
        root.call_on_close(root.obj["session"].close)
    return root.obj["session"]


def say(text: str, style: str | None = None) -> None:
    """Print text literally (names and libvirt messages may hold brackets rich would parse)."""
    console.print(Text(text, style=style or ""), highlight=False, soft_wrap=True)


def default_render(result: Any) -> None:
    data = jsonable(result)
    if isinstance(data, dict):
        width = max((len(str(k)) for k in data), default=0)
        for key, value in data.items():
            say(f"{key:{width}}  {value}")
    elif data is not None:
        say(str(data))


EXPLAIN_HELP = ("After acting (with --dry-run: instead of acting), print the equivalent hand commands "
                "(virsh, qemu-img, ssh ...) of exactly what vpd called.")


def command(group: click.Group, name: str | None = None, *, render: Callable[[Any], None] | None = None,
            bars: bool = True, readonly: bool = False):
    """`readonly`: the command only reads (no --explain); opening an Operation in it is refused,
    so the declaration cannot silently go stale. Every other command gets --explain."""
    def decorate(fn: Callable[..., Any]) -> click.Command:
        @json_option
        @click.pass_context
        @functools.wraps(fn)
        def run(ctx: click.Context, *args: Any, as_json: bool = False, explain_steps: bool = False,
                **kwargs: Any) -> None:
            session = session_of(ctx)
            with contextlib.ExitStack() as stack:
                if readonly:
                    stack.enter_context(readonly_guard())
                seen = stack.enter_context(steps.listening()) if explain_steps else None
                try:
                    with progress(bars and not as_json):
                        result = fn(session, *args, **kwargs)
                except VpdError as exc:
                    _partial_report(exc, render, as_json, {"error": exc.message, "hint": exc.hint})
                    _notices(session, as_json)
                    _explain(seen, as_json, failed=True)
                    report_error(exc, as_json)
                    sys.exit(exc.exit_code)
                except KeyboardInterrupt as exc:
                    terminated = isinstance(exc, Terminated)
                    _partial_report(exc, render, as_json, {"error": "terminated" if terminated else "interrupted"})
                    _explain(seen, as_json, failed=True)
                    err_console.print(Text("terminated" if terminated else "interrupted", style="bold red"))
                    sys.exit(interrupt_exit_code(exc))
            _notices(session, as_json)
            if as_json:
                data = jsonable(result)
                if seen is not None:
                    commands = explain.script(seen) or explain.reads(seen)
                    data = {**data, "explain": commands} if isinstance(data, dict) else \
                        {"result": data, "explain": commands}
                if data is not None:
                    emit_json(data)
                if isinstance(result, WithExitCode) and result.exit_code:
                    sys.exit(result.exit_code)
                return
            if result is not None:
                (render or default_render)(result.data if isinstance(result, WithExitCode) else result)
            _explain(seen, as_json)
            if isinstance(result, WithExitCode) and result.exit_code:
                sys.exit(result.exit_code)

        if not readonly:
            run = click.option("--explain", "explain_steps", is_flag=True, help=EXPLAIN_HELP)(run)
        run.__vpd_readonly__ = readonly  # type: ignore[attr-defined]
        return group.command(name)(run)

    return decorate


def declared_readonly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For a command that cannot be an @command (an interactive one) and only reads: declared
    like `readonly=True` (no --explain), and an Operation opened in it is refused the same way."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with readonly_guard():
            return fn(*args, **kwargs)

    run.__vpd_readonly__ = True  # type: ignore[attr-defined]
    return run


def _explain(seen: list[dict] | None, as_json: bool, failed: bool = False) -> None:
    """The hand commands of what this command called (stdout; on stderr after a failure or with --json)."""
    if seen is None or (as_json and not failed):
        return
    lines = explain.script(seen)
    out = err_console if failed or as_json else console
    dry = any(s.get("dry_run") for s in seen)
    if not lines and (looked := explain.reads(seen)):
        # A command that only looks (vm ip, vm fs): what it read is its hand equivalent.
        out.print(Text("\n".join(["# nothing changed; what vpd read, by hand:", *looked])), highlight=False,
                  soft_wrap=True)
        return
    head = ("# nothing changed: no command to show" if not lines else
            "# what vpd would run, by hand:" if dry else
            "# what vpd did before it failed, by hand:" if failed else "# what vpd did, by hand:")
    out.print(Text("\n".join([head, *lines])), highlight=False, soft_wrap=True)


def _partial_report(exc: BaseException, render, as_json: bool, error: dict) -> None:
    """An operation that failed after doing something attaches its report: show it first."""
    partial = getattr(exc, "report", None)
    if partial is None:
        return
    if as_json:
        # The report's own error (e.g. a migration's "migration failed (interrupted ...)") stays.
        emit_json({**error, **jsonable(partial)})
        exc.reported = True  # type: ignore[attr-defined]
    else:
        (render or default_render)(partial)


def _notices(session: Session, as_json: bool) -> None:
    # Where vpd looked things up on its own (a VM found on hostb): on stderr, so --json stays clean.
    if not as_json:
        for text in session.notices:
            err_console.print(Text(text, style="dim"), highlight=False, soft_wrap=True)
    session.notices.clear()


def host_option(required: bool = False, help_text: str | None = None):
    """--host for VM-scoped commands: optional, since vpd finds a VM whose name is unique."""
    return click.option("--host", "host_ref", required=required,
                        help=help_text or "Host (inventory name, FQDN or address); default: wherever the VM is.")
