"""The sweeper's approval step: an approval item still undecided `before` seconds ahead of its release
deadline is escalated, once (its `deadline_escalated_at` is set), and the escalation receivers are told,
so a person decides before the scheduled post goes out undecided. Approval items are few (one per held
output): each is escalated by its own transition, as an operator's escalate would be."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.domain_errors import DomainError
from loopgate.resolution_api.exceptions.lifecycle import Action, Status
from loopgate.resolution_api.exceptions.transitions import Change, ChangeFor, transition
from loopgate.resolution_api.messagebus import MessageBus
from loopgate_schemas.exceptions import Kind

DEADLINE_ACTOR = "system:deadline"
CHUNK = 500


def deadline_due(now: dt.datetime, before: float) -> sa.ColumnElement[bool]:
    """The approval items to escalate at `now`: the words of models.APPROVAL_DEADLINE_DUE, and the deadline near."""
    t = ExceptionRow
    return sa.and_(
        t.kind == Kind.APPROVAL.value,
        t.status.in_([Status.OPEN.value, Status.CLAIMED.value, Status.SNOOZED.value]),
        t.deadline_escalated_at.is_(None),
        t.release_deadline.is_not(None),
        t.release_deadline <= now + dt.timedelta(seconds=before),
    )


def _constant(change: Change) -> ChangeFor:
    return lambda row, now: change


async def escalate_near_deadlines(
    *, db: Database, before: float, clock: Clock = utcnow, chunk: int = CHUNK, bus: MessageBus | None = None
) -> int:
    """Escalate every approval item whose release deadline is at most `before` seconds away (or past)."""
    now = clock()
    async with db.read() as session, session.begin():
        due = (
            await session.execute(
                sa.select(ExceptionRow.id, ExceptionRow.version, ExceptionRow.status, ExceptionRow.release_deadline)
                .where(deadline_due(now, before))
                .order_by(ExceptionRow.release_deadline, ExceptionRow.id)
                .limit(chunk)
            )
        ).all()
    escalated = 0
    for exception_id, version, status, deadline in due:
        assert deadline is not None  # the query's condition
        left = (deadline - now).total_seconds()
        # A snoozed item is woken by it (as an SLA breach ends a snooze); open and claimed ones escalate.
        action = Action.SLA_BREACH if status == Status.SNOOZED.value else Action.ESCALATE
        change = Change(
            values={"deadline_escalated_at": now, "snoozed_until": None},
            fields={
                "reason": f"release deadline {deadline.isoformat()} "
                + (f"in {left:.0f} s" if left >= 0 else f"passed {-left:.0f} s ago")
                + ": no release decision yet",
                "deadline": deadline.isoformat(),
            },
        )
        try:
            await transition(
                db=db,
                exception_id=exception_id,
                action=action,
                actor=DEADLINE_ACTOR,
                change_for=_constant(change),
                if_match=frozenset({version}),
                clock=lambda: now,
                bus=bus,  # Escalated (or SlaBreached, for a snoozed item): the receivers are told (handlers.py)
            )
        except DomainError:  # decided, claimed or changed meanwhile: the next pass looks again
            continue
        escalated += 1
    return escalated
