"""Queries of the resolution API: module-level, keyword-only functions over an AsyncSession.
They never commit: the caller (creation.py, reading.py, transitions.py...) owns the transaction.
Token queries are tokens.py's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.db.models import (
    ACK_DUE,
    RESOLVE_DUE,
    SNOOZE_DUE,
    ExceptionEventRow,
    ExceptionRow,
    NotificationEventRow,
    NotificationGroupMemberRow,
    NotificationInhibitionRow,
    NotificationRow,
    OccurrenceRow,
    OutboxRow,
)
from loopgate.resolution_api.domain_errors import Conflict
from loopgate.resolution_api.exceptions.cursor import RANKS, Position, Sort
from loopgate.resolution_api.exceptions.lifecycle import Status
from loopgate.resolution_api.notifications import store as notifications
from loopgate_schemas.exceptions import ExceptionRecord, Severity
from loopgate_schemas.outcomes import DEFAULT_QUEUE

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
        "impact": record.impact.model_dump() if record.impact else None,
        "impact_amount": record.impact.amount if record.impact else None,
        "severity_rank": record.severity.rank,
        "release_deadline": record.deadline,
    }


def new_exception_values(
    record: ExceptionRecord, *, now: dt.datetime, queue: str = DEFAULT_QUEUE, silenced_by: str | None = None
) -> dict[str, Any]:
    """The column values of a new open exception from its first record, routed to `queue` and held
    by the silence `silenced_by` (the one row shape: the benchmark loads rows built here too);
    first and last seen when the record was detected, never after `now`."""
    seen = min(record.detected_at.astimezone(dt.UTC), now)
    return {
        "id": record.exception_id,
        **_record_columns(record),
        "queue": queue,
        "silenced_by": silenced_by,
        "occurrences": record.occurrences,
        "first_seen": seen,
        "last_seen": seen,
        "status": Status.OPEN.value,
        "resolution_count": 0,
        "escalation_level": 0,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def new_exception(
    *,
    session: AsyncSession,
    record: ExceptionRecord,
    now: dt.datetime,
    queue: str = DEFAULT_QUEUE,
    silenced_by: str | None = None,
) -> ExceptionRow:
    """A new open exception from its first record, added to the session (inserted at its flush)."""
    row = ExceptionRow(**new_exception_values(record, now=now, queue=queue, silenced_by=silenced_by))
    session.add(row)
    return row


def count_occurrence(row: ExceptionRow, record: ExceptionRecord, now: dt.datetime) -> None:
    """Add a record's occurrences to its unresolved (locked) exception. first_seen stays (SLAs and
    time to resolve run from it: a late record never breaches them after the fact); last_seen moves
    forward, never past `now`. The version is left alone: a new firing is not a state change an
    operator raced against."""
    row.occurrences += record.occurrences
    row.last_seen = max(row.last_seen, min(record.detected_at.astimezone(dt.UTC), now))


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
    # impact_amount >= min_impact (whatever the currency); exceptions without an impact never match.
    min_impact: float | None = None
    queue: Sequence[str] = ()
    # False: only those no silence holds (the on-call queue); True: only silenced ones; None: both.
    silenced: bool | None = None


async def list_exceptions(
    *,
    session: AsyncSession,
    filters: ExceptionFilters,
    sort: Sort = Sort.NEWEST,
    after: Position | None,
    limit: int,
) -> list[ExceptionRow]:
    """A page in `sort` order (cursor.py), keyset-paginated on its keys. The page's ids are found
    first, from an index that ends in the order's keys where one fits, and only those rows are
    read: the database never reads and sorts every matching row (SQLite would, for a time range).

    A bounded window of first_seen (detected_before given) is the exception: read newest first,
    the database would step over every exception created since the window (on PostgreSQL, 300 ms
    for a day a month back, with 1,000,000 stored). Its matches are read through the first_seen
    index and sorted instead (MATERIALIZED keeps the planner from merging the two), a cost that
    grows with the window the operator asked for, not with the table.

    Several statuses (the on-call queue: open, claimed, escalated) are read one status at a time,
    each newest first from its own index with the page's limit, and the few rows merged: as one
    IN list, SQLite sorted every unresolved exception (70 ms with 1,000,000 stored). The severity
    and impact orders are read the same way from their own indexes, one status (every status when
    none is asked for), severity and with-or-without impact at a time (see _ranked_reads)."""
    t = ExceptionRow
    conditions = _filter_conditions(filters)
    if filters.detected_before is not None:
        if len(filters.status) > 1:
            conditions.append(t.status.in_(filters.status))
        if after is not None:
            conditions.append(_after(after))
        matches = (
            sa.select(t.id, t.created_at, t.severity_rank, t.impact_amount)
            .where(*conditions)
            .cte("matches")
            .prefix_with("MATERIALIZED")
        )
        page = sa.select(matches.c.id).order_by(*_order(matches.c, sort)).limit(limit)
    elif sort is not Sort.NEWEST:
        branches = [
            sa.select(t.id, t.created_at, t.severity_rank, t.impact_amount)
            .where(*conditions, *branch)
            .order_by(*order)
            .limit(limit)
            .subquery()
            for branch, order in _ranked_reads(filters, sort, after)
        ]
        if not branches:  # the cursor is past every severity asked for
            return []
        merged = sa.union_all(
            *(sa.select(b.c.id, b.c.created_at, b.c.severity_rank, b.c.impact_amount) for b in branches)
        )
        candidates = merged.subquery("candidates")
        page = sa.select(candidates.c.id).order_by(*_order(candidates.c, sort)).limit(limit)
    else:
        newest_first = _order(t, Sort.NEWEST)
        if after is not None:
            conditions.append(_after(after))
        if len(filters.status) > 1:
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
            page = sa.select(candidates.c.id).order_by(*_order(candidates.c, Sort.NEWEST)).limit(limit)
        else:
            page = sa.select(t.id).where(*conditions).order_by(*newest_first).limit(limit)
    stmt = sa.select(t).where(t.id.in_(page.scalar_subquery())).order_by(*_order(t, sort))
    return list((await session.execute(stmt)).scalars())


def _order(c: Any, sort: Sort) -> list[sa.UnaryExpression[Any]]:
    """The ORDER BY of `sort` over the columns `c` (the table's, or a subquery's)."""
    newest = [c.created_at.desc(), c.id.desc()]
    if sort is Sort.NEWEST:
        return newest
    by_impact = [c.impact_amount.desc().nulls_last(), *newest]
    return by_impact if sort is Sort.IMPACT else [c.severity_rank.desc(), *by_impact]


def _older(p: Position) -> sa.ColumnElement[bool]:
    t = ExceptionRow
    return sa.or_(t.created_at < p.created_at, sa.and_(t.created_at == p.created_at, t.id < p.exception_id))


def _after(p: Position) -> sa.ColumnElement[bool]:
    """The exceptions after position `p` in its order (whatever the status or severity)."""
    t = ExceptionRow
    if p.sort is Sort.NEWEST:
        return _older(p)
    if p.impact_amount is None:  # those without impact come last: only older ones without impact follow
        by_impact = sa.and_(t.impact_amount.is_(None), _older(p))
    else:
        by_impact = sa.or_(_smaller_impact(p), t.impact_amount.is_(None))
    if p.sort is Sort.IMPACT:
        return by_impact
    return sa.or_(t.severity_rank < p.severity_rank, sa.and_(t.severity_rank == p.severity_rank, by_impact))


def _smaller_impact(p: Position) -> sa.ColumnElement[bool]:
    """After `p` among exceptions with an impact (p has one): `<=` first, so an index range starts there."""
    t = ExceptionRow
    amount = p.impact_amount
    return sa.and_(t.impact_amount <= amount, sa.or_(t.impact_amount < amount, _older(p)))


def _ranked_reads(
    filters: ExceptionFilters, sort: Sort, after: Position | None
) -> Iterator[tuple[list[sa.ColumnElement[bool]], list[sa.UnaryExpression[Any]]]]:
    """The reads that a page in severity or impact order is merged from, each (conditions, order)
    one range of its index in order: one status, one severity (sort=severity), with an impact or
    without. Reads the cursor is past are left out, and the cursor's own read starts after it."""
    t = ExceptionRow
    statuses = list(dict.fromkeys(filters.status)) or [status.value for status in Status]
    ranks: list[int | None] = [None]
    if sort is Sort.SEVERITY:
        asked = {Severity(s).rank for s in filters.severity} or set(RANKS)
        ranks = [*sorted((r for r in asked if after is None or r <= after.severity_rank), reverse=True)]
    newest = _order(t, Sort.NEWEST)
    for status in statuses:
        for rank in ranks:
            here: list[sa.ColumnElement[bool]] = [t.status == status]
            if rank is not None:
                here.append(t.severity_rank == rank)
            at_cursor = after is not None and (rank is None or rank == after.severity_rank)
            if after is None or not at_cursor or after.impact_amount is not None:
                with_impact = [*here, t.impact_amount.is_not(None)]
                if after is not None and at_cursor:
                    with_impact.append(_smaller_impact(after))
                yield with_impact, [t.impact_amount.desc(), *newest]
            without = [*here, t.impact_amount.is_(None)]
            if after is not None and at_cursor and after.impact_amount is None:
                without.append(_older(after))
            yield without, newest


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
    if filters.min_impact is not None:
        conditions.append(t.impact_amount >= filters.min_impact)
    if filters.queue:
        conditions.append(t.queue.in_(filters.queue))
    if filters.silenced is not None:
        conditions.append(t.silenced_by.is_not(None) if filters.silenced else t.silenced_by.is_(None))
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


