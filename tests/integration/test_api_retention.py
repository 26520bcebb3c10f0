"""Retention: resolved exceptions older than the configured age leave with their history,
occurrences and outcomes, in bounded batches, never one whose outcome is still unpublished;
published outbox rows leave after their own age; counted in metrics. The clock is a fake one."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from prometheus_client import REGISTRY

from loopgate.common.settings import Settings
from loopgate.resolution_api import store
from loopgate.resolution_api.models import ExceptionEventRow, ExceptionRow, OccurrenceRow, OutboxRow
from loopgate.resolution_api.retention import prune
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

DAY = 24 * 3600.0


def pruned(table: str) -> float:
    return REGISTRY.get_sample_value("loopgate_api_pruned_rows_total", {"table": table}) or 0.0


async def resolve(api: Api) -> str:
    exception_id: str = (await api.create())["id"]
    response = await api.act(exception_id, "resolve", {"decision": "confirmed"})
    assert response.status_code == 200, response.text
    return exception_id


async def mark_published(api: Api, exception_id: str, at: dt.datetime) -> None:
    async with api.services.db.write() as session, session.begin():
        for row in await store.outbox_for(session=session, exception_id=exception_id):
            await store.mark_sent(session=session, outbox_id=row.id, now=at)


async def count(api: Api, model: type, column: sa.ColumnElement[str], exception_id: str) -> int:
    async with api.services.db.read() as session:
        stmt = sa.select(sa.func.count()).select_from(model).where(column == exception_id)
        return int((await session.execute(stmt)).scalar_one())


async def test_old_resolved_exceptions_and_published_outcomes_are_pruned_in_batches(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    clock = FakeClock(start)
    settings = api_settings.model_copy(
        update={
            "retention_resolved_seconds": 180 * DAY,
            "retention_sent_outbox_seconds": 7 * DAY,
            "retention_batch_rows": 1,  # every row its own batch
        }
    )
    async with api_factory(settings, clock) as api:
        old = [await resolve(api) for _ in range(3)]
        for exception_id in old:
            await mark_published(api, exception_id, start)
        unpublished = await resolve(api)  # its outcome still waits for Kafka: kept
        still_open = (await api.create())["id"]
        clock.advance(170 * DAY)
        recent = await resolve(api)
        await mark_published(api, recent, clock())
        clock.advance(11 * DAY)
        tables = ("exceptions", "exception_events", "occurrences", "outbox", "notification_events")
        before = {t: pruned(t) for t in tables}

        deleted = await prune(db=api.services.db, settings=settings, clock=clock)

        # each exception's notification events (opened, resolved) go with it, told or not
        assert deleted == {
            "exceptions": 3,
            "exception_events": 6,
            "occurrences": 3,
            "outbox": 4,
            "notification_events": 6,
        }
        assert {t: pruned(t) - n for t, n in before.items()} == deleted
        for exception_id in old:
            for model, column in (
                (ExceptionRow, ExceptionRow.id),
                (ExceptionEventRow, ExceptionEventRow.exception_id),
                (OccurrenceRow, OccurrenceRow.exception_id),
                (OutboxRow, OutboxRow.exception_id),
            ):
                assert await count(api, model, column, exception_id) == 0
        for kept in (unpublished, still_open, recent):
            assert await count(api, ExceptionRow, ExceptionRow.id, kept) == 1
        assert await count(api, OutboxRow, OutboxRow.exception_id, recent) == 0  # published 11 days ago
        assert await count(api, OutboxRow, OutboxRow.exception_id, unpublished) == 1
        assert await prune(db=api.services.db, settings=settings, clock=clock) == {}
