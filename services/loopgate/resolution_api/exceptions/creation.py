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

from loopgate.resolution_api import events
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow, SilenceRow
from loopgate.resolution_api.domain_errors import Unavailable
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.messagebus import MessageBus, UnitOfWork, default_bus
from loopgate.resolution_api.queues.routing import RoutingTable, route
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
    *,
    db: Database,
    received: list[Received],
    clock: Clock = utcnow,
    routing: RoutingTable = NO_ROUTES,
    bus: MessageBus | None = None,
) -> list[tuple[ExceptionRow, CreateResult]]:
    """Store exception records in one transaction, answering each in order with its exception:
    idempotent on the record's exception_id, grouped on its fingerprint (also with records earlier
    in the list). A new exception is routed to its queue (`routing`; a route that passed it on is
    logged, counted and noted in its history) and held by the first active silence that matches
    it. Each record's event (ExceptionOpened, Grouped, DuplicateReceived) is published on `bus`:
    handlers.py writes its history and notification and counts it. A unique-index collision with
    a concurrent writer (another API process) retries them all."""
    for _ in range(_CREATE_ATTEMPTS):
        try:
            async with (bus or default_bus()).unit_of_work(db) as uow:
                stored = await _create_or_group_once(uow, received, clock(), routing)
        except IntegrityError:
            continue
        return stored
    raise Unavailable("the record kept colliding with concurrent writes; retry", retry_after=1)


async def _create_or_group_once(
    uow: UnitOfWork, received: list[Received], now: dt.datetime, routing: RoutingTable
) -> list[tuple[ExceptionRow, CreateResult]]:
    session = uow.session
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
    happened: list[events.Event] = []
    for item in received:
        record = item.record
        if record.exception_id in seen:
            answers.append((rows[seen[record.exception_id]], CreateResult.DUPLICATE))
            happened.append(events.DuplicateReceived(exception_id=seen[record.exception_id]))
            continue
        fields: dict[str, Any] = {"record_id": record.exception_id, "occurrences": record.occurrences}
        row = unresolved.get(record.fingerprint)
        if row is not None:
            store.count_occurrence(row, record, now)
            from_status, result = row.status, CreateResult.GROUPED
            routed = None
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
            from_status, result = None, CreateResult.CREATED
        seen[record.exception_id] = row.id
        rows[row.id] = row
        occurrences.append(store.occurrence(exception_id=row.id, record=record, now=now))
        common: dict[str, Any] = {
            "exception_id": row.id,
            "at": now,
            "actor": item.actor,
            "from_status": from_status,
            "to_status": row.status,
            "version": row.version,
            "fields": fields,
        }
        if routed is None:
            happened.append(events.Grouped(**common))
        else:
            fallback = routed.fallback.value if routed.fallback is not None and routed.note is not None else None
            happened.append(
                events.ExceptionOpened(
                    **common, queue=routed.queue, routing_fallback=fallback, routing_note=routed.note
                )
            )
        answers.append((row, result))
    await session.flush()  # new exceptions first: occurrences and the events' history refer to them
    await store.insert_occurrences(session=session, rows=occurrences)
    uow.publish(*happened)
    return answers  # each answered with its id and version (ExceptionCreated): neither moves here