async def matching_versions(
    *, session: AsyncSession, filters: ExceptionFilters, statuses: Collection[str], limit: int
) -> list[tuple[str, int]]:
    """(id, version) of up to `limit` matching exceptions in id order: the two columns alone."""
    t = ExceptionRow
    stmt = sa.select(t.id, t.version).where(*_matching(filters, statuses)).order_by(t.id).limit(limit)
    return [(i, v) for i, v in (await session.execute(stmt)).all()]


async def lock_exceptions(*, session: AsyncSession, ids: Collection[str]) -> list[ExceptionRow]:
    """These exceptions (those that exist), locked until the transaction ends, in id order."""
    if not ids:
        return []
    stmt = sa.select(ExceptionRow).where(ExceptionRow.id.in_(ids)).order_by(ExceptionRow.id).with_for_update()
    return list((await session.scalars(stmt)).all())


async def unresolved_ids(*, session: AsyncSession, fingerprint: str) -> list[str]:
    stmt = sa.select(ExceptionRow.id).where(
        ExceptionRow.fingerprint == fingerprint, ExceptionRow.status != Status.RESOLVED
    )
    return list((await session.execute(stmt)).scalars())


# --- the sweeper's deadlines -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    """What the sweeper reads of an exception whose deadline has passed: never its event."""

    id: str
    status: str
    severity: str
    first_seen: dt.datetime
    sla_breach: str | None
    snoozed_until: dt.datetime | None
    version: int
    resolution_count: int


