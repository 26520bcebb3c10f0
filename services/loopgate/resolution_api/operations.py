"""Units of work of the resolution API: each function is one transaction (or a retry loop of
them) over store.py queries, applying lifecycle.py rules. Routes parse, call one, and answer."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.common.settings import Sla
from loopgate.resolution_api import store
from loopgate.resolution_api.cursor import BadCursor, decode_cursor, encode_cursor
from loopgate.resolution_api.db import Database
from loopgate.resolution_api.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
)
from loopgate.resolution_api.lifecycle import (
    Action,
    Status,
    TransitionNotAllowed,
    next_status,
    sla_breach,
    time_to_resolve_seconds,
)
from loopgate.resolution_api.models import ExceptionEventRow, ExceptionRow
from loopgate_schemas.exceptions import ExceptionRecord, Severity
from loopgate_schemas.outcomes import Decision, FieldChange, Outcome, OutcomeData, outcome_id_for

log = logging.getLogger(__name__)

SYSTEM = "system"
SLA_ACTOR = "system:sla"
_CREATE_ATTEMPTS = 5


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- create / group --------------------------------------------------------------------------


class CreateResult(StrEnum):
    CREATED = "created"  # a new exception (201)
    GROUPED = "grouped"  # an occurrence of the unresolved exception with the same fingerprint (200)
    DUPLICATE = "duplicate"  # this record was received before (200)


@dataclass(frozen=True, slots=True)
class Received:
    """One exception record to store, and who sent it."""

    record: ExceptionRecord
    actor: str


async def create_or_group(*, db: Database, received: list[Received]) -> list[tuple[ExceptionRow, CreateResult]]:
    """Store exception records in one transaction, answering each in order: idempotent on the
    record's exception_id, grouped on its fingerprint (also with records earlier in the list).
    A unique-index collision with a concurrent writer (another API process) retries them all."""
    for _ in range(_CREATE_ATTEMPTS):
        try:
            async with db.write() as session, session.begin():
                stored = await _create_or_group_once(session, received, utcnow())
        except IntegrityError:
            continue
        for _, result in stored:
            metrics.EXCEPTIONS_CREATED.labels(result.value).inc()
        return stored
    raise ServiceUnavailable("the record kept colliding with concurrent writes; retry", {"Retry-After": "1"})


async def _create_or_group_once(
    session: AsyncSession, received: list[Received], now: dt.datetime
) -> list[tuple[ExceptionRow, CreateResult]]:
    # A handful of statements for the whole list, whatever its length: read what is known about
    # these records, decide each in order in memory, then write every row in bulk.
    seen = await store.find_occurrences(session=session, record_ids={r.record.exception_id for r in received})
    unresolved = await store.lock_unresolved(
        session=session,
        fingerprints={r.record.fingerprint for r in received if r.record.exception_id not in seen},
    )
    rows = {row.id: row for row in unresolved.values()}
    rows.update(await store.get_exceptions(session=session, ids=set(seen.values()) - rows.keys()))
    answers: list[tuple[ExceptionRow, CreateResult]] = []
    occurrences: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for item in received:
        record = item.record
        if record.exception_id in seen:
            answers.append((rows[seen[record.exception_id]], CreateResult.DUPLICATE))
            continue
        row = unresolved.get(record.fingerprint)
        if row is not None:
            store.count_occurrence(row, record)
            action, from_status, result = "grouped", row.status, CreateResult.GROUPED
        else:
            row = unresolved[record.fingerprint] = store.new_exception(session=session, record=record, now=now)
            action, from_status, result = "created", None, CreateResult.CREATED
        seen[record.exception_id] = row.id
        rows[row.id] = row
        occurrences.append(store.occurrence(exception_id=row.id, record=record, now=now))
        history.append(
            {
                "exception_id": row.id,
                "at": now,
                "actor": item.actor,
                "action": action,
                "from_status": from_status,
                "to_status": row.status,
                "fields": {"record_id": record.exception_id, "occurrences": record.occurrences},
            }
        )
        answers.append((row, result))
    await session.flush()  # new exceptions first: occurrences and history refer to them
    await store.insert_occurrences(session=session, rows=occurrences)
    await store.add_events(session=session, rows=history)
    return answers


# --- reads -----------------------------------------------------------------------------------


async def get(*, db: Database, exception_id: str) -> ExceptionRow:
    async with db.read() as session, session.begin():
        return await _get_or_404(session, exception_id)


async def _get_or_404(session: AsyncSession, exception_id: str) -> ExceptionRow:
    row = await store.get_exception(session=session, exception_id=exception_id)
    if row is None:
        raise NotFound(f"no exception with id {exception_id!r}")
    return row


async def list_page(
    *, db: Database, filters: store.ExceptionFilters, cursor: str | None, limit: int
) -> tuple[list[ExceptionRow], str | None]:
    try:
        after = decode_cursor(cursor) if cursor else None
    except BadCursor as err:
        raise BadRequest(str(err)) from None
    async with db.read() as session, session.begin():
        rows = await store.list_exceptions(session=session, filters=filters, after=after, limit=limit + 1)
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def history(*, db: Database, exception_id: str) -> list[ExceptionEventRow]:
    async with db.read() as session, session.begin():
        await _get_or_404(session, exception_id)
        return await store.history(session=session, exception_id=exception_id)


# --- transitions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition writes besides status and version, and what history records of it."""

    values: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


