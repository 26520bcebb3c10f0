"""What follows from each domain event, registered in one place (`bootstrap`). Look here to see
what happens when an exception is resolved:

- in the transaction of the change: its history row (every ExceptionEvent), its outcome in the
  outbox with the resolution's trace span (Resolved), the notification events Alertmanager and
  the other receivers hear of (ExceptionOpened, Resolved, Escalated, SlaBreached), whether a second
  person reviews it blind (Resolved, review/flow.py);
- after the commit: the records, routing fallback, transition, resolution and SLA metrics (and the
  routing fallback's log line), and waking the outbox relay (Resolved) so the outcome is
  published now rather than at its next poll.

messagebus.py says what happens when a handler raises."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics, tracing
from loopgate.common.logging import log_context
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.events import (
    DuplicateReceived,
    Escalated,
    Event,
    ExceptionChanged,
    ExceptionEvent,
    ExceptionOpened,
    Grouped,
    Resolved,
    SlaBreached,
)
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.messagebus import MessageBus
from loopgate.resolution_api.notifications import store as notifications
from loopgate.resolution_api.outcomes import verdicts
from loopgate.resolution_api.review import flow as second_review
from loopgate.resolution_api.trace_spans import resolution_span

log = logging.getLogger(__name__)

# --- in the transaction ----------------------------------------------------------------------


async def write_history(session: AsyncSession, events: Sequence[ExceptionEvent]) -> None:
    """One history row per change, in one statement (the command holds each exception's row lock)."""
    await store.add_events(
        session=session,
        rows=[
            {
                "exception_id": e.exception_id,
                "at": e.at,
                "actor": e.actor,
                "action": e.history_action,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "fields": e.fields,
            }
            for e in events
        ],
    )


async def write_outcomes(session: AsyncSession, events: Sequence[Resolved]) -> None:
    """The outcome of each resolution in the outbox (outcomes/outbox.py publishes it)."""
    traced = tracing.enabled()
    await store.add_outbox_rows(
        session=session,
        rows=[
            {
                "outcome_id": e.outcome.id,
                "exception_id": e.exception_id,
                "payload": e.outcome.model_dump_json(),
                "created_at": e.at,
                "traceparent": resolution_span(
                    exception_id=e.exception_id,
                    rule_id=e.rule_id,
                    parent=e.exception_traceparent,
                    outcome_id=e.outcome.id,
                )
                if traced
                else None,
            }
            for e in events
        ],
    )


def _notification(event: ExceptionEvent, name: str, key: str) -> dict[str, object]:
    return {"exception_id": event.exception_id, "event": name, "key": key, "created_at": event.at}


async def tell_opened(session: AsyncSession, events: Sequence[ExceptionOpened]) -> None:
    """On call hears of new exceptions, never of grouped occurrences (notifications/relay.py)."""
    await notifications.record_events(session=session, rows=[_notification(e, "opened", "opened") for e in events])


async def tell_resolved(session: AsyncSession, events: Sequence[Resolved]) -> None:
    """A receiver that was told of the exception hears it is resolved (notifications/relay.py)."""
    rows = [_notification(e, "resolved", f"resolved:{e.resolution_count}") for e in events]
    await notifications.record_events(session=session, rows=rows)


async def choose_second_reviews(session: AsyncSession, events: Sequence[Resolved]) -> None:
    """A lead's resolution of a disagreement settles it; any other may be chosen for a blind second
    review, its decision sealed until then (review/flow.py)."""
    for e in events:
        row = await session.get(ExceptionRow, e.exception_id)  # the command's locked row: no query
        if row is not None:
            await second_review.after_resolve(session, row, e.at)


async def tell_escalated(session: AsyncSession, events: Sequence[Escalated]) -> None:
    rows = [_notification(e, "escalated", f"escalated:{e.version}") for e in events]
    await notifications.record_events(session=session, rows=rows)


async def tell_sla_breached(session: AsyncSession, events: Sequence[SlaBreached]) -> None:
    rows = [_notification(e, "sla_breached", f"sla_breached:{e.sla}:{e.resolution_count}") for e in events]
    await notifications.record_events(session=session, rows=rows)


# --- after the commit ------------------------------------------------------------------------


def count_records(events: Sequence[Event]) -> None:
    """Records received, by what they did (created, grouped, duplicate)."""
    for e in events:
        result = e.history_action if isinstance(e, ExceptionEvent) else "duplicate"
        metrics.EXCEPTIONS_CREATED.labels(result).inc()


def say_routing_fallbacks(events: Sequence[ExceptionOpened]) -> None:
    """A route that passed a new exception on is counted and logged (its history notes it too)."""
    for e in events:
        if e.routing_fallback is not None:
            metrics.ROUTING_FALLBACKS.labels(e.routing_fallback).inc()
            with log_context(exception_id=e.exception_id):
                log.warning("exception %s: %s", e.exception_id, e.routing_note)


def count_transitions(events: Sequence[ExceptionChanged]) -> None:
    for action, n in Counter(e.action for e in events).items():
        metrics.EXCEPTION_TRANSITIONS.labels(action.value).inc(n)


def count_resolutions(events: Sequence[Resolved]) -> None:
    for e in events:
        verdicts.count_resolution(
            rule_id=e.rule_id, decision=e.decision, time_to_resolve_seconds=e.time_to_resolve_seconds
        )
        metrics.TIME_TO_RESOLVE.labels(e.severity).observe(e.time_to_resolve_seconds)


def count_sla_breaches(events: Sequence[SlaBreached]) -> None:
    for e in events:
        metrics.SLA_BREACHES.labels(e.severity, e.sla).inc()


class Relay(Protocol):
    def wake(self) -> None: ...


def bootstrap(*, outbox: Relay | None = None) -> MessageBus:
    """The bus with every handler: the app's (create_app passes its outbox relay, woken after each
    resolution commits), or a tool's or test's that runs commands without a relay (`default_bus`)."""
    bus = MessageBus()
    bus.subscribe(ExceptionEvent, write_history)
    bus.subscribe(ExceptionOpened, tell_opened)
    bus.subscribe(Resolved, write_outcomes)
    bus.subscribe(Resolved, tell_resolved)
    bus.subscribe(Resolved, choose_second_reviews)
    bus.subscribe(Escalated, tell_escalated)
    bus.subscribe(SlaBreached, tell_sla_breached)
    bus.subscribe_after_commit(SlaBreached, count_sla_breaches)
    for received in (ExceptionOpened, Grouped, DuplicateReceived):
        bus.subscribe_after_commit(received, count_records)
    bus.subscribe_after_commit(ExceptionOpened, say_routing_fallbacks)
    bus.subscribe_after_commit(ExceptionChanged, count_transitions)
    bus.subscribe_after_commit(Resolved, count_resolutions)
    if outbox is not None:
        relay = outbox

        def wake_outbox_relay(events: Sequence[Resolved]) -> None:
            relay.wake()  # publish the outcomes now rather than at the relay's next poll

        bus.subscribe_after_commit(Resolved, wake_outbox_relay)
    return bus
