"""The approval queue: unresolved approval items, the nearest release deadline first (those without a
deadline last, oldest first), keyset-paginated on (deadline, created_at, id) from the partial index
ix_exceptions_approval_queue (migration 0015)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

import orjson
import sqlalchemy as sa

from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.domain_errors import InvalidRequest
from loopgate.resolution_api.exceptions.lifecycle import Status
from loopgate_schemas.exceptions import Kind

Position = tuple[dt.datetime | None, dt.datetime, str]


def encode_cursor(row: ExceptionRow) -> str:
    deadline = row.release_deadline.isoformat() if row.release_deadline is not None else None
    raw = orjson.dumps(["approvals", deadline, row.created_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        kind, deadline, created_at, exception_id = orjson.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        if kind != "approvals" or not isinstance(exception_id, str):
            raise ValueError(kind)
        when = dt.datetime.fromisoformat(deadline) if deadline is not None else None
        created = dt.datetime.fromisoformat(created_at)
        if created.tzinfo is None or (when is not None and when.tzinfo is None):
            raise ValueError("naive time")
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidRequest("cursor: not a next_cursor of GET /v1/approvals") from None
    return when, created, exception_id


def _after(p: Position) -> sa.ColumnElement[bool]:
    t = ExceptionRow
    deadline, created_at, exception_id = p
    later = sa.or_(t.created_at > created_at, sa.and_(t.created_at == created_at, t.id > exception_id))
    if deadline is None:
        return sa.and_(t.release_deadline.is_(None), later)
    return sa.or_(
        t.release_deadline > deadline,
        sa.and_(t.release_deadline == deadline, later),
        t.release_deadline.is_(None),
    )


async def approval_page(
    *, db: Database, client_id: str | None, source: str | None, cursor: str | None, limit: int
) -> tuple[list[ExceptionRow], str | None]:
    """One page of the approval queue (the caller's scope applies, as to every read)."""
    t = ExceptionRow
    conditions = [t.kind == Kind.APPROVAL.value, t.status != Status.RESOLVED.value]
    if client_id is not None:
        conditions.append(t.client_id == client_id)
    if source is not None:
        conditions.append(t.source == source)
    if cursor is not None:
        conditions.append(_after(decode_cursor(cursor)))
    stmt = (
        sa.select(t)
        .where(*conditions)
        .order_by(t.release_deadline.asc().nulls_last(), t.created_at, t.id)
        .limit(limit + 1)
    )
    async with db.read() as session, session.begin():
        rows = list((await session.scalars(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]) if more and rows else None