def _due_columns() -> list[Any]:
    t = ExceptionRow
    return [t.id, t.status, t.severity, t.first_seen, t.sla_breach, t.snoozed_until, t.version, t.resolution_count]


def _due_ids(deadlines: dict[str, tuple[float, float]], now: dt.datetime) -> sa.CompoundSelect[Any]:
    """The ids of the exceptions past an SLA they have not breached yet, by severity's (ack, resolve)
    seconds: a range of `ix_exceptions_resolve_due` and of `ix_exceptions_ack_due` per severity,
    each holding due rows only (every row such a range reads is one the sweeper changes)."""
    t = ExceptionRow
    branches = [
        sa.select(t.id).where(
            sa.text(condition), t.severity == severity, t.first_seen < now - dt.timedelta(seconds=seconds[which])
        )
        for condition, which in ((RESOLVE_DUE, 1), (ACK_DUE, 0))
        for severity, seconds in deadlines.items()
    ]
    return sa.union(*branches)


def _snoozes_due(now: dt.datetime) -> sa.Select[Any]:
    """The ids of the snoozed exceptions whose time has come (`ix_exceptions_snooze_due`)."""
    return sa.select(ExceptionRow.id).where(sa.text(SNOOZE_DUE), ExceptionRow.snoozed_until <= now)


async def _any(session: AsyncSession, ids: sa.Select[Any] | sa.CompoundSelect[Any]) -> bool:
    return (await session.execute(ids.limit(1))).first() is not None


async def _read_due(
    session: AsyncSession, ids: sa.Select[Any] | sa.CompoundSelect[Any], limit: int, lock: bool
) -> list[Due]:
    """Up to `limit` of the rows `ids` names, in id order (the order every writer locks in); `lock`
    (PostgreSQL): held until the transaction ends, as they are now (SQLite's writer holds the whole
    database). The caller checks each again: a row may have changed before it was locked."""
    stmt = (
        sa.select(*_due_columns())
        .where(ExceptionRow.id.in_(ids.scalar_subquery()))
        .order_by(ExceptionRow.id)
        .limit(limit)
    )
    if lock:
        stmt = stmt.with_for_update()
    return [Due(*row) for row in (await session.execute(stmt)).all()]


async def any_snoozes_due(*, session: AsyncSession, now: dt.datetime) -> bool:
    return await _any(session, _snoozes_due(now))


async def due_snoozes(*, session: AsyncSession, now: dt.datetime, limit: int, lock: bool = False) -> list[Due]:
    """Snoozed exceptions whose time has come."""
    return await _read_due(session, _snoozes_due(now), limit, lock)


