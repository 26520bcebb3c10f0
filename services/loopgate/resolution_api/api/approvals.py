"""/v1/approvals: the approval queue, the nearest release deadline first. An item is decided with the
ordinary resolve (`POST /v1/exceptions/{id}/resolve`) and a release decision: publish, publish_corrected
(with the correction, field by field) or withhold. Thin: parse, call approvals/queue.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StringConstraints

from loopgate.resolution_api.approvals.queue import approval_page
from loopgate.resolution_api.http.auth import CanRead
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import responses
from loopgate.resolution_api.schemas import ExceptionRead

router = APIRouter(prefix="/v1/approvals", tags=["approvals"], dependencies=[Depends(reject_unstorable_params)])


class ApprovalPage(BaseModel):
    items: list[ExceptionRead] = Field(
        description="Unresolved approval items: the nearest release_deadline first, those without one last (oldest "
        "first)."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


@router.get("", summary="The approval queue, the nearest release deadline first", responses=responses(400, 401, 403))
async def list_approvals(
    principal: CanRead,
    services: ServicesDep,
    client_id: Annotated[
        str | None, Query(min_length=1, max_length=255, description="Only this client's approval items")
    ] = None,
    source: Annotated[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$")] | None,
        Query(max_length=255, description="Only this source topic"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ApprovalPage:
    rows, next_cursor = await approval_page(
        db=services.db, client_id=client_id, source=source, cursor=cursor, limit=limit
    )
    return ApprovalPage(items=[ExceptionRead.from_row(r) for r in rows], next_cursor=next_cursor)
