"""The course as data: a Práctica is goals, a goal is steps, a step is what the
seed has the learner type by hand, what vpd runs for it, and (per goal) the
check that proves it was done. Texts come in Spanish (the course's language)
and English."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import UsageError

LANGS = ("es", "en")
DEFAULT_LANG = "es"


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r}", hint="use --lang es or --lang en")
    return lang


@dataclass(frozen=True)
class T:
    """One text in both languages."""

    es: str
    en: str

    def __call__(self, lang: str) -> str:
        return self.es if lang == "es" else self.en


@dataclass(frozen=True)
class Step:
    title: T
    hand: tuple[str, ...]  # the seed's commands, verbatim (placeholders as the seed writes them)
    vpd: tuple[str, ...] = ()  # the vpd commands that do it; empty: vpd has no equivalent yet
    note: T | None = None  # a trap in the hand procedure, or what vpd does differently

    def to_dict(self, lang: str) -> dict:
        return {"title": self.title(lang), "hand": list(self.hand), "vpd": list(self.vpd),
                "note": self.note(lang) if self.note else None}


@dataclass(frozen=True)
class Goal:
    id: str  # stable: `practica check` reports goals by it
    title: T
    proof: T  # what the check verifies
    steps: tuple[Step, ...]
    checked: bool = False  # `vpd practica check` grades it today

    def to_dict(self, lang: str) -> dict:
        return {"id": self.id, "title": self.title(lang), "proof": self.proof(lang), "checked": self.checked,
                "steps": [s.to_dict(lang) for s in self.steps]}


@dataclass(frozen=True)
class Practica:
    number: int
    title: T
    summary: T
    seed: str  # where the seed describes it
    goals: tuple[Goal, ...]

    @property
    def checkable(self) -> bool:
        return any(g.checked for g in self.goals)

    def goal(self, goal_id: str) -> Goal:
        for g in self.goals:
            if g.id == goal_id:
                return g
        raise KeyError(goal_id)

    def to_dict(self, lang: str) -> dict:
        return {"number": self.number, "title": self.title(lang), "summary": self.summary(lang), "seed": self.seed,
                "checkable": self.checkable, "goals": [g.to_dict(lang) for g in self.goals]}