async def any_sla_breaches_due(
    *, session: AsyncSession, deadlines: dict[str, tuple[float, float]], now: dt.datetime
) -> bool:
    return await _any(session, _due_ids(deadlines, now))


async def due_sla_breaches(
    *,
    session: AsyncSession,
    deadlines: dict[str, tuple[float, float]],
    now: dt.datetime,
    limit: int,
    lock: bool = False,
) -> list[Due]:
    """Exceptions past an SLA they have not breached yet (see _due_ids)."""
    return await _read_due(session, _due_ids(deadlines, now), limit, lock)


async def write_due(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """The sweeper's changes in one statement (executemany): dicts of `id` and the new `status`,
    `sla_breach`, `snoozed_until`, `version` and `updated_at` of rows it holds locked."""
    if not rows:
        return
    table = cast("sa.Table", ExceptionRow.__table__)
    columns = ("status", "sla_breach", "snoozed_until", "version", "updated_at")
    stmt = (
        table.update()
        .where(table.c.id == sa.bindparam("due_id"))
        .values({name: sa.bindparam(f"due_{name}", type_=table.c[name].type) for name in columns})
    )
    await session.execute(stmt, [{f"due_{k}": v for k, v in row.items()} for row in rows])


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
    locked: bool = False,
) -> None:
    """One history row. Unless the caller already holds the exception's row lock (`locked`: it
    updated the row in this transaction), it is taken first on PostgreSQL, so history rows of one
    exception commit in id order (history paging relies on it; SQLite has one writer anyway)."""
    if not locked and session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(ExceptionRow.id).where(ExceptionRow.id == exception_id).with_for_update())
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
    """History rows in one statement: dicts with add_event's fields (`fields` required), of
    exceptions whose row locks the caller holds (it created, grouped or changed them)."""
    if rows:
        await session.execute(sa.insert(ExceptionEventRow), rows)


async def history(
    *, session: AsyncSession, exception_id: str, after_id: int | None = None, limit: int | None = None
) -> list[ExceptionEventRow]:
    """The exception's history in id order: after the event `after_id`, at most `limit` events.
    Paging on the id is exact while events are added: every history row is written under its
    exception's row lock, held until it commits (add_event), so a row committed later always has
    a larger id than the rows a page already showed."""
    t = ExceptionEventRow
    stmt = sa.select(t).where(t.exception_id == exception_id).order_by(t.id)
    if after_id is not None:
        stmt = stmt.where(t.id > after_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.execute(stmt)).scalars())


# --- outbox ----------------------------------------------------------------------------------


