"""Queries of the resolution API: module-level, keyword-only functions over an AsyncSession.
They never commit: the caller (creation.py, reading.py, transitions.py...) owns the transaction.
Token queries are tokens.py's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.lifecycle import Status
from loopgate.resolution_api.models import (
    ExceptionEventRow,
    ExceptionRow,
    OccurrenceRow,
    OutboxRow,
)
from loopgate_schemas.exceptions import ExceptionRecord

# --- exceptions ------------------------------------------------------------------------------


async def get_exception(*, session: AsyncSession, exception_id: str) -> ExceptionRow | None:
    return await session.get(ExceptionRow, exception_id, populate_existing=True)


async def get_exceptions(*, session: AsyncSession, ids: Collection[str]) -> dict[str, ExceptionRow]:
    if not ids:
        return {}
    stmt = sa.select(ExceptionRow).where(ExceptionRow.id.in_(ids))
    return {row.id: row for row in (await session.scalars(stmt)).all()}


async def lock_unresolved(*, session: AsyncSession, fingerprints: Collection[str]) -> dict[str, ExceptionRow]:
    """The unresolved exception of each fingerprint that has one, locked until the transaction
    ends (PostgreSQL: FOR UPDATE, in id order; SQLite writers hold the whole database anyway), so
    nobody resolves it while occurrences are added."""
    if not fingerprints:
        return {}
    stmt = (
        sa.select(ExceptionRow)
        .where(ExceptionRow.fingerprint.in_(fingerprints), ExceptionRow.status != Status.RESOLVED)
        .order_by(ExceptionRow.id)
        .with_for_update()
    )
    return {row.fingerprint: row for row in (await session.scalars(stmt)).all()}


async def find_occurrences(*, session: AsyncSession, record_ids: Collection[str]) -> dict[str, str]:
    """Of these records, those received before: record id -> the exception it counted in."""
    if not record_ids:
        return {}
    stmt = sa.select(OccurrenceRow.record_id, OccurrenceRow.exception_id).where(OccurrenceRow.record_id.in_(record_ids))
    return {record_id: exception_id for record_id, exception_id in (await session.execute(stmt)).all()}


def _record_columns(record: ExceptionRecord) -> dict[str, Any]:
    return {
        "fingerprint": record.fingerprint,
        "kind": record.kind.value,
        "rule_id": record.rule_id,
        "severity": record.severity.value,
        "source": record.source,
        "event_type": record.event_type,
        "subject": record.subject,
        "client_id": record.client_id,
        "summary": record.summary,
        "observed": record.observed,
        "threshold": record.threshold,
        "expected": record.expected,
        "score": record.score,
        "event": record.event,
        "event_ref": record.event_ref.model_dump() if record.event_ref else None,
        "trimmed": record.trimmed,
    }


def new_exception_values(record: ExceptionRecord, *, now: dt.datetime) -> dict[str, Any]:
    """The column values of a new open exception from its first record (the one row shape: the
    benchmark loads rows built here too)."""
    return {
        "id": record.exception_id,
        **_record_columns(record),
        "occurrences": record.occurrences,
        "first_seen": record.detected_at.astimezone(dt.UTC),
        "last_seen": record.detected_at.astimezone(dt.UTC),
        "status": Status.OPEN.value,
        "resolution_count": 0,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def new_exception(*, session: AsyncSession, record: ExceptionRecord, now: dt.datetime) -> ExceptionRow:
    """A new open exception from its first record, added to the session (inserted at its flush)."""
    row = ExceptionRow(**new_exception_values(record, now=now))
    session.add(row)
    return row


def count_occurrence(row: ExceptionRow, record: ExceptionRecord) -> None:
    """Add a record's occurrences to its unresolved (locked) exception, widening first/last seen.
    The version is left alone: a new firing is not a state change an operator raced against."""
    detected_at = record.detected_at.astimezone(dt.UTC)
    row.occurrences += record.occurrences
    row.first_seen = min(row.first_seen, detected_at)
    row.last_seen = max(row.last_seen, detected_at)


def occurrence(*, exception_id: str, record: ExceptionRecord, now: dt.datetime) -> dict[str, Any]:
    """The occurrences row of one received record (see insert_occurrences)."""
    return {
        "record_id": record.exception_id,
        "exception_id": exception_id,
        "occurrences": record.occurrences,
        "detected_at": record.detected_at.astimezone(dt.UTC),
        "received_at": now,
    }


async def insert_occurrences(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(sa.insert(OccurrenceRow), rows)


async def update_if_version(*, session: AsyncSession, exception_id: str, version: int, values: dict[str, Any]) -> bool:
    """The optimistic-concurrency write: applies `values` and bumps the version only if nobody
    changed the exception since it was read at `version`."""
    stmt = (
        sa.update(ExceptionRow)
        .where(ExceptionRow.id == exception_id, ExceptionRow.version == version)
        .values(**values, version=version + 1)
        .execution_options(synchronize_session=False)
    )
    result = cast("sa.CursorResult[Any]", await session.execute(stmt))  # an UPDATE's result has a rowcount
    return result.rowcount == 1


@dataclass(frozen=True, slots=True)
class ExceptionFilters:
    status: Sequence[str] = ()
    severity: Sequence[str] = ()
    source: str | None = None
    rule_id: str | None = None
    client_id: str | None = None
    assignee: str | None = None
    # On first_seen: detected_after <= first_seen < detected_before.
    detected_after: dt.datetime | None = None
    detected_before: dt.datetime | None = None


async def list_exceptions(
    *,
    session: AsyncSession,
    filters: ExceptionFilters,
    after: tuple[dt.datetime, str] | None,
    limit: int,
) -> list[ExceptionRow]:
    """Newest first, keyset-paginated on (created_at, id). The page's ids are found first, from an
    index that ends in (created_at, id) where one fits, and only those rows are read: the database
    never reads and sorts every matching row (SQLite would, for a time range).

    A bounded window of first_seen (detected_before given) is the exception: read newest first,
    the database would step over every exception created since the window (on PostgreSQL, 300 ms
    for a day a month back, with 1,000,000 stored). Its matches are read through the first_seen
    index and sorted instead (MATERIALIZED keeps the planner from merging the two), a cost that
    grows with the window the operator asked for, not with the table.

    Several statuses (the on-call queue: open, claimed, escalated) are read one status at a time,
    each newest first from its own index with the page's limit, and the few rows merged: as one
    IN list, SQLite sorted every unresolved exception (70 ms with 1,000,000 stored)."""
    t = ExceptionRow
    newest_first = (t.created_at.desc(), t.id.desc())
    conditions = _filter_conditions(filters)
    if after is not None:
        created_at, last_id = after
        conditions.append(sa.or_(t.created_at < created_at, sa.and_(t.created_at == created_at, t.id < last_id)))
    if filters.detected_before is not None:
        if len(filters.status) > 1:
            conditions.append(t.status.in_(filters.status))
        matches = sa.select(t.id, t.created_at).where(*conditions).cte("matches").prefix_with("MATERIALIZED")
        page = sa.select(matches.c.id).order_by(matches.c.created_at.desc(), matches.c.id.desc()).limit(limit)
    elif len(filters.status) > 1:
        branches = [
            sa.select(t.id, t.created_at)
            .where(*conditions, t.status == status)
            .order_by(*newest_first)
            .limit(limit)
            .subquery()
            for status in dict.fromkeys(filters.status)
        ]
        merged = sa.union_all(*(sa.select(b.c.id, b.c.created_at) for b in branches))
        candidates = merged.subquery("candidates")
        page = sa.select(candidates.c.id).order_by(candidates.c.created_at.desc(), candidates.c.id.desc()).limit(limit)
    else:
        page = sa.select(t.id).where(*conditions).order_by(*newest_first).limit(limit)
    stmt = sa.select(t).where(t.id.in_(page.scalar_subquery())).order_by(*newest_first)
    return list((await session.execute(stmt)).scalars())


def _filter_conditions(filters: ExceptionFilters) -> list[sa.ColumnElement[bool]]:
    """The list filters but several statuses (the caller reads those its own way)."""
    t = ExceptionRow
    conditions: list[sa.ColumnElement[bool]] = []
    if len(filters.status) == 1:
        conditions.append(t.status == filters.status[0])
    if filters.severity:
        conditions.append(t.severity.in_(filters.severity))
    for column, value in (
        (t.source, filters.source),
        (t.rule_id, filters.rule_id),
        (t.client_id, filters.client_id),
        (t.assignee, filters.assignee),
    ):
        if value is not None:
            conditions.append(column == value)
    if filters.detected_after is not None:
        conditions.append(t.first_seen >= filters.detected_after)
    if filters.detected_before is not None:
        conditions.append(t.first_seen < filters.detected_before)
    return conditions


def _matching(filters: ExceptionFilters, statuses: Collection[str]) -> list[sa.ColumnElement[bool]]:
    """The list filters, among exceptions in `statuses` (those an action is allowed from)."""
    wanted = [s for s in statuses if not filters.status or s in filters.status]
    return [*_filter_conditions(filters), ExceptionRow.status.in_(wanted)]


async def count_matching(*, session: AsyncSession, filters: ExceptionFilters, statuses: Collection[str]) -> int:
    stmt = sa.select(sa.func.count()).select_from(ExceptionRow).where(*_matching(filters, statuses))
    return int((await session.execute(stmt)).scalar_one())


async def lock_matching(
    *, session: AsyncSession, filters: ExceptionFilters, statuses: Collection[str], after_id: str | None, limit: int
) -> list[ExceptionRow]:
    """The next `limit` matching exceptions in id order after `after_id`, locked until the
    transaction ends (PostgreSQL: FOR UPDATE, which waits for a concurrent transition and reads the
    row as it left it; SQLite writers hold the whole database)."""
    conditions = _matching(filters, statuses)
    if after_id is not None:
        conditions.append(ExceptionRow.id > after_id)
    stmt = sa.select(ExceptionRow).where(*conditions).order_by(ExceptionRow.id).limit(limit).with_for_update()
    return list((await session.scalars(stmt)).all())


async def unresolved_ids(*, session: AsyncSession, fingerprint: str) -> list[str]:
    stmt = sa.select(ExceptionRow.id).where(
        ExceptionRow.fingerprint == fingerprint, ExceptionRow.status != Status.RESOLVED
    )
    return list((await session.execute(stmt)).scalars())


async def due_snoozes(*, session: AsyncSession, now: dt.datetime) -> list[str]:
    stmt = sa.select(ExceptionRow.id).where(ExceptionRow.status == Status.SNOOZED, ExceptionRow.snoozed_until <= now)
    return list((await session.execute(stmt)).scalars())


async def sla_candidates(*, session: AsyncSession, oldest_first_seen: dt.datetime) -> list[ExceptionRow]:
    """Open, claimed or snoozed exceptions first seen before `oldest_first_seen` (the shortest SLA ago)."""
    stmt = sa.select(ExceptionRow).where(
        ExceptionRow.status.in_([Status.OPEN, Status.CLAIMED, Status.SNOOZED]),
        ExceptionRow.first_seen < oldest_first_seen,
        sa.or_(ExceptionRow.sla_breach.is_(None), ExceptionRow.sla_breach != "resolve"),
    )
    return list((await session.execute(stmt)).scalars())


async def count_unresolved(*, session: AsyncSession) -> dict[tuple[str, str], int]:
    """Unresolved exceptions by (severity, status)."""
    stmt = (
        sa.select(ExceptionRow.severity, ExceptionRow.status, sa.func.count())
        .where(ExceptionRow.status != Status.RESOLVED)
        .group_by(ExceptionRow.severity, ExceptionRow.status)
    )
    return {(sev, status): n for sev, status, n in (await session.execute(stmt)).all()}


# --- history ---------------------------------------------------------------------------------


async def add_event(
    *,
    session: AsyncSession,
    exception_id: str,
    at: dt.datetime,
    actor: str,
    action: str,
    from_status: str | None,
    to_status: str | None,
    fields: dict[str, Any] | None = None,
) -> None:
    session.add(
        ExceptionEventRow(
            exception_id=exception_id,
            at=at,
            actor=actor,
            action=action,
            from_status=from_status,
            to_status=to_status,
            fields=fields or {},
        )
    )
    await session.flush()


async def add_events(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """History rows in one statement: dicts with add_event's fields (`fields` required)."""
    if rows:
        await session.execute(sa.insert(ExceptionEventRow), rows)