ChangeFor = Callable[[ExceptionRow, dt.datetime], Change | None]
AfterChange = Callable[[AsyncSession, ExceptionRow, dt.datetime], Awaitable[None]]


async def transition(
    *,
    db: Database,
    exception_id: str,
    action: Action,
    actor: str,
    change_for: ChangeFor,
    if_match: Collection[int] | None = None,
    after: AfterChange | None = None,
) -> ExceptionRow:
    """Apply `action` if allowed from the current status: one conditional UPDATE on the version
    read, plus its history event (and `after`, e.g. the outbox row) in the same transaction.
    `change_for` returning None means nothing changes (the call is a no-op)."""
    stale_version = None
    async with db.write() as session, session.begin():
        row = await _get_or_404(session, exception_id)
        if if_match is not None and row.version not in if_match:
            raise PreconditionFailed(
                f'If-Match does not match the current version (ETag "{row.version}") of '
                f"exception {exception_id!r}; re-read it and retry"
            )
        current = Status(row.status)
        target = next_status(action, current)
        now = utcnow()
        change = change_for(row, now)
        if change is None:
            return row
        values = {**change.values, "status": target.value, "updated_at": now}
        if await store.update_if_version(
            session=session, exception_id=exception_id, version=row.version, values=values
        ):
            await store.add_event(
                session=session,
                exception_id=exception_id,
                at=now,
                actor=actor,
                action=action.value,
                from_status=current.value,
                to_status=target.value,
                fields=change.fields,
            )
            await session.refresh(row)
            if after is not None:
                await after(session, row, now)
        else:
            stale_version = row.version
    if stale_version is None:
        metrics.EXCEPTION_TRANSITIONS.labels(action.value).inc()
        return row
    return await _explain_lost_race(db, exception_id, action, if_match)


async def _explain_lost_race(
    db: Database, exception_id: str, action: Action, if_match: Collection[int] | None
) -> NoReturn:
    """Someone changed the exception between our read and our write: say what is true now."""
    row = await get(db=db, exception_id=exception_id)
    next_status(action, Status(row.status))  # raises TransitionNotAllowed (409) if now disallowed
    if if_match is not None:
        raise PreconditionFailed(f'exception {exception_id!r} changed meanwhile (now version "{row.version}")')
    raise Conflict(
        f"cannot {action.value}: exception {exception_id!r} changed meanwhile (now version {row.version}); "
        "re-read it and retry"
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def claim(
    *, db: Database, exception_id: str, actor: str, assignee: str, if_match: Collection[int] | None
) -> ExceptionRow:
    def change_for(row: ExceptionRow, now: dt.datetime) -> Change | None:
        if row.status == Status.CLAIMED and row.assignee == assignee:
            return None  # claiming what one already holds changes nothing
        return Change(
            values={"assignee": assignee, "snoozed_until": None},
            fields={"assignee": {"before": row.assignee, "after": assignee}},
        )

    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.CLAIM,
        actor=actor,
        change_for=change_for,
        if_match=if_match,
    )