async def add_outbox_rows(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Outbox rows in one statement: dicts of outcome_id, exception_id, payload, created_at."""
    if rows:
        await session.execute(sa.insert(OutboxRow), [{**row, "attempts": 0} for row in rows])


async def add_outbox(
    *,
    session: AsyncSession,
    outcome_id: str,
    exception_id: str,
    payload: str,
    now: dt.datetime,
    traceparent: str | None = None,
) -> None:
    session.add(
        OutboxRow(
            outcome_id=outcome_id,
            exception_id=exception_id,
            payload=payload,
            created_at=now,
            attempts=0,
            traceparent=traceparent,
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


async def oldest_pending_outbox(*, session: AsyncSession) -> dt.datetime | None:
    """When the oldest outcome still waiting to be published was committed; None when none waits."""
    value: dt.datetime | None = await session.scalar(sa.select(sa.func.min(OutboxRow.created_at)).where(_PENDING))
    return value


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


async def set_aside_outbox(*, session: AsyncSession, limit: int, before_id: int | None = None) -> list[OutboxRow]:
    """Outcomes set aside, newest first, from below `before_id` (a page for an admin)."""
    stmt = sa.select(OutboxRow).where(OutboxRow.set_aside_at.is_not(None))
    if before_id is not None:
        stmt = stmt.where(OutboxRow.id < before_id)
    return list((await session.execute(stmt.order_by(OutboxRow.id.desc()).limit(limit))).scalars())


async def outbox_for(*, session: AsyncSession, exception_id: str) -> list[OutboxRow]:
    stmt = sa.select(OutboxRow).where(OutboxRow.exception_id == exception_id).order_by(OutboxRow.id)
    return list((await session.execute(stmt)).scalars())


# --- retention -------------------------------------------------------------------------------


_UNPUBLISHED = OutboxRow.sent_at.is_(None)


def _prunable(resolved_before: dt.datetime) -> sa.ColumnElement[bool]:
    """Resolved before the cutoff, with nothing left that was never sent: no outcome unpublished
    (pending, or set aside: downstream never had it), no notification event not yet fanned out and
    no notification waiting for its receiver (one set aside for good, e.g. rate limited, is not)."""
    unpublished = sa.select(OutboxRow.id).where(OutboxRow.exception_id == ExceptionRow.id, _UNPUBLISHED).exists()
    untold = (
        sa.select(NotificationEventRow.id)
        .where(NotificationEventRow.exception_id == ExceptionRow.id, notifications.UNTOLD_EVENT)
        .exists()
    )
    unsent = (
        sa.select(NotificationRow.id)
        .where(NotificationRow.exception_id == ExceptionRow.id, notifications.UNSENT)
        .exists()
    )
    return sa.and_(
        ExceptionRow.status == Status.RESOLVED,
        ExceptionRow.resolved_at < resolved_before,
        ~unpublished,
        ~untold,
        ~unsent,
    )


@dataclass(frozen=True, slots=True)
class Prunable:
    id: str
    resolved_at: dt.datetime


async def prunable_exceptions(
    *,
    session: AsyncSession,
    resolved_before: dt.datetime,
    limit: int,
    after: Prunable | None = None,
    lock: bool = False,
) -> list[Prunable]:
    """Exceptions retention may delete (`_prunable`), oldest first, from past `after` on. `lock`
    (PostgreSQL): locked until the transaction ends, skipping those another transaction holds
    (FOR UPDATE SKIP LOCKED: a reopen, a resolve or a row being added to them), so nobody changes
    them or adds to them before they are deleted."""
    stmt = (
        sa.select(ExceptionRow.id, ExceptionRow.resolved_at)
        .where(_prunable(resolved_before))
        .order_by(ExceptionRow.resolved_at, ExceptionRow.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(sa.tuple_(ExceptionRow.resolved_at, ExceptionRow.id) > (after.resolved_at, after.id))
    if lock:
        stmt = stmt.with_for_update(skip_locked=True)
    rows = (await session.execute(stmt)).all()
    return [Prunable(id=id_, resolved_at=at) for id_, at in rows if at is not None]  # None never: resolved


async def delete_exceptions(
    *, session: AsyncSession, ids: Collection[str], resolved_before: dt.datetime
) -> dict[str, int]:
    """Delete those of these exceptions still prunable, checked again in this transaction (a
    reopen or a resolve committed since they were chosen keeps its exception), with their history,
    occurrences, outbox rows and notifications: rows deleted per table. Raises Conflict, for the
    caller to roll back, if an exception changed between that check and its DELETE (whose WHERE
    checks its status once more)."""
    still = sa.select(ExceptionRow.id).where(ExceptionRow.id.in_(ids), _prunable(resolved_before))
    confirmed = list((await session.execute(still)).scalars())
    deleted: dict[str, int] = {}
    if not confirmed:
        return deleted
    for table, column in (
        (ExceptionEventRow, ExceptionEventRow.exception_id),
        (OccurrenceRow, OccurrenceRow.exception_id),
        (OutboxRow, OutboxRow.exception_id),
        (NotificationEventRow, NotificationEventRow.exception_id),
        (NotificationRow, NotificationRow.exception_id),
        (NotificationGroupMemberRow, NotificationGroupMemberRow.exception_id),
        (NotificationInhibitionRow, NotificationInhibitionRow.exception_id),
    ):
        result = cast("sa.CursorResult[Any]", await session.execute(sa.delete(table).where(column.in_(confirmed))))
        deleted[table.__tablename__] = result.rowcount
    stmt = sa.delete(ExceptionRow).where(
        ExceptionRow.id.in_(confirmed),
        ExceptionRow.status == Status.RESOLVED,
        ExceptionRow.resolved_at < resolved_before,
    )
    deleted[ExceptionRow.__tablename__] = cast("sa.CursorResult[Any]", await session.execute(stmt)).rowcount
    if deleted[ExceptionRow.__tablename__] != len(confirmed):
        raise Conflict(f"{len(confirmed) - deleted[ExceptionRow.__tablename__]} exceptions changed while deleted")
    return deleted


async def delete_sent_outbox(*, session: AsyncSession, sent_before: dt.datetime, limit: int) -> int:
    """Delete up to `limit` outbox rows published before the cutoff; how many."""
    oldest = sa.select(OutboxRow.id).where(OutboxRow.sent_at < sent_before).order_by(OutboxRow.id).limit(limit)
    stmt = sa.delete(OutboxRow).where(OutboxRow.id.in_(oldest.scalar_subquery()))
    return cast("sa.CursorResult[Any]", await session.execute(stmt)).rowcount