async def history(*, session: AsyncSession, exception_id: str) -> list[ExceptionEventRow]:
    stmt = (
        sa.select(ExceptionEventRow)
        .where(ExceptionEventRow.exception_id == exception_id)
        .order_by(ExceptionEventRow.id)
    )
    return list((await session.execute(stmt)).scalars())


# --- outbox ----------------------------------------------------------------------------------


async def add_outbox_rows(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Outbox rows in one statement: dicts of outcome_id, exception_id, payload, created_at."""
    if rows:
        await session.execute(sa.insert(OutboxRow), [{**row, "attempts": 0} for row in rows])


async def add_outbox(
    *, session: AsyncSession, outcome_id: str, exception_id: str, payload: str, now: dt.datetime
) -> None:
    session.add(
        OutboxRow(
            outcome_id=outcome_id,
            exception_id=exception_id,
            payload=payload,
            created_at=now,
            attempts=0,
        )
    )
    await session.flush()


_PENDING = sa.and_(OutboxRow.sent_at.is_(None), OutboxRow.set_aside_at.is_(None))


async def pending_outbox(*, session: AsyncSession, limit: int, claim: bool = False) -> list[OutboxRow]:
    """Outcomes neither sent nor set aside, oldest first. `claim` (PostgreSQL): locked until the
    transaction ends, skipping those another replica's relay holds (FOR UPDATE SKIP LOCKED)."""
    stmt = sa.select(OutboxRow).where(_PENDING).order_by(OutboxRow.id).limit(limit)
    if claim:
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).scalars())


