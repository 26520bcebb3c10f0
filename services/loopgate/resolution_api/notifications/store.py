"""Queries of notifications: the events committed with each change, the notifications the relay
sends, and what escalation levels read. Keyword-only, never committing (the caller's transaction)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.db.models import ExceptionRow, NotificationEventRow, NotificationRow
from loopgate.resolution_api.exceptions.lifecycle import Status

RATE_LIMITED = "rate_limited"
RESOLVING_KINDS = ("alertmanager", "pagerduty", "opsgenie")  # told when the exception is resolved too


def _insert_ignoring_duplicates(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


# --- events: written in the transaction of the change ----------------------------------------


async def record_events(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Notification events (dicts of exception_id, event, key, created_at; optionally level and
    receivers), once each: an event already recorded for the exception under its key is kept."""
    if rows:
        values = [{"level": None, "receivers": None, "people": None, **row} for row in rows]
        await session.execute(_insert_ignoring_duplicates(session, NotificationEventRow.__table__), values)


async def record_event(*, session: AsyncSession, exception_id: str, event: str, key: str, now: dt.datetime) -> None:
    await record_events(
        session=session, rows=[{"exception_id": exception_id, "event": event, "key": key, "created_at": now}]
    )


_EVENT_PENDING = sa.and_(NotificationEventRow.expanded_at.is_(None), NotificationEventRow.set_aside_at.is_(None))
# retention keeps an exception with one (store.prunable_exceptions); one set aside for good is not waited for
UNTOLD_EVENT = _EVENT_PENDING


async def pending_events(*, session: AsyncSession, limit: int, claim: bool = False) -> list[NotificationEventRow]:
    """Events not yet turned into notifications, oldest first; `claim` (PostgreSQL) locks them,
    skipping those another replica holds (FOR UPDATE SKIP LOCKED)."""
    stmt = sa.select(NotificationEventRow).where(_EVENT_PENDING).order_by(NotificationEventRow.id).limit(limit)
    if claim:
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).scalars())


async def mark_expanded(*, session: AsyncSession, ids: Collection[int], now: dt.datetime) -> None:
    await session.execute(
        sa.update(NotificationEventRow).where(NotificationEventRow.id.in_(ids)).values(expanded_at=now)
    )


async def set_aside_event(*, session: AsyncSession, event_id: int, reason: str, now: dt.datetime) -> None:
    """An event that cannot be turned into notifications: kept, with why, out of the relay's way."""
    await session.execute(
        sa.update(NotificationEventRow)
        .where(NotificationEventRow.id == event_id)
        .values(set_aside_at=now, set_aside_reason=reason[:2000])
    )


# --- notifications ---------------------------------------------------------------------------


async def add_notifications(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Notifications, once each by notification_id (an event expanded twice adds nothing)."""
    if rows:
        values = [{"attempts": 0, "sent_at": None, "set_aside_at": None, "set_aside_reason": None, **r} for r in rows]
        await session.execute(_insert_ignoring_duplicates(session, NotificationRow.__table__), values)


async def exists(*, session: AsyncSession, notification_id: str) -> bool:
    stmt = sa.select(NotificationRow.id).where(NotificationRow.notification_id == notification_id)
    return (await session.execute(stmt)).first() is not None


async def recent_opened(*, session: AsyncSession, fingerprint: str, receiver: str, since: dt.datetime) -> int:
    """Opened notifications of this fingerprint for this receiver since then (rate limited ones
    not counted): how often it flapped."""
    stmt = sa.select(sa.func.count()).where(
        NotificationRow.fingerprint == fingerprint,
        NotificationRow.receiver == receiver,
        NotificationRow.event == "opened",
        NotificationRow.created_at >= since,
        sa.or_(NotificationRow.set_aside_reason.is_(None), NotificationRow.set_aside_reason != RATE_LIMITED),
    )
    return int((await session.execute(stmt)).scalar_one())


async def alert_receivers(*, session: AsyncSession, exception_id: str) -> list[str]:
    """Receivers that resolve (Alertmanager, PagerDuty, Opsgenie) a firing alert of this exception
    was meant for (to resolve it there)."""
    stmt = (
        sa.select(NotificationRow.receiver)
        .where(
            NotificationRow.exception_id == exception_id,
            NotificationRow.receiver_kind.in_(RESOLVING_KINDS),
            NotificationRow.event != "resolved",
            NotificationRow.set_aside_at.is_(None),
        )
        .distinct()
        .order_by(NotificationRow.receiver)
    )
    return list((await session.execute(stmt)).scalars())


async def pagerduty_keys(*, session: AsyncSession, exception_id: str, receiver: str) -> list[tuple[str, ...]]:
    """The routing keys a PagerDuty receiver triggered this exception's incidents with, to resolve
    each: () the receiver's own, (key,) a paged person's (pagerduty.py keeps it in the payload)."""
    stmt = sa.select(NotificationRow.payload).where(
        NotificationRow.exception_id == exception_id,
        NotificationRow.receiver == receiver,
        NotificationRow.event != "resolved",
        NotificationRow.set_aside_at.is_(None),
    )
    keys: dict[tuple[str, ...], None] = {}
    for payload in (await session.execute(stmt.order_by(NotificationRow.id))).scalars():
        try:
            person = json.loads(payload).get("person_routing_key")
        except (ValueError, AttributeError):
            person = None
        keys[(person,) if isinstance(person, str) and person else ()] = None
    return list(keys) or [()]


_PENDING = sa.and_(NotificationRow.sent_at.is_(None), NotificationRow.set_aside_at.is_(None))
UNSENT = _PENDING  # retention keeps an exception with one; one set aside for good is not waited for


async def pending_for(
    *, session: AsyncSession, receiver: str, limit: int, claim: bool = False
) -> list[NotificationRow]:
    """One receiver's unsent notifications, oldest first (its order); `claim` as pending_events."""
    stmt = (
        sa.select(NotificationRow)
        .where(NotificationRow.receiver == receiver, _PENDING)
        .order_by(NotificationRow.id)
        .limit(limit)
    )
    if claim:
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).scalars())


