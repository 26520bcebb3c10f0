"""The sweeper's work: snoozes whose time has come are open again, and exceptions past an SLA are
escalated (once per SLA). A transition that lost a race is skipped: a domain error, never HTTP."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.common.settings import Sla
from loopgate.resolution_api import store
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db import Database
from loopgate.resolution_api.domain_errors import DomainError
from loopgate.resolution_api.lifecycle import Action, Status, sla_breach
from loopgate.resolution_api.models import ExceptionRow
from loopgate.resolution_api.notifications import store as notifications
from loopgate.resolution_api.transitions import Change, iso, transition
from loopgate_schemas.exceptions import Severity

SYSTEM = "system"
SLA_ACTOR = "system:sla"


async def wake_due_snoozes(*, db: Database, clock: Clock = utcnow) -> int:
    """Snoozed exceptions whose time has come (by `clock`) are open again."""
    now = clock()
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
                clock=clock,
            )
            woken += 1
        except DomainError:
            continue  # claimed, resolved or re-snoozed meanwhile
    return woken


def _wake_change(row: ExceptionRow, now: dt.datetime) -> Change | None:
    if row.snoozed_until is None or row.snoozed_until > now:
        return None  # re-snoozed meanwhile
    return Change(values={"snoozed_until": None}, fields={"until": iso(row.snoozed_until)})


async def escalate_sla_breaches(*, db: Database, slas: dict[Severity, Sla], clock: Clock = utcnow) -> int:
    """Escalate every open, claimed or snoozed exception past an SLA it has not breached before
    (by `clock`)."""
    now = clock()
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
                fields={"sla": which, "due_at": due_at.isoformat(), "snoozed_until": iso(row.snoozed_until)},
            )

        try:
            row = await transition(
                db=db,
                exception_id=candidate.id,
                action=Action.SLA_BREACH,
                actor=SLA_ACTOR,
                change_for=change_for,
                clock=clock,
                after=_notify_sla_breached,
            )
        except DomainError:
            continue
        if row.status == Status.ESCALATED and row.sla_breach:
            metrics.SLA_BREACHES.labels(row.severity, row.sla_breach).inc()
            escalated += 1
    return escalated


async def _notify_sla_breached(session: AsyncSession, row: ExceptionRow, now: dt.datetime) -> None:
    key = f"sla_breached:{row.sla_breach}:{row.resolution_count}"
    await notifications.record_event(session=session, exception_id=row.id, event="sla_breached", key=key, now=now)
