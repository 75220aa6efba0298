"""`vpd practica list|show|check`: the course's Prácticas, their steps (by hand and
with vpd), and a grader for what was done by hand."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from ..core.errors import UsageError, VpdError
from ..practica import operations as practica_ops
from ..practica import report as practica_report_mod
from ..practica import run as practica_run_mod
from ..practica.model import DEFAULT_LANG, LANGS
from . import main as cli_main
from .command import command, say
from .main import LocalPath, cli
from .render import table


@cli.group("practica")
def practica_group() -> None:
    """The course: each Práctica's goals and steps, and `check` to grade one done by hand."""


def _lang_option(fn):
    return click.option("--lang", type=click.Choice(LANGS), default=DEFAULT_LANG, show_default=True,
                        help="Language of the texts.")(fn)


def _yes(value: bool, es: bool) -> str:
    return ("sí" if es else "yes") if value else "-"


def _render_list(r: dict) -> None:
    es = r["lang"] == "es"
    table("Prácticas" if es else "Prácticas (labs)",
          ["#", "título" if es else "title", "objetivos" if es else "goals", "pasos" if es else "steps",
           "check", "run"],
          [[p["number"], p["title"], p["goals"], p["steps"], _yes(p["checkable"], es), _yes(p["runnable"], es)]
           for p in r["practicas"]])
    say("vpd practica show N [--lang en]" + ("   ·   vpd practica check 4 --hosts ORIGEN,DESTINO" if es
                                              else "   ·   vpd practica check 4 --hosts SRC,DST"), "dim")


@command(practica_group, "list", render=_render_list, bars=False, readonly=True)
@_lang_option
def practica_list(session, lang: str):
    """Every Práctica of the course, with how many goals and steps, and which can be checked."""
    return practica_ops.list_(lang)


def _render_show(r: dict) -> None:
    es = r["lang"] == "es"
    say(f"Práctica {r['number']}: {r['title']}", "bold")
    say(r["summary"])
    say(f"({'guion' if es else 'seed'}: {r['seed']})", "dim")
    for i, g in enumerate(r["goals"], 1):
        say("")
        mark = ("[comprobable]" if es else "[checked]") if g["checked"] else ""
        say(f"{i}. {g['title']}  {mark}".rstrip(), "bold")
        say(f"   {'Prueba' if es else 'Proof'}: {g['proof']}", "dim")
        for j, s in enumerate(g["steps"], 1):
            say(f"   {i}.{j} {s['title']}")
            for cmd in s["hand"]:
                say(f"       {'a mano' if es else 'by hand'}:  {cmd}")
            for cmd in s["vpd"]:
                say(f"       vpd:      {cmd}", "green")
            if s["note"]:
                say(f"       ! {s['note']}", "yellow")
    if r["checkable"]:
        say("")
        say(f"vpd practica check {r['number']} --hosts " + ("ORIGEN,DESTINO" if es else "SRC,DST"), "dim")


@command(practica_group, "show", render=_render_show, bars=False, readonly=True)
@click.argument("number", type=int)
@_lang_option
def practica_show(session, number: int, lang: str):
    """A Práctica's goals and steps: the seed's hand commands and vpd's for each."""
    return practica_ops.show(number, lang)


def _set_option(fn):
    return click.option("--set", "names", multiple=True, metavar="KEY=VALUE",
                        help="A name other than the seed's, e.g. --set POOL=default --set VM=mvp1 "
                             "(keys: `vpd practica show N --json`'s `names`).")(fn)


