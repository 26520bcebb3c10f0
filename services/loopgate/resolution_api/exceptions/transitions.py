"""Transitions of an exception's life (claim, unclaim, resolve, escalate, snooze, reopen, bulk-resolve,
and the system's own wake and SLA escalation): each one transaction, one conditional UPDATE on the
version read, applying lifecycle.py's rules, publishing its domain event (events.py) on the message
bus in the same transaction: handlers.py writes what follows (history, outbox, notifications,
metrics). Errors are domain errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError

from loopgate.resolution_api import events
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
from loopgate.resolution_api.messagebus import MessageBus, default_bus
from loopgate.resolution_api.outcomes import training
from loopgate_schemas.outcomes import Decision, FieldChange, Outcome, outcome_id_for


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition writes besides status and version, and what history records of it."""

    values: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


ChangeFor = Callable[[ExceptionRow, dt.datetime], Change | None]


def event_of(
    action: Action, row: ExceptionRow, *, at: dt.datetime, actor: str, from_status: str, fields: dict[str, Any]
) -> events.Event:
    """The event of `action` having changed `row` (as it is now, after the change)."""
    common: dict[str, Any] = {
        "exception_id": row.id,
        "at": at,
        "actor": actor,
        "from_status": from_status,
        "to_status": row.status,
        "version": row.version,
        "fields": fields,
    }
    if action is Action.RESOLVE:
        return events.Resolved(
            **common,
            outcome=outcome_of(row),
            resolution_count=row.resolution_count,
            rule_id=row.rule_id,
            severity=row.severity,
            decision=row.decision or "",
            time_to_resolve_seconds=row.time_to_resolve_seconds or 0.0,
            exception_traceparent=row.traceparent,
        )
    if action is Action.SLA_BREACH:  # the sweeper's: a deadline passing (or coming near) woke or escalated it
        return events.SlaBreached(
            **common,
            sla=str(fields.get("sla", "deadline")),
            severity=row.severity,
            resolution_count=row.resolution_count,
        )
    return events.EVENT_OF[action](**common)


async def transition(
    *,
    db: Database,
    exception_id: str,
    action: Action,
    actor: str,
    change_for: ChangeFor,
    if_match: Collection[int] | None = None,
    clock: Clock = utcnow,
    bus: MessageBus | None = None,
) -> ExceptionRow:
    """Apply `action` if allowed from the current status: one conditional UPDATE on the version
    read, and its event published on `bus` (default: messagebus.default_bus()) in the same
    transaction. `change_for` returning None means nothing changes (the call is a no-op)."""
    stale_version = None
    async with (bus or default_bus()).unit_of_work(db) as uow:
        session = uow.session
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
            await session.refresh(row)  # the conditional UPDATE above holds its lock until commit
            uow.publish(event_of(action, row, at=now, actor=actor, from_status=current.value, fields=change.fields))
        else:
            stale_version = row.version
    if stale_version is None:
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
    bus: MessageBus | None = None,
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
        bus=bus,
    )


async def unclaim(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    may_unclaim_others: bool,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
    bus: MessageBus | None = None,
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
        bus=bus,
    )


async def escalate(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    reason: str,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
    bus: MessageBus | None = None,
) -> ExceptionRow:
    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.ESCALATE,
        actor=actor,
        change_for=lambda row, now: Change(fields={"reason": reason}),
        if_match=if_match,
        clock=clock,
        bus=bus,
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
    bus: MessageBus | None = None,
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
        bus=bus,
    )


async def reopen(
    *,
    db: Database,
    exception_id: str,
    actor: str,
    reason: str,
    if_match: Collection[int] | None,
    clock: Clock = utcnow,
    bus: MessageBus | None = None,
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
            bus=bus,
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
    bus: MessageBus | None = None,
) -> ExceptionRow:
    """Record the final resolution; its Resolved event puts its outcome in the outbox (handlers.py)."""
    return await transition(
        db=db,
        exception_id=exception_id,
        action=Action.RESOLVE,
        actor=actor,
        change_for=resolve_change(actor, resolution),
        if_match=if_match,
        clock=clock,
        bus=bus,
    )


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
    bus: MessageBus | None = None,
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
                    bus=bus,
                )
            )
        except DomainError as err:
            failed.append(NotResolved(exception_id, err))
    return resolved, failed
