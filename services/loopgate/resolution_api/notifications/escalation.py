"""Escalation levels, a step of the sweeper: per queue, after an exception has been unclaimed (or
unresolved) for a level's time since its first detection, that level's receivers are told, once,
in order (level 1, 2, ...). A level whose time has come while its condition no longer holds (it
was claimed) is passed without telling anyone. The history records each level reached and whom
it tells; the relay adds a `notified` entry when each receiver has it. A level naming schedules
(`oncall`) or people reaches the person on call at the moment the level is reached (the injected
clock), recorded with their channels; the receivers carrying those channels are told."""

from __future__ import annotations

import datetime as dt

from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.exceptions import store as api_store
from loopgate.resolution_api.exceptions.lifecycle import Status
from loopgate.resolution_api.notifications import store
from loopgate.resolution_api.notifications.config import EscalationLevel, NotificationsConfig
from loopgate.resolution_api.notifications.payloads import queue_of
from loopgate.resolution_api.schedules.config import SchedulesConfig
from loopgate.resolution_api.schedules.targets import paged_by, receivers_for

ESCALATION_ACTOR = "system:escalation"
_UNCLAIMED = frozenset({Status.OPEN, Status.ESCALATED})


def levels_reached(levels: list[EscalationLevel], row: ExceptionRow, now: dt.datetime) -> tuple[int, list[int]]:
    """(the level the exception is at now, the levels among those newly reached that tell someone),
    levels numbered from 1 (pure)."""
    age = (now - row.first_seen).total_seconds()
    reached, telling = row.escalation_level, []
    for number in range(row.escalation_level + 1, len(levels) + 1):
        level = levels[number - 1]
        if age < level.after_seconds:
            break
        reached = number
        status = Status(row.status)
        if status is not Status.RESOLVED and (level.when == "unresolved" or status in _UNCLAIMED):
            telling.append(number)
    return reached, telling


async def escalate_levels(
    *, db: Database, config: NotificationsConfig, schedules: SchedulesConfig | None = None, clock: Clock = utcnow
) -> int:
    """Reach every level whose time has come; how many levels told someone."""
    deepest = config.deepest_escalation
    if not deepest:
        return 0
    now = clock()
    schedules = schedules or SchedulesConfig()
    shortest = min(level.after_seconds for q in config.queues.values() for level in q.escalation)
    async with db.read() as session, session.begin():
        candidates = await store.escalation_candidates(
            session=session, below_level=deepest, first_seen_before=now - dt.timedelta(seconds=shortest)
        )
    told = 0
    for exception_id in candidates:
        async with db.write() as session, session.begin():
            row = await api_store.get_exception(session=session, exception_id=exception_id)
            if row is None:
                continue  # deleted meanwhile (retention)
            levels = config.queue(queue_of(row)).escalation
            reached, telling = levels_reached(levels, row, now)
            if reached == row.escalation_level:
                continue
            if not await store.set_escalation_level(
                session=session, exception_id=row.id, before=row.escalation_level, after=reached
            ):
                continue  # another sweeper moved it on meanwhile
            for number in telling:
                level = levels[number - 1]
                paged, nobody = paged_by(level, schedules, now)
                receivers = receivers_for(level, paged, schedules)
                await store.record_events(
                    session=session,
                    rows=[
                        {
                            "exception_id": row.id,
                            "event": "escalated",
                            "key": f"level:{number}",
                            "level": number,
                            "receivers": receivers,
                            "people": [p.as_fields(schedules) for p in paged] or None,
                            "created_at": now,
                        }
                    ],
                )
                await api_store.add_event(
                    session=session,
                    exception_id=row.id,
                    at=now,
                    actor=ESCALATION_ACTOR,
                    action="escalation_level",
                    from_status=None,
                    to_status=None,
                    fields={
                        "level": number,
                        "receivers": receivers,
                        "people": [p.as_fields(schedules) for p in paged],
                        "nobody_on_call": nobody,
                        "when": level.when,
                        "after_seconds": level.after_seconds,
                    },
                )
                told += 1
    return told