async def count_outbox(*, session: AsyncSession) -> tuple[int, int]:
    """(pending, set aside) outcomes."""
    stmt = sa.select(
        sa.func.count().filter(_PENDING), sa.func.count().filter(OutboxRow.set_aside_at.is_not(None))
    ).select_from(OutboxRow)
    pending, set_aside = (await session.execute(stmt)).one()
    return int(pending), int(set_aside)


async def mark_sent(*, session: AsyncSession, outbox_id: int, now: dt.datetime) -> None:
    await session.execute(
        sa.update(OutboxRow)
        .where(OutboxRow.id == outbox_id)
        .values(sent_at=now, attempts=OutboxRow.attempts + 1, last_error=None)
    )


async def mark_failed(*, session: AsyncSession, outbox_id: int, error: str) -> None:
    await session.execute(
        sa.update(OutboxRow)
        .where(OutboxRow.id == outbox_id)
        .values(attempts=OutboxRow.attempts + 1, last_error=error[:2000])
    )


async def count_pending_outbox(*, session: AsyncSession) -> int:
    return (await count_outbox(session=session))[0]


async def set_aside(*, session: AsyncSession, outbox_id: int, reason: str, now: dt.datetime) -> None:
    """An outcome that can never be published as it is: kept, with why, out of the relay's way."""
    await session.execute(
        sa.update(OutboxRow)
        .where(OutboxRow.id == outbox_id)
        .values(
            set_aside_at=now,
            set_aside_reason=reason[:2000],
            attempts=OutboxRow.attempts + 1,
            last_error=reason[:2000],
        )
    )


