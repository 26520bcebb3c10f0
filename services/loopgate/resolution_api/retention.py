"""Retention: a background job that deletes what is no longer needed, in bounded batches (one
short transaction each, so the intake and the operators get their turns between them), and counts
it (`loopgate_api_pruned_rows_total{table}`):

- resolved exceptions resolved longer ago than `retention_resolved_seconds`, with their history,
  occurrences and outbox rows (never one whose outcome is still waiting to be published);
- outbox rows published longer ago than `retention_sent_outbox_seconds`.

With several API replicas on PostgreSQL one prunes at a time (an advisory lock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter

from loopgate.common import metrics
from loopgate.common.settings import Settings
from loopgate.resolution_api import store
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db import Database

log = logging.getLogger(__name__)
RETENTION_LOCK = "loopgate.retention"


async def prune(*, db: Database, settings: Settings, clock: Clock = utcnow) -> dict[str, int]:
    """One pass: delete every row past its retention, `retention_batch_rows` per transaction.
    Returns the rows deleted per table."""
    deleted: Counter[str] = Counter()
    now, batch = clock(), settings.retention_batch_rows
    async with db.exclusive(RETENTION_LOCK) as ours:
        if not ours:
            return {}
        if settings.retention_resolved_seconds > 0:
            cutoff = now - dt.timedelta(seconds=settings.retention_resolved_seconds)
            while True:
                async with db.write() as session, session.begin():
                    ids = await store.prunable_exceptions(session=session, resolved_before=cutoff, limit=batch)
                    counts = await store.delete_exceptions(session=session, ids=ids) if ids else {}
                _count(deleted, counts)
                if len(ids) < batch:
                    break
        if settings.retention_sent_outbox_seconds > 0:
            cutoff = now - dt.timedelta(seconds=settings.retention_sent_outbox_seconds)
            while True:
                async with db.write() as session, session.begin():
                    sent = await store.delete_sent_outbox(session=session, sent_before=cutoff, limit=batch)
                _count(deleted, {"outbox": sent})
                if sent < batch:
                    break
    return dict(deleted)


def _count(total: Counter[str], counts: dict[str, int]) -> None:
    for table, rows in counts.items():
        if rows:
            total[table] += rows
            metrics.PRUNED_ROWS.labels(table).inc(rows)


class Retention(BackgroundLoop):
    name = "retention"

    def __init__(self, *, db: Database, settings: Settings, clock: Clock = utcnow) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    async def _run(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self._settings.retention_interval_seconds)
            try:
                deleted = await prune(db=self._db, settings=self._settings, clock=self._clock)
                if deleted:
                    log.info("retention: deleted %s", ", ".join(f"{n} {t}" for t, n in sorted(deleted.items())))
            except Exception:  # the next pass retries (e.g. the database away)
                log.exception("retention pass failed")
