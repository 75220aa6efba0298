"""/api/v1/practicas: the course's Prácticas as data and the read-only grader (`vpd practica ...`),
through practica.operations."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...practica import operations as practica_ops
from ..auth import Principal, viewer
from .common import ERRORS, submit

router = APIRouter(prefix="/practicas", tags=["practicas"], dependencies=[Depends(viewer)], responses=ERRORS)

Lang = Query("es", description="es (the course's language) or en")


class CheckRequest(BaseModel):
    hosts: list[str] = Field(default_factory=list, description="The pair(s) to grade, source first "
                                                                "(default: the inventory's hosts, two by two)")
    vm: str | None = Field(None, description="The migrated VM (default: the one mvp4* domain on the pair)")
    lang: str = "es"


@router.get("")
def practicas_list(lang: str = Lang) -> dict:
    """Every Práctica of the course, with how many goals and steps, and which can be checked."""
    return practica_ops.list_(lang)


@router.get("/{number}")
def practicas_show(number: int, lang: str = Lang) -> dict:
    """A Práctica's goals and steps: the seed's hand commands and vpd's for each."""
    return practica_ops.show(number, lang)


@router.post("/{number}/check", status_code=202)
def practicas_check(request: Request, number: int, body: CheckRequest,
                    who: Principal = Depends(viewer)) -> JSONResponse:
    """Grade a Práctica done by hand, changing nothing (so a viewer may run it): a job whose
    result is the report; when a goal is not met the job fails with the report attached."""
    return submit(request, who, "practica.check", str(number),
                  lambda js: practica_ops.check(js, number, body.hosts, body.vm, body.lang))
