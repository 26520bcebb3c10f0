"""Reads of the resolution API: one exception, a page of them, the history of one."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow
from loopgate.resolution_api.domain_errors import InvalidRequest, NotFound
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.cursor import (
    BadCursor,
    Position,
    Sort,
    decode_cursor,
    decode_history_cursor,
    encode_cursor,
    encode_history_cursor,
)


async def get(*, db: Database, exception_id: str) -> ExceptionRow:
    async with db.read() as session, session.begin():
        return await get_or_raise(session=session, exception_id=exception_id)


async def get_or_raise(*, session: AsyncSession, exception_id: str) -> ExceptionRow:
    """The exception, in the caller's transaction; NotFound when there is none."""
    row = await store.get_exception(session=session, exception_id=exception_id)
    if row is None:
        raise NotFound(f"no exception with id {exception_id!r}")
    return row


async def list_page(
    *, db: Database, filters: store.ExceptionFilters, sort: Sort = Sort.NEWEST, cursor: str | None, limit: int
) -> tuple[list[ExceptionRow], str | None]:
    try:
        after = decode_cursor(cursor, sort) if cursor else None
    except BadCursor as err:
        raise InvalidRequest(str(err)) from None
    async with db.read() as session, session.begin():
        rows = await store.list_exceptions(session=session, filters=filters, sort=sort, after=after, limit=limit + 1)
    next_cursor = encode_cursor(_position(rows[limit - 1], sort)) if len(rows) > limit else None
    return rows[:limit], next_cursor


def _position(row: ExceptionRow, sort: Sort) -> Position:
    return Position(
        sort=sort,
        created_at=row.created_at,
        exception_id=row.id,
        severity_rank=row.severity_rank,
        impact_amount=row.impact_amount,
    )


HISTORY_PAGE = 100  # events per history page unless asked
HISTORY_PAGE_MAX = 500


async def history_page(
    *, db: Database, exception_id: str, cursor: str | None, limit: int = HISTORY_PAGE
) -> tuple[list[ExceptionEventRow], str | None]:
    """A page of the exception's history, oldest first, and the cursor of the next page (None: no
    more events now). Bounded, however many occurrences the exception has had."""
    if not 1 <= limit <= HISTORY_PAGE_MAX:
        raise InvalidRequest(f"limit: between 1 and {HISTORY_PAGE_MAX} (got {limit})")
    try:
        after = decode_history_cursor(cursor) if cursor else None
    except BadCursor as err:
        raise InvalidRequest(str(err)) from None
    async with db.read() as session, session.begin():
        await get_or_raise(session=session, exception_id=exception_id)
        events = await store.history(session=session, exception_id=exception_id, after_id=after, limit=limit + 1)
    next_cursor = encode_history_cursor(events[limit - 1].id) if len(events) > limit else None
    return events[:limit], next_cursor
