"""The database-backed gauges /metrics shows: open exceptions by severity and status, the outbox and its oldest."""

from __future__ import annotations

from loopgate.common import metrics
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.lifecycle import Status
from loopgate_schemas.exceptions import Severity


async def refresh_gauges(*, db: Database) -> None:
    """Set the open-exceptions and outbox gauges from the database. The sweeper calls it every
    pass; /metrics only reads them from memory, so a scrape costs the database nothing."""
    async with db.read() as session, session.begin():
        counts = await store.count_unresolved(session=session)
        pending, set_aside = await store.count_outbox(session=session)
        oldest = await store.oldest_pending_outbox(session=session)
    for severity in Severity:
        for status in Status:
            if status is not Status.RESOLVED:
                metrics.OPEN_EXCEPTIONS.labels(severity.value, status.value).set(
                    counts.get((severity.value, status.value), 0)
                )
        for sla in ("ack", "resolve"):  # every breach counter exists from the start, so increase() sees the first
            metrics.SLA_BREACHES.labels(severity.value, sla)
    metrics.OUTBOX_PENDING.set(pending)
    metrics.OUTBOX_SET_ASIDE_ROWS.set(set_aside)
    metrics.OUTBOX_OLDEST_PENDING.set(oldest.timestamp() if oldest is not None else 0)