async def mark_sent(*, session: AsyncSession, row_id: int, now: dt.datetime) -> None:
    await session.execute(
        sa.update(NotificationRow)
        .where(NotificationRow.id == row_id)
        .values(sent_at=now, attempts=NotificationRow.attempts + 1, last_error=None)
    )


async def mark_failed(*, session: AsyncSession, row_id: int, error: str) -> None:
    await session.execute(
        sa.update(NotificationRow)
        .where(NotificationRow.id == row_id)
        .values(attempts=NotificationRow.attempts + 1, last_error=error[:2000])
    )


async def set_aside(
    *, session: AsyncSession, now: dt.datetime, reason: str, row_id: int | None = None, receivers: Collection[str] = ()
) -> int:
    """Set aside one notification (row_id), or every pending one of these receivers."""
    stmt = sa.update(NotificationRow).where(_PENDING).values(set_aside_at=now, set_aside_reason=reason[:2000])
    stmt = (
        stmt.where(NotificationRow.id == row_id)
        if row_id is not None
        else stmt.where(NotificationRow.receiver.in_(receivers))
    )
    return cast("sa.CursorResult[Any]", await session.execute(stmt)).rowcount


async def pending_receivers(*, session: AsyncSession) -> list[str]:
    stmt = sa.select(NotificationRow.receiver).where(_PENDING).distinct()
    return list((await session.execute(stmt)).scalars())


async def backlog(*, session: AsyncSession) -> tuple[int, dt.datetime | None]:
    """(notifications waiting, when the oldest waiting notification or event was committed)."""
    pending, oldest = (
        await session.execute(sa.select(sa.func.count(), sa.func.min(NotificationRow.created_at)).where(_PENDING))
    ).one()
    oldest_event = (
        await session.execute(sa.select(sa.func.min(NotificationEventRow.created_at)).where(_EVENT_PENDING))
    ).scalar_one()
    times = [t for t in (oldest, oldest_event) if t is not None]
    # min() of a UTCDateTime column comes back naive on SQLite
    return int(pending), min(t if t.tzinfo else t.replace(tzinfo=dt.UTC) for t in times) if times else None


# Set aside because it could not be rendered, sent or expanded (a rate limited one was a decision):
# what an admin looks at. Partial indexes on exactly these conditions (migration 0011).
NOTIFICATION_FAILED = sa.and_(
    NotificationRow.set_aside_at.is_not(None),
    NotificationRow.set_aside_reason != sa.literal(RATE_LIMITED, literal_execute=True),
)
EVENT_SET_ASIDE = NotificationEventRow.set_aside_at.is_not(None)


async def set_aside_notifications(
    *, session: AsyncSession, limit: int, before_id: int | None = None, receiver: str | None = None
) -> list[NotificationRow]:
    """Notifications set aside as failed, newest first, from below `before_id` (a page)."""
    stmt = sa.select(NotificationRow).where(NOTIFICATION_FAILED)
    if before_id is not None:
        stmt = stmt.where(NotificationRow.id < before_id)
    if receiver is not None:
        stmt = stmt.where(NotificationRow.receiver == receiver)
    return list((await session.execute(stmt.order_by(NotificationRow.id.desc()).limit(limit))).scalars())


async def set_aside_events(
    *, session: AsyncSession, limit: int, before_id: int | None = None
) -> list[NotificationEventRow]:
    """Notification events set aside, newest first, from below `before_id` (a page)."""
    stmt = sa.select(NotificationEventRow).where(EVENT_SET_ASIDE)
    if before_id is not None:
        stmt = stmt.where(NotificationEventRow.id < before_id)
    return list((await session.execute(stmt.order_by(NotificationEventRow.id.desc()).limit(limit))).scalars())


async def for_exception(*, session: AsyncSession, exception_id: str) -> list[NotificationRow]:
    stmt = sa.select(NotificationRow).where(NotificationRow.exception_id == exception_id).order_by(NotificationRow.id)
    return list((await session.execute(stmt)).scalars())


# --- escalation levels -----------------------------------------------------------------------


async def escalation_candidates(
    *, session: AsyncSession, below_level: int, first_seen_before: dt.datetime
) -> list[str]:
    """Unresolved exceptions old enough for a level, with levels left to reach."""
    stmt = (
        sa.select(ExceptionRow.id)
        .where(
            ExceptionRow.status != Status.RESOLVED.value,
            ExceptionRow.escalation_level < below_level,
            ExceptionRow.first_seen <= first_seen_before,
        )
        .order_by(ExceptionRow.first_seen)
    )
    return list((await session.execute(stmt)).scalars())


async def set_escalation_level(*, session: AsyncSession, exception_id: str, before: int, after: int) -> bool:
    """Move the level on, unless someone else did meanwhile (another replica's sweeper)."""
    stmt = (
        sa.update(ExceptionRow)
        .where(ExceptionRow.id == exception_id, ExceptionRow.escalation_level == before)
        .values(escalation_level=after)
    )
    return cast("sa.CursorResult[Any]", await session.execute(stmt)).rowcount == 1