async def escalate(
    *, db: Database, exception_id: str, actor: str, reason: str, if_match: Collection[int] | None
) -> ExceptionRow:
    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.ESCALATE,
        actor=actor,
        change_for=lambda row, now: Change(fields={"reason": reason}),
        if_match=if_match,
    )


async def snooze(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    until: dt.datetime,
    reason: str,
    if_match: Collection[int] | None,
) -> ExceptionRow:
    def change_for(row: ExceptionRow, now: dt.datetime) -> Change:
        return Change(
            values={"snoozed_until": until},
            fields={"until": until.isoformat(), "reason": reason, "previous_until": _iso(row.snoozed_until)},
        )

    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.SNOOZE,
        actor=actor,
        change_for=change_for,
        if_match=if_match,
    )


async def reopen(
    *, db: Database, exception_id: str, actor: str, reason: str, if_match: Collection[int] | None
) -> ExceptionRow:
    def change_for(row: ExceptionRow, now: dt.datetime) -> Change:
        cleared = ("decision", "reason", "correction", "resolver", "resolved_at", "time_to_resolve_seconds")
        return Change(
            values={**dict.fromkeys(cleared), "assignee": None},
            fields={"reason": reason, "previous_decision": row.decision},
        )

    try:
        return await transition(
            db=db,
            exception_id=exception_id,
            action=Action.REOPEN,
            actor=actor,
            change_for=change_for,
            if_match=if_match,
        )
    except IntegrityError:
        raise Conflict(
            f"cannot reopen: another exception with the fingerprint of {exception_id!r} is unresolved"
        ) from None


# --- resolve ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolutionInput:
    decision: Decision
    reason: str
    correction: dict[str, FieldChange]


def outcome_of(row: ExceptionRow) -> Outcome:
    """The outcome CloudEvent of a resolved exception's current resolution."""
    assert row.resolved_at is not None and row.decision is not None
    return Outcome(
        id=outcome_id_for(row.id, row.resolution_count),
        time=row.resolved_at,
        subject=row.id,
        data=OutcomeData(
            exception_id=row.id,
            rule_id=row.rule_id,
            source=row.source,
            decision=Decision(row.decision),
            resolver=row.resolver or "",
            reason=row.reason or "",
            correction={k: FieldChange.model_validate(v) for k, v in (row.correction or {}).items()},
            resolved_at=row.resolved_at,
            time_to_resolve_seconds=row.time_to_resolve_seconds or 0.0,
        ),
    )


async def _write_outcome(session: AsyncSession, row: ExceptionRow, now: dt.datetime) -> None:
    outcome = outcome_of(row)
    await store.add_outbox(
        session=session,
        outcome_id=outcome.id,
        exception_id=row.id,
        payload=outcome.model_dump_json(),
        now=now,
    )


async def resolve(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    resolution: ResolutionInput,
    if_match: Collection[int] | None,
) -> ExceptionRow:
    """Record the final resolution and its outcome (outbox) in one transaction."""

    def change_for(row: ExceptionRow, now: dt.datetime) -> Change:
        correction = {k: v.model_dump(mode="json") for k, v in resolution.correction.items()}
        return Change(
            values={
                "decision": resolution.decision.value,
                "reason": resolution.reason,
                "correction": correction,
                "resolver": actor,
                "resolved_at": now,
                "time_to_resolve_seconds": time_to_resolve_seconds(row.first_seen, now),
                "resolution_count": row.resolution_count + 1,
                "snoozed_until": None,
            },
            fields={
                "decision": resolution.decision.value,
                "reason": resolution.reason,
                "correction": correction,
            },
        )

    row = await transition(
        db=db,
        exception_id=exception_id,
        action=Action.RESOLVE,
        actor=actor,
        change_for=change_for,
        if_match=if_match,
        after=_write_outcome,
    )
    metrics.RESOLUTIONS.labels(row.decision, row.rule_id).inc()
    metrics.TIME_TO_RESOLVE.labels(row.severity).observe(row.time_to_resolve_seconds or 0.0)
    return row


@dataclass(frozen=True, slots=True)
class BulkFailure:
    exception_id: str
    status_code: int
    detail: str


