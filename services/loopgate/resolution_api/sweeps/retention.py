"""Retention: a background job that deletes what is no longer needed, in bounded batches (one
short transaction each, so the intake and the operators get their turns between them), and counts
it (`loopgate_api_pruned_rows_total{table}`):

- resolved exceptions resolved longer ago than `retention_resolved_seconds`, with their history,
  occurrences, outbox rows and notifications; never one with something not yet sent (an outcome
  not published, pending or set aside; a notification event not fanned out or a notification
  waiting for its receiver: store.prunable_exceptions);
- outbox rows published longer ago than `retention_sent_outbox_seconds`.

Nothing changes under it: on PostgreSQL the exceptions of a batch are locked as they are chosen
(FOR UPDATE SKIP LOCKED: one a reopen, a resolve or an insert holds is left for the next pass),
and on both databases the delete checks again that each is still prunable, in its own
transaction. A batch that fails is deleted exception by exception (savepoints): one that cannot be
deleted is set aside (kept, logged with the reason, counted in
`loopgate_api_retention_set_aside_total{reason}`, tried again next pass) and the rest go on.

With several API replicas on PostgreSQL one prunes at a time (an advisory lock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.common.settings import Settings
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.domain_errors import DomainError
from loopgate.resolution_api.exceptions import store

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
            after: store.Prunable | None = None
            while True:
                async with db.write() as session, session.begin():
                    chosen = await store.prunable_exceptions(
                        session=session,
                        resolved_before=cutoff,
                        limit=batch,
                        after=after,
                        lock=db.backend == "postgresql",
                    )
                    counts = await _delete(session, [e.id for e in chosen], cutoff) if chosen else {}
                _count(deleted, counts)
                if len(chosen) < batch:
                    break
                after = chosen[-1]  # past the ones set aside, too
        if settings.retention_sent_outbox_seconds > 0:
            cutoff = now - dt.timedelta(seconds=settings.retention_sent_outbox_seconds)
            while True:
                async with db.write() as session, session.begin():
                    sent = await store.delete_sent_outbox(session=session, sent_before=cutoff, limit=batch)
                _count(deleted, {"outbox": sent})
                if sent < batch:
                    break
    return dict(deleted)


async def _delete(session: AsyncSession, ids: list[str], cutoff: dt.datetime) -> dict[str, int]:
    """The batch in one go; if that fails, one exception at a time, setting aside those that fail."""
    try:
        async with session.begin_nested():
            return await store.delete_exceptions(session=session, ids=ids, resolved_before=cutoff)
    except (SQLAlchemyError, DomainError) as err:
        if len(ids) == 1:
            _set_aside(ids[0], err)
            return {}
    counts: Counter[str] = Counter()
    for exception_id in ids:
        try:
            async with session.begin_nested():
                one = await store.delete_exceptions(session=session, ids=[exception_id], resolved_before=cutoff)
        except (SQLAlchemyError, DomainError) as err:
            _set_aside(exception_id, err)
        else:
            counts.update(one)
    return dict(counts)


def _set_aside(exception_id: str, err: Exception) -> None:
    reason = type(err).__name__
    metrics.RETENTION_SET_ASIDE.labels(reason).inc()
    log.warning("retention: exception %r kept, it cannot be deleted (%s: %s)", exception_id, reason, err)


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
