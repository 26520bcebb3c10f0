"""The sweeper's work: snoozes whose time has come are open again, and exceptions past an SLA are
escalated (once per SLA).

It costs what changed, not what exists (issue 23 item 6): each step reads only the rows whose
deadline has passed, from a partial index holding the rows that deadline can still fall on
(migration 0012), and only the columns it needs (never the event). A step with nothing due is one
read; a step with work takes the due rows again locked, in a write transaction of up to
`SWEEP_CHUNK` rows, and writes them with three statements whatever their number: their update, their
history rows and (an SLA breach) their notification events. Each row changes as its single
transition would (lifecycle.py's rules, a version bump, one history event)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from loopgate.common import metrics
from loopgate.common.settings import Sla
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.lifecycle import Action, Status, sla_breach
from loopgate.resolution_api.exceptions.store import Due
from loopgate.resolution_api.exceptions.transitions import iso
from loopgate.resolution_api.notifications import store as notifications
from loopgate_schemas.exceptions import Severity

SYSTEM = "system"
SLA_ACTOR = "system:sla"
SWEEP_CHUNK = 1000


async def wake_due_snoozes(*, db: Database, clock: Clock = utcnow, chunk: int = SWEEP_CHUNK) -> int:
    """Snoozed exceptions whose time has come (by `clock`) are open again."""
    now = clock()
    woken = 0
    while True:
        async with db.read() as session, session.begin():
            if not await store.any_snoozes_due(session=session, now=now):
                return woken
        async with db.write() as session, session.begin():
            due = await store.due_snoozes(session=session, now=now, limit=chunk, lock=True)
            updates, history = [], []
            for row in due:
                updates.append(_values(row, Status.OPEN, now, snoozed_until=None, sla_breach=row.sla_breach))
                history.append(_event(row, Action.WAKE, SYSTEM, Status.OPEN, now, {"until": iso(row.snoozed_until)}))
            await store.write_due(session=session, rows=updates)
            await store.add_events(session=session, rows=history)
        woken += len(due)
        metrics.EXCEPTION_TRANSITIONS.labels(Action.WAKE.value).inc(len(due))
        if len(due) < chunk:
            return woken


async def escalate_sla_breaches(
    *, db: Database, slas: dict[Severity, Sla], clock: Clock = utcnow, chunk: int = SWEEP_CHUNK
) -> int:
    """Escalate every open, claimed or snoozed exception past an SLA it has not breached before
    (by `clock`); a breach ends any snooze."""
    now = clock()
    deadlines = {severity.value: (sla.ack_seconds, sla.resolve_seconds) for severity, sla in slas.items()}
    escalated = 0
    while True:
        async with db.read() as session, session.begin():
            if not await store.any_sla_breaches_due(session=session, deadlines=deadlines, now=now):
                return escalated
        async with db.write() as session, session.begin():
            due = await store.due_sla_breaches(session=session, deadlines=deadlines, now=now, limit=chunk, lock=True)
            updates, history, told, breached = [], [], [], []
            for row in due:
                policy = slas[Severity(row.severity)]
                which = sla_breach(
                    status=Status(row.status), first_seen=row.first_seen, already=row.sla_breach, policy=policy, now=now
                )
                if which is None:  # not due after all (the index's range and the rule agree: never)
                    continue
                seconds = policy.ack_seconds if which == "ack" else policy.resolve_seconds
                updates.append(_values(row, Status.ESCALATED, now, snoozed_until=None, sla_breach=which))
                fields = {
                    "sla": which,
                    "due_at": (row.first_seen + dt.timedelta(seconds=seconds)).isoformat(),
                    "snoozed_until": iso(row.snoozed_until),
                }
                history.append(_event(row, Action.SLA_BREACH, SLA_ACTOR, Status.ESCALATED, now, fields))
                key = f"sla_breached:{which}:{row.resolution_count}"
                told.append({"exception_id": row.id, "event": "sla_breached", "key": key, "created_at": now})
                breached.append((row.severity, which))
            await store.write_due(session=session, rows=updates)
            await store.add_events(session=session, rows=history)
            await notifications.record_events(session=session, rows=told)
        for severity, which in breached:
            metrics.SLA_BREACHES.labels(severity, which).inc()
        metrics.EXCEPTION_TRANSITIONS.labels(Action.SLA_BREACH.value).inc(len(breached))
        escalated += len(breached)
        if len(due) < chunk or not breached:
            return escalated


def _values(
    row: Due, status: Status, now: dt.datetime, *, snoozed_until: dt.datetime | None, sla_breach: str | None
) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": status.value,
        "sla_breach": sla_breach,
        "snoozed_until": snoozed_until,
        "version": row.version + 1,
        "updated_at": now,
    }


def _event(
    row: Due, action: Action, actor: str, to: Status, now: dt.datetime, fields: dict[str, Any]
) -> dict[str, Any]:
    return {
        "exception_id": row.id,
        "at": now,
        "actor": actor,
        "action": action.value,
        "from_status": row.status,
        "to_status": to.value,
        "fields": fields,
    }
