"""Exception records in: stored in one transaction per batch, each answered as created, grouped
(an occurrence of the unresolved exception with its fingerprint) or a duplicate (received before).

The times grouping derives stay within the API's clock: an exception is first seen when its first
record was detected (never after now), and a grouped record never moves first_seen (earlier) nor
last_seen past now (store.count_occurrence). The route has checked each record's detected_at
against its window (schemas.RecordWindow)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.common.logging import log_context
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow, SilenceRow
from loopgate.resolution_api.domain_errors import Unavailable
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.notifications import store as notifications
from loopgate.resolution_api.queues.routing import Routed, RoutingTable, route
from loopgate.resolution_api.silences import silencing
from loopgate_schemas.exceptions import ExceptionRecord

log = logging.getLogger(__name__)

_CREATE_ATTEMPTS = 5
NO_ROUTES = RoutingTable()  # every exception in the default queue


class CreateResult(StrEnum):
    CREATED = "created"  # a new exception (201)
    GROUPED = "grouped"  # an occurrence of the unresolved exception with the same fingerprint (200)
    DUPLICATE = "duplicate"  # this record was received before (200)


@dataclass(frozen=True, slots=True)
class Received:
    """One exception record to store, and who sent it."""

    record: ExceptionRecord
    actor: str
    traceparent: str | None = None  # of the request that sent it (tracing on): stored with a new exception


async def create_or_group(
    *, db: Database, received: list[Received], clock: Clock = utcnow, routing: RoutingTable = NO_ROUTES
) -> list[tuple[ExceptionRow, CreateResult]]:
    """Store exception records in one transaction, answering each in order with its exception:
    idempotent on the record's exception_id, grouped on its fingerprint (also with records earlier
    in the list). A new exception is routed to its queue (`routing`; a route that passed it on is
    logged, counted and noted in its history) and held by the first active silence that matches
    it. A unique-index collision with a concurrent writer (another API process) retries them all."""
    for _ in range(_CREATE_ATTEMPTS):
        routed: list[tuple[str, Routed]] = []
        try:
            async with db.write() as session, session.begin():
                stored = await _create_or_group_once(session, received, clock(), routing, routed)
        except IntegrityError:
            continue
        for _, result in stored:
            metrics.EXCEPTIONS_CREATED.labels(result.value).inc()
        for exception_id, passed in routed:
            assert passed.fallback is not None
            metrics.ROUTING_FALLBACKS.labels(passed.fallback.value).inc()
            with log_context(exception_id=exception_id):
                log.warning("exception %s: %s", exception_id, passed.note)
        return stored
    raise Unavailable("the record kept colliding with concurrent writes; retry", retry_after=1)


async def _create_or_group_once(
    session: AsyncSession,
    received: list[Received],
    now: dt.datetime,
    routing: RoutingTable,
    passed_on: list[tuple[str, Routed]],
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
    silences: list[SilenceRow] | None = None  # the active ones, read once, if a new exception needs them
    answers: list[tuple[ExceptionRow, CreateResult]] = []
    occurrences: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for item in received:
        record = item.record
        if record.exception_id in seen:
            answers.append((rows[seen[record.exception_id]], CreateResult.DUPLICATE))
            continue
        fields: dict[str, Any] = {"record_id": record.exception_id, "occurrences": record.occurrences}
        row = unresolved.get(record.fingerprint)
        if row is not None:
            store.count_occurrence(row, record, now)
            action, from_status, result = "grouped", row.status, CreateResult.GROUPED
        else:
            if silences is None:
                silences = await silencing.active_silences(session=session, now=now)
            routed = route(routing, record)
            row = unresolved[record.fingerprint] = store.new_exception(
                session=session,
                record=record,
                now=now,
                queue=routed.queue,
                silenced_by=silencing.first_match(silences, record),
            )
            row.traceparent = item.traceparent
            if routed.note is not None:
                fields["routing"] = routed.note
                passed_on.append((row.id, routed))
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
                "fields": fields,
            }
        )
        answers.append((row, result))
    await session.flush()  # new exceptions first: occurrences and history refer to them
    await store.insert_occurrences(session=session, rows=occurrences)
    await store.add_events(session=session, rows=history)
    # On call hears of new exceptions, never of grouped occurrences (notifications/relay.py).
    opened = [row.id for row, result in answers if result is CreateResult.CREATED]
    await notifications.record_events(
        session=session,
        rows=[{"exception_id": i, "event": "opened", "key": "opened", "created_at": now} for i in opened],
    )
    return answers  # each answered with its id and version (ExceptionCreated): neither moves here
