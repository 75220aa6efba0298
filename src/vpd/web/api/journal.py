"""/api/v1/journal: what vpd did, newest first (`vpd journal`)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from ...core import journal
from ..auth import viewer
from .common import ERRORS

router = APIRouter(prefix="/journal", tags=["journal"], dependencies=[Depends(viewer)], responses=ERRORS)


@router.get("")
def journal_list(limit: int = Query(20, ge=1, le=10000),
                 operation: str | None = Query(None, description="Only operations starting with this, e.g. vm.")
                 ) -> list[dict]:
    return journal.entries(limit, operation)