async def outbox_for(*, session: AsyncSession, exception_id: str) -> list[OutboxRow]:
    stmt = sa.select(OutboxRow).where(OutboxRow.exception_id == exception_id).order_by(OutboxRow.id)
    return list((await session.execute(stmt)).scalars())


# --- retention -------------------------------------------------------------------------------


async def prunable_exceptions(*, session: AsyncSession, resolved_before: dt.datetime, limit: int) -> list[str]:
    """Resolved exceptions resolved before the cutoff whose outcomes have all left the outbox's
    pending rows (sent or set aside), oldest first."""
    pending = sa.select(OutboxRow.id).where(OutboxRow.exception_id == ExceptionRow.id, _PENDING).exists()
    stmt = (
        sa.select(ExceptionRow.id)
        .where(ExceptionRow.status == Status.RESOLVED, ExceptionRow.resolved_at < resolved_before, ~pending)
        .order_by(ExceptionRow.resolved_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def delete_exceptions(*, session: AsyncSession, ids: Collection[str]) -> dict[str, int]:
    """Delete exceptions with their history, occurrences and outbox rows: rows deleted per table."""
    deleted = {}
    for table, column in (
        (ExceptionEventRow, ExceptionEventRow.exception_id),
        (OccurrenceRow, OccurrenceRow.exception_id),
        (OutboxRow, OutboxRow.exception_id),
        (ExceptionRow, ExceptionRow.id),
    ):
        result = cast("sa.CursorResult[Any]", await session.execute(sa.delete(table).where(column.in_(ids))))
        deleted[table.__tablename__] = result.rowcount
    return deleted


async def delete_sent_outbox(*, session: AsyncSession, sent_before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` outbox rows published before the cutoff; how many."""
    oldest = sa.select(OutboxRow.id).where(OutboxRow.sent_at < sent_before).order_by(OutboxRow.id).limit(limit)
    stmt = sa.delete(OutboxRow).where(OutboxRow.id.in_(oldest.scalar_subquery()))
    return cast("sa.CursorResult[Any]", await session.execute(stmt)).rowcount
