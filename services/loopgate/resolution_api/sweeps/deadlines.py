"""The sweeper's work: snoozes whose time has come are open again, and exceptions past an SLA are
escalated (once per SLA).

It costs what changed, not what exists (issue 23 item 6): each step reads only the rows whose
deadline has passed, from a partial index holding the rows that deadline can still fall on
(migration 0012), and only the columns it needs (never the event). A step with nothing due is one
read; a step with work takes the due rows again locked, in a write transaction of up to
`SWEEP_CHUNK` rows, and writes them with three statements whatever their number: their update, and
(from their events, published on the message bus together: handlers.py) their history rows and (an
SLA breach) their notification events. Each row changes as its single transition would
(lifecycle.py's rules, a version bump, one event)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from loopgate.common.settings import Sla
from loopgate.resolution_api import events
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.lifecycle import Status, sla_breach
from loopgate.resolution_api.exceptions.store import Due
from loopgate.resolution_api.exceptions.transitions import iso
from loopgate.resolution_api.messagebus import MessageBus, default_bus
from loopgate_schemas.exceptions import Severity

SYSTEM = "system"
SLA_ACTOR = "system:sla"
SWEEP_CHUNK = 1000


async def wake_due_snoozes(
    *, db: Database, clock: Clock = utcnow, chunk: int = SWEEP_CHUNK, bus: MessageBus | None = None
) -> int:
    """Snoozed exceptions whose time has come (by `clock`) are open again."""
    now = clock()
    woken = 0
    while True:
        async with db.read() as session, session.begin():
            if not await store.any_snoozes_due(session=session, now=now):
                return woken
        async with (bus or default_bus()).unit_of_work(db) as uow:
            due = await store.due_snoozes(session=uow.session, now=now, limit=chunk, lock=True)
            updates = []
            for row in due:
                updates.append(_values(row, Status.OPEN, now, snoozed_until=None, sla_breach=row.sla_breach))
                uow.publish(events.Woken(**_changed(row, SYSTEM, Status.OPEN, now, {"until": iso(row.snoozed_until)})))
            await store.write_due(session=uow.session, rows=updates)
        woken += len(due)
        if len(due) < chunk:
            return woken


async def escalate_sla_breaches(
    *,
    db: Database,
    slas: dict[Severity, Sla],
    clock: Clock = utcnow,
    chunk: int = SWEEP_CHUNK,
    bus: MessageBus | None = None,
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
        async with (bus or default_bus()).unit_of_work(db) as uow:
            due = await store.due_sla_breaches(
                session=uow.session, deadlines=deadlines, now=now, limit=chunk, lock=True
            )
            updates, breached = [], 0
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
                uow.publish(
                    events.SlaBreached(
                        **_changed(row, SLA_ACTOR, Status.ESCALATED, now, fields),
                        sla=which,
                        severity=row.severity,
                        resolution_count=row.resolution_count,
                    )
                )
                breached += 1
            await store.write_due(session=uow.session, rows=updates)
        escalated += breached
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


def _changed(row: Due, actor: str, to: Status, now: dt.datetime, fields: dict[str, Any]) -> dict[str, Any]:
    """An event's common fields for a due row the sweeper changes to `to`."""
    return {
        "exception_id": row.id,
        "at": now,
        "actor": actor,
        "from_status": row.status,
        "to_status": to.value,
        "version": row.version + 1,
        "fields": fields,
    }