async def bulk_resolve(
    *, db: Database, ids: list[str] | None, fingerprint: str | None, actor: str, resolution: ResolutionInput
) -> tuple[list[ExceptionRow], list[BulkFailure]]:
    """Resolve each selected exception in its own transaction; report the ones that could not be."""
    if fingerprint is not None:
        async with db.read() as session, session.begin():
            ids = await store.unresolved_ids(session=session, fingerprint=fingerprint)
    resolved: list[ExceptionRow] = []
    failed: list[BulkFailure] = []
    for exception_id in dict.fromkeys(ids or []):
        try:
            resolved.append(
                await resolve(db=db, exception_id=exception_id, actor=actor, resolution=resolution, if_match=None)
            )
        except ApiError as err:
            failed.append(BulkFailure(exception_id, err.status_code, err.detail))
        except TransitionNotAllowed as err:
            failed.append(BulkFailure(exception_id, 409, str(err)))
    return resolved, failed


# --- the sweeper's work ----------------------------------------------------------------------


async def wake_due_snoozes(*, db: Database, now: dt.datetime | None = None) -> int:
    """Snoozed exceptions whose time has come are open again."""
    now = now or utcnow()
    async with db.read() as session, session.begin():
        due = await store.due_snoozes(session=session, now=now)
    woken = 0
    for exception_id in due:
        try:
            await transition(
                db=db,
                exception_id=exception_id,
                action=Action.WAKE,
                actor=SYSTEM,
                change_for=lambda row, _now: _wake_change(row, now),
            )
            woken += 1
        except (ApiError, TransitionNotAllowed):
            continue  # claimed, resolved or re-snoozed meanwhile
    return woken


def _wake_change(row: ExceptionRow, now: dt.datetime) -> Change | None:
    if row.snoozed_until is None or row.snoozed_until > now:
        return None  # re-snoozed meanwhile
    return Change(values={"snoozed_until": None}, fields={"until": _iso(row.snoozed_until)})


async def escalate_sla_breaches(*, db: Database, slas: dict[Severity, Sla], now: dt.datetime | None = None) -> int:
    """Escalate every open, claimed or snoozed exception past an SLA it has not breached before."""
    now = now or utcnow()
    shortest = min(min(s.ack_seconds, s.resolve_seconds) for s in slas.values())
    async with db.read() as session, session.begin():
        candidates = await store.sla_candidates(session=session, oldest_first_seen=now - dt.timedelta(seconds=shortest))
    escalated = 0
    for candidate in candidates:
        policy = slas[Severity(candidate.severity)]

        def change_for(row: ExceptionRow, _now: dt.datetime, policy: Sla = policy) -> Change | None:
            which = sla_breach(
                status=Status(row.status),
                first_seen=row.first_seen,
                already=row.sla_breach,
                policy=policy,
                now=now,
            )
            if which is None:
                return None
            seconds = policy.ack_seconds if which == "ack" else policy.resolve_seconds
            due_at = row.first_seen + dt.timedelta(seconds=seconds)
            return Change(
                values={"sla_breach": which, "snoozed_until": None},  # a breach ends any snooze
                fields={"sla": which, "due_at": due_at.isoformat(), "snoozed_until": _iso(row.snoozed_until)},
            )

        try:
            row = await transition(
                db=db,
                exception_id=candidate.id,
                action=Action.SLA_BREACH,
                actor=SLA_ACTOR,
                change_for=change_for,
            )
        except (ApiError, TransitionNotAllowed):
            continue
        if row.status == Status.ESCALATED and row.sla_breach:
            metrics.SLA_BREACHES.labels(row.severity, row.sla_breach).inc()
            escalated += 1
    return escalated


# --- gauges ----------------------------------------------------------------------------------


async def refresh_gauges(*, db: Database) -> None:
    """Set the open-exceptions and outbox gauges from the database. The sweeper calls it every
    pass; /metrics only reads them from memory, so a scrape costs the database nothing."""
    async with db.read() as session, session.begin():
        counts = await store.count_unresolved(session=session)
        pending, set_aside = await store.count_outbox(session=session)
    for severity in Severity:
        for status in Status:
            if status is not Status.RESOLVED:
                metrics.OPEN_EXCEPTIONS.labels(severity.value, status.value).set(
                    counts.get((severity.value, status.value), 0)
                )
    metrics.OUTBOX_PENDING.set(pending)
    metrics.OUTBOX_SET_ASIDE_ROWS.set(set_aside)