def _names(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isupper() or not key.replace("_", "").isalnum() or not value:
            raise UsageError(f"invalid --set {pair!r}", hint="KEY=VALUE, the key in capitals, e.g. POOL=default")
        out[key] = value
    return out


def _render_check(r: dict) -> None:
    goal_ids = [g["id"] for g in r["pairs"][0]["goals"]] if r["pairs"] else []
    if len(r["pairs"]) > 1:  # a class: one row per pair
        table(f"Práctica {r['practica']}: {r['title']}", ["src", "dst", "vm", *goal_ids],
              [[p["src"], p["dst"], p["vm"], *("ok" if g["ok"] else "FAIL" for g in p["goals"])]
               for p in r["pairs"]])
    for p in r["pairs"]:
        rows = []
        for g in p["goals"]:
            for c in g["checks"]:
                rows.append([g["id"], c["name"], "ok" if c["ok"] else ("FAIL" if c["blocking"] else "warn"),
                             c["detail"], None if c["ok"] else c["fix"]])
        where = f"{p['src']} -> {p['dst']}" if p["dst"] else p["src"]
        table(f"Práctica {r['practica']} {where}" + (f" (VM {p['vm']})" if p["vm"] else ""),
              ["goal", "check", "result", "evidence", "fix"], rows)
        for g in p["goals"]:
            say(f"  {'✔' if g['ok'] else '✘'} {g['id']}: {g['title']}", None if g["ok"] else "red")
    if r["ok"]:
        say("every goal met" if r["lang"] == "en" else "todos los objetivos cumplidos", "green")


@command(practica_group, "check", render=_render_check, bars=False, readonly=True)
@click.argument("number", type=int)
@click.option("--hosts", "hosts", metavar="SRC,DST[,SRC2,DST2...]",
              help="The pair(s) to grade, source first (default: the inventory's hosts, two by two).")
@click.option("--vm", "vm", metavar="NAME", help="The migrated VM (default: the one mvp4* domain on the pair).")
@_set_option
@_lang_option
def practica_check(session, number: int, hosts: str | None, vm: str | None, names: tuple[str, ...], lang: str):
    """Grade a Práctica done by hand, changing nothing: each goal pass/fail with its
    evidence and the exact fix. Exit 0: every goal met; 1: some not; 2: bad input."""
    refs = [h.strip() for h in hosts.split(",") if h.strip()] if hosts else []
    return practica_ops.check(session, number, refs, vm, lang, _names(names))


def _vpd_caller(ctx: click.Context):
    """Runs one step's vpd command as `vpd ARGV --json [--explain]` in a child process (its own
    journal row, locks and --explain, exactly as a learner would run it) and returns its JSON."""
    inventory = ctx.find_root().obj.get("inventory")

    def call(argv: list[str]) -> dict:
        cmd = cli_main.cli
        sub_ctx = click.Context(cmd)
        for word in argv:
            if not isinstance(cmd, click.Group):
                break
            cmd = cmd.get_command(sub_ctx, word)
        explains = any(p.name == "explain_steps" for p in getattr(cmd, "params", []))
        full = [sys.executable, "-m", "vpd", *(["-i", inventory] if inventory else []), *argv, "--json",
                *(["--explain"] if explains else [])]
        proc = subprocess.run(full, capture_output=True, text=True, timeout=1800)
        try:
            out = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except ValueError:
            out = {"error": proc.stdout.strip()}
        if proc.returncode != 0:
            if not isinstance(out, dict):
                out = {}
            exc = VpdError(out.get("error") or proc.stderr.strip() or f"exit {proc.returncode}", hint=out.get("hint"))
            exc.explain = out.get("explain") or []  # type: ignore[attr-defined]
            raise exc
        return out if isinstance(out, dict) else {"result": out}

    return call


def _show_before(entry: dict, pause: bool) -> None:
    say("")
    say(f"▶ {entry['goal_title']} — {entry['title']}", "bold")
    for cmd in entry["hand"]:
        say(f"   a mano / by hand:  {cmd}")
    say(f"   vpd:  {entry['vpd']}", "green")
    if pause:
        click.pause("   (Intro para ejecutar / Enter to run)")


def _show_after(entry: dict) -> None:
    for line in entry["did"]:
        for i, part in enumerate(line.split("\n")):
            say(("   $ " if i == 0 else "     ") + part, "cyan")
    if not entry["ok"]:
        say(f"   ✘ {entry['outcome']}", "red")
    if entry.get("note"):
        say(f"   ! {entry['note']}", "yellow")


def _render_run(r: dict) -> None:
    if r.get("validation"):
        _render_check({"practica": r["practica"], "title": r["title"], "lang": r["lang"],
                       "ok": r["validation"]["ok"], "pairs": [r["validation"]]})
    say("")
    for q in r.get("questions") or []:
        say(f"? {q['question']}", "bold")
        say(f"  {q['answer']}")
    say(f"vpd practica report {r['practica']}", "dim")


@command(practica_group, "run", render=_render_run)
@click.argument("number", type=int)
@click.option("--hosts", "hosts", metavar="SRC[,DST]", default="hosta,hostb", show_default=True,
              help="The host (and, for the Prácticas of two hosts, the destination/initiator second).")
@click.option("--vm", "vm", help="The VM (default: the seed's; on the lab vpd makes it, elsewhere it must exist).")
@_set_option
@click.option("--step", "pause", is_flag=True, help="Pause before each step.")
@_lang_option
@click.pass_context
def practica_run(ctx, session, number: int, hosts: str, vm: str | None, names: tuple[str, ...], pause: bool,
                 lang: str):
    """Perform a Práctica with vpd: for each step, what a learner would type, what vpd did (as
    hand commands), then the validation and the seed's questions answered by measurement."""
    refs = [h.strip() for h in hosts.split(",") if h.strip()]
    if not 1 <= len(refs) <= 2:
        raise UsageError("--hosts takes SRC or SRC,DST")
    given = {**_names(names), **({"VM": vm} if vm else {})}
    lab = all(session.host(r).lab for r in refs)
    quiet = bool(ctx.params.get("as_json"))
    return practica_run_mod.run(session, number, _vpd_caller(ctx), src=refs[0],
                                dst=refs[1] if len(refs) > 1 else refs[0], lab=lab, lang=lang, given=given,
                                before=None if quiet else (lambda e: _show_before(e, pause)),
                                after=None if quiet else _show_after)


@command(practica_group, "report", render=lambda r: click.echo(r["text"], nl=False), bars=False, readonly=True)
@click.argument("number", type=int)
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--out", "out", type=LocalPath(dir_okay=False), help="Write it to this file instead.")
@click.option("--lang", type=click.Choice(LANGS), help="Language (default: the run's).")
def practica_report(session, number: int, fmt: str, out: str | None, lang: str | None):
    """The report the seed asks for (preparation, migration, validation, conclusions), written
    from the journal of the last `vpd practica run N`: Markdown or HTML."""
    result = practica_report_mod.report(number, fmt, lang)
    if out:
        Path(out).write_text(result["text"])
        return {**result, "text": f"{out}\n", "file": out}
    return result
