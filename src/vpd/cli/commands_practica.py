"""`vpd practica list|show|check`: the course's Prácticas, their steps (by hand and
with vpd), and a grader for what was done by hand."""
from __future__ import annotations

import click

from ..practica import operations as practica_ops
from ..practica.model import DEFAULT_LANG, LANGS
from .command import command, say
from .main import cli
from .render import table


@cli.group("practica")
def practica_group() -> None:
    """The course: each Práctica's goals and steps, and `check` to grade one done by hand."""


def _lang_option(fn):
    return click.option("--lang", type=click.Choice(LANGS), default=DEFAULT_LANG, show_default=True,
                        help="Language of the texts.")(fn)


def _render_list(r: dict) -> None:
    es = r["lang"] == "es"
    table("Prácticas" if es else "Prácticas (labs)",
          ["#", "título" if es else "title", "objetivos" if es else "goals", "pasos" if es else "steps",
           "check"],
          [[p["number"], p["title"], p["goals"], p["steps"], "sí" if p["checkable"] and es else
            ("yes" if p["checkable"] else "-")] for p in r["practicas"]])
    say("vpd practica show N [--lang en]" + ("   ·   vpd practica check 4 --hosts ORIGEN,DESTINO" if es
                                              else "   ·   vpd practica check 4 --hosts SRC,DST"), "dim")


@command(practica_group, "list", render=_render_list, bars=False)
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


@command(practica_group, "show", render=_render_show, bars=False)
@click.argument("number", type=int)
@_lang_option
def practica_show(session, number: int, lang: str):
    """A Práctica's goals and steps: the seed's hand commands and vpd's for each."""
    return practica_ops.show(number, lang)


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
        table(f"Práctica {r['practica']} {p['src']} -> {p['dst']}" + (f" (VM {p['vm']})" if p["vm"] else ""),
              ["goal", "check", "result", "evidence", "fix"], rows)
        for g in p["goals"]:
            say(f"  {'✔' if g['ok'] else '✘'} {g['id']}: {g['title']}", None if g["ok"] else "red")
    if r["ok"]:
        say("every goal met" if r["lang"] == "en" else "todos los objetivos cumplidos", "green")


@command(practica_group, "check", render=_render_check, bars=False)
@click.argument("number", type=int)
@click.option("--hosts", "hosts", metavar="SRC,DST[,SRC2,DST2...]",
              help="The pair(s) to grade, source first (default: the inventory's hosts, two by two).")
@click.option("--vm", "vm", metavar="NAME", help="The migrated VM (default: the one mvp4* domain on the pair).")
@_lang_option
def practica_check(session, number: int, hosts: str | None, vm: str | None, lang: str):
    """Grade a Práctica done by hand, changing nothing: each goal pass/fail with its
    evidence and the exact fix. Exit 0: every goal met; 1: some not; 2: bad input."""
    refs = [h.strip() for h in hosts.split(",") if h.strip()] if hosts else []
    return practica_ops.check(session, number, refs, vm, lang)
