"""Transitions of an exception's life (claim, unclaim, resolve, escalate, snooze, reopen, bulk-resolve,
and the system's own wake and SLA escalation): each one transaction, one conditional UPDATE on the
version read plus its history event, applying lifecycle.py's rules. Errors are domain errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics, tracing
from loopgate.resolution_api.approvals.release import release_problem
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.domain_errors import (
    Conflict,
    DomainError,
    InvalidRequest,
    NotAllowed,
    PreconditionFailed,
)
from loopgate.resolution_api.exceptions import reading, store
from loopgate.resolution_api.exceptions.lifecycle import Action, Status, next_status, time_to_resolve_seconds
from loopgate.resolution_api.notifications import store as notifications
from loopgate.resolution_api.outcomes import training, verdicts
from loopgate.resolution_api.trace_spans import resolution_span
from loopgate_schemas.outcomes import Decision, FieldChange, Outcome, outcome_id_for


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
    clock: Clock = utcnow,
) -> ExceptionRow:
    """Apply `action` if allowed from the current status: one conditional UPDATE on the version
    read, plus its history event (and `after`, e.g. the outbox row) in the same transaction.
    `change_for` returning None means nothing changes (the call is a no-op)."""
    stale_version = None
    async with db.write() as session, session.begin():
        row = await reading.get_or_raise(session=session, exception_id=exception_id)
        if if_match is not None and row.version not in if_match:
            raise PreconditionFailed(
                f'If-Match does not match the current version (ETag "{row.version}") of '
                f"exception {exception_id!r}; re-read it and retry"
            )
        current = Status(row.status)
        target = next_status(action, current)
        now = clock()
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
                locked=True,  # the conditional UPDATE above holds it
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
    row = await reading.get(db=db, exception_id=exception_id)
    next_status(action, Status(row.status))  # raises TransitionNotAllowed (409) if now disallowed
    if if_match is not None:
        raise PreconditionFailed(f'exception {exception_id!r} changed meanwhile (now version "{row.version}")')
    raise Conflict(
        f"cannot {action.value}: exception {exception_id!r} changed meanwhile (now version {row.version}); "
        "re-read it and retry"
    )


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def claim(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    assignee: str,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
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
        clock=clock,
    )


async def unclaim(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    may_unclaim_others: bool,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
) -> ExceptionRow:
    """Give a claimed exception back to the queue (open, no assignee): by its assignee, or by an
    admin (`may_unclaim_others`) when the assignee is away; anyone else is refused (403)."""

    def change_for(row: ExceptionRow, now: dt.datetime) -> Change:
        if row.assignee != actor and not may_unclaim_others:
            raise NotAllowed(
                f"cannot unclaim: exception {exception_id!r} is claimed by {row.assignee!r}; "
                "only its assignee or an admin may unclaim it"
            )
        return Change(values={"assignee": None}, fields={"assignee": {"before": row.assignee, "after": None}})

    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.UNCLAIM,
        actor=actor,
        change_for=change_for,
        if_match=if_match,
        clock=clock,
    )


async def escalate(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    reason: str,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
) -> ExceptionRow:
    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.ESCALATE,
        actor=actor,
        change_for=lambda row, now: Change(fields={"reason": reason}),
        if_match=if_match,
        clock=clock,
        after=_notify_escalated,
    )


async def _notify_escalated(session: AsyncSession, row: ExceptionRow, now: dt.datetime) -> None:
    await notifications.record_event(
        session=session, exception_id=row.id, event="escalated", key=f"escalated:{row.version}", now=now
    )


async def snooze(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    until: dt.datetime,
    reason: str,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
) -> ExceptionRow:
    def change_for(row: ExceptionRow, now: dt.datetime) -> Change:
        return Change(
            values={"snoozed_until": until},
            fields={"until": until.isoformat(), "reason": reason, "previous_until": iso(row.snoozed_until)},
        )

    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.SNOOZE,
        actor=actor,
        change_for=change_for,
        if_match=if_match,
        clock=clock,
    )


async def reopen(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    reason: str,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
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
            clock=clock,
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
    """The outcome CloudEvent of a resolved exception's current resolution (contract v2: complete,
    a training example on its own; training.py builds its data)."""
    assert row.resolved_at is not None
    return Outcome(
        id=outcome_id_for(row.id, row.resolution_count),
        time=row.resolved_at,
        subject=row.id,
        data=training.outcome_data_of(row),
    )


async def _write_outcome(session: AsyncSession, row: ExceptionRow, now: dt.datetime) -> None:
    outcome = outcome_of(row)
    await store.add_outbox(
        session=session,
        outcome_id=outcome.id,
        exception_id=row.id,
        payload=outcome.model_dump_json(),
        now=now,
        traceparent=resolution_span(row, outcome.id) if tracing.enabled() else None,
    )
    # An Alertmanager that was told of the exception hears it is resolved (notifications/relay.py).
    await notifications.record_event(
        session=session, exception_id=row.id, event="resolved", key=f"resolved:{row.resolution_count}", now=now
    )


def resolve_change(actor: str, resolution: ResolutionInput) -> ChangeFor:
    """What a final resolution writes: one place for the single, bulk and console resolutions."""
    correction = {k: v.model_dump(mode="json") for k, v in resolution.correction.items()}

    def change_for(row: ExceptionRow, now: dt.datetime) -> Change:
        problem = release_problem(row.kind, resolution.decision)
        if problem is not None:
            raise InvalidRequest(f"exception {row.id!r}: {problem}")
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
            fields={"decision": resolution.decision.value, "reason": resolution.reason, "correction": correction},
        )

    return change_for


async def resolve(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    resolution: ResolutionInput,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
) -> ExceptionRow:
    """Record the final resolution and its outcome (outbox) in one transaction."""

    row = await transition(
        db=db,
        exception_id=exception_id,
        action=Action.RESOLVE,
        actor=actor,
        change_for=resolve_change(actor, resolution),
        if_match=if_match,
        clock=clock,
        after=_write_outcome,
    )
    verdicts.count_resolution(
        rule_id=row.rule_id, decision=row.decision or "", time_to_resolve_seconds=row.time_to_resolve_seconds or 0.0
    )
    metrics.TIME_TO_RESOLVE.labels(row.severity).observe(row.time_to_resolve_seconds or 0.0)
    return row


@dataclass(frozen=True, slots=True)
class NotResolved:
    """One exception a bulk resolve could not resolve, and why (the route gives its status)."""

    exception_id: str
    error: DomainError


async def bulk_resolve(
    *,
    db: Database,
    ids: list[str] | None,
    fingerprint: str | None,
    actor: str,
    resolution: ResolutionInput,
    clock: Clock = utcnow,
    versions: dict[str, int] | None = None,
) -> tuple[list[ExceptionRow], list[NotResolved]]:
    """Resolve each selected exception in its own transaction; report the ones that could not be.
    `versions`: the version each must still have (as its If-Match), per exception."""
    if fingerprint is not None:
        async with db.read() as session, session.begin():
            ids = await store.unresolved_ids(session=session, fingerprint=fingerprint)
    resolved: list[ExceptionRow] = []
    failed: list[NotResolved] = []
    for exception_id in dict.fromkeys(ids or []):
        try:
            resolved.append(
                await resolve(
                    db=db,
                    exception_id=exception_id,
                    actor=actor,
                    resolution=resolution,
                    if_match=frozenset({versions[exception_id]}) if versions and exception_id in versions else None,
                    clock=clock,
                )
            )
        except DomainError as err:
            failed.append(NotResolved(exception_id, err))
    return resolved, failed
