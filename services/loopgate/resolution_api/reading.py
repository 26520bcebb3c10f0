"""Reads of the resolution API: one exception, a page of them, the history of one."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api import store
from loopgate.resolution_api.cursor import BadCursor, Position, Sort, decode_cursor, encode_cursor
from loopgate.resolution_api.db import Database
from loopgate.resolution_api.domain_errors import InvalidRequest, NotFound
from loopgate.resolution_api.models import ExceptionEventRow, ExceptionRow


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


async def history(*, db: Database, exception_id: str) -> list[ExceptionEventRow]:
    async with db.read() as session, session.begin():
        await get_or_raise(session=session, exception_id=exception_id)
        return await store.history(session=session, exception_id=exception_id)
