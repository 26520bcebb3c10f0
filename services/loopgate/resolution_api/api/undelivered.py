"""/v1/admin (admin): what could not leave Loopgate as it is, set aside so that the rest went on:
notifications that could not be rendered or sent, notification events that could not be
expanded, outcomes that can never be published. Newest first, in pages (`cursor`). The lists span
every client: an admin token scoped to some clients may not read them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from loopgate.resolution_api.access.tokens import Principal
from loopgate.resolution_api.exceptions import store as api_store
from loopgate.resolution_api.http.auth import CanSeeUndelivered
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import Forbidden, responses
from loopgate.resolution_api.notifications import store

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(reject_unstorable_params)])

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page")]


class SetAsideNotification(BaseModel):
    id: int
    notification_id: str
    exception_id: str
    event: str
    level: int | None
    receiver: str
    receiver_kind: str
    created_at: dt.datetime
    set_aside_at: dt.datetime
    reason: str = Field(description="Why: unrenderable, unsendable, refused (the receiver's answer), receiver_gone")
    attempts: int


class SetAsideEvent(BaseModel):
    id: int
    exception_id: str
    event: str
    key: str
    level: int | None
    created_at: dt.datetime
    set_aside_at: dt.datetime
    reason: str


class SetAsideOutcome(BaseModel):
    id: int
    outcome_id: str
    exception_id: str
    created_at: dt.datetime
    set_aside_at: dt.datetime
    reason: str
    attempts: int


class NotificationPage(BaseModel):
    items: list[SetAsideNotification]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class EventPage(BaseModel):
    items: list[SetAsideEvent]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class OutcomePage(BaseModel):
    items: list[SetAsideOutcome]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


MAX_ROW_ID = 2**31 - 1  # the ids are 32-bit on PostgreSQL: a bigger cursor means "from the newest"


def _before(cursor: str | None) -> int | None:
    return min(int(cursor), MAX_ROW_ID) if cursor else None


def _next(ids: list[int], limit: int) -> str | None:
    return str(ids[-1]) if len(ids) == limit else None


def _agency_wide(principal: Principal) -> None:
    if not principal.scope.agency_wide:
        raise Forbidden("these lists span every client: use an admin token that is not scoped to clients")


@router.get(
    "/notifications/set-aside",
    summary="Notifications set aside: they could not be rendered or sent (rate limited ones are not listed)",
    responses=responses(401, 403),
)
async def set_aside_notifications(
    principal: CanSeeUndelivered,
    services: ServicesDep,
    receiver: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> NotificationPage:
    _agency_wide(principal)
    async with services.db.read() as session, session.begin():
        rows = await store.set_aside_notifications(
            session=session, limit=limit, before_id=_before(cursor), receiver=receiver
        )
    items = [
        SetAsideNotification(
            id=r.id,
            notification_id=r.notification_id,
            exception_id=r.exception_id,
            event=r.event,
            level=r.level,
            receiver=r.receiver,
            receiver_kind=r.receiver_kind,
            created_at=r.created_at,
            set_aside_at=r.set_aside_at or r.created_at,
            reason=r.set_aside_reason or "",
            attempts=r.attempts,
        )
        for r in rows
    ]
    return NotificationPage(items=items, next_cursor=_next([r.id for r in rows], limit))


@router.get(
    "/notifications/set-aside-events",
    summary="Notification events set aside: they could not be turned into notifications",
    responses=responses(401, 403),
)
async def set_aside_events(
    principal: CanSeeUndelivered, services: ServicesDep, limit: Limit = 100, cursor: Cursor = None
) -> EventPage:
    _agency_wide(principal)
    async with services.db.read() as session, session.begin():
        rows = await store.set_aside_events(session=session, limit=limit, before_id=_before(cursor))
    items = [
        SetAsideEvent(
            id=r.id,
            exception_id=r.exception_id,
            event=r.event,
            key=r.key,
            level=r.level,
            created_at=r.created_at,
            set_aside_at=r.set_aside_at or r.created_at,
            reason=r.set_aside_reason or "",
        )
        for r in rows
    ]
    return EventPage(items=items, next_cursor=_next([r.id for r in rows], limit))


@router.get(
    "/outcomes/set-aside",
    summary="Outcomes set aside: they can never be published to Kafka as they are",
    responses=responses(401, 403),
)
async def set_aside_outcomes(
    principal: CanSeeUndelivered, services: ServicesDep, limit: Limit = 100, cursor: Cursor = None
) -> OutcomePage:
    _agency_wide(principal)
    async with services.db.read() as session, session.begin():
        rows = await api_store.set_aside_outbox(session=session, limit=limit, before_id=_before(cursor))
    items = [
        SetAsideOutcome(
            id=r.id,
            outcome_id=r.outcome_id,
            exception_id=r.exception_id,
            created_at=r.created_at,
            set_aside_at=r.set_aside_at or r.created_at,
            reason=r.set_aside_reason or "",
            attempts=r.attempts,
        )
        for r in rows
    ]
    return OutcomePage(items=items, next_cursor=_next([r.id for r in rows], limit))
