"""Retention: resolved exceptions older than the configured age leave with their history,
occurrences, outcomes and notifications, in bounded batches; never one with an outcome not yet
published to Kafka (pending or set aside) or a notification not yet sent (an event not yet fanned
out, a notification waiting for its receiver), and never one reopened while retention ran; a row
it cannot delete is set aside and the rest go on. Published outbox rows leave after their own age;
counted in metrics. The clock is a fake one; every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import (
    ExceptionEventRow,
    ExceptionRow,
    NotificationEventRow,
    NotificationRow,
    OccurrenceRow,
    OutboxRow,
)
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.notifications import store as notifications
from loopgate.resolution_api.sweeps.retention import prune
from loopgate_tools.waiting import eventually_async
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

DAY = 24 * 3600.0
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def pruned(table: str) -> float:
    return REGISTRY.get_sample_value("loopgate_api_pruned_rows_total", {"table": table}) or 0.0


def set_aside_count(reason: str) -> float:
    return REGISTRY.get_sample_value("loopgate_api_retention_set_aside_total", {"reason": reason}) or 0.0


@pytest.fixture
def retention_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(
        update={
            "retention_resolved_seconds": 180 * DAY,
            "retention_sent_outbox_seconds": 7 * DAY,
            "retention_batch_rows": 1,  # every row its own batch
            "notify_interval_seconds": 3600,  # the tests fan notification events out themselves
        }
    )


async def resolve(api: Api) -> str:
    exception_id: str = (await api.create())["id"]
    response = await api.act(exception_id, "resolve", {"decision": "confirmed"})
    assert response.status_code == 200, response.text
    return exception_id


async def mark_published(api: Api, exception_id: str, at: dt.datetime) -> None:
    async with api.services.db.write() as session, session.begin():
        for row in await store.outbox_for(session=session, exception_id=exception_id):
            await store.mark_sent(session=session, outbox_id=row.id, now=at)


async def fan_out(api: Api) -> None:
    """Every notification event turned into its notifications (none: no receiver is configured)."""
    while await api.services.notifier.fan_out():
        pass


async def told_and_published(api: Api, at: dt.datetime) -> str:
    """A resolved exception whose outcome is published and whose notification events are told."""
    exception_id = await resolve(api)
    await mark_published(api, exception_id, at)
    await fan_out(api)
    return exception_id


async def count(api: Api, model: type, column: sa.ColumnElement[str], exception_id: str) -> int:
    async with api.services.db.read() as session:
        stmt = sa.select(sa.func.count()).select_from(model).where(column == exception_id)
        return int((await session.execute(stmt)).scalar_one())


async def exists(api: Api, exception_id: str) -> bool:
    return await count(api, ExceptionRow, ExceptionRow.id, exception_id) == 1


async def add_notification(api: Api, exception_id: str, **values: Any) -> None:
    async with api.services.db.write() as session, session.begin():
        await notifications.add_notifications(
            session=session,
            rows=[
                {
                    "notification_id": f"n-{exception_id}",
                    "exception_id": exception_id,
                    "event": "opened",
                    "level": None,
                    "receiver": "hook",
                    "receiver_kind": "webhook",
                    "fingerprint": "f",
                    "payload": "{}",
                    "created_at": START,
                    **values,
                }
            ],
        )


async def test_old_resolved_exceptions_and_published_outcomes_are_pruned_in_batches(
    api_factory: ApiFactory, retention_settings: Settings
) -> None:
    settings = retention_settings
    clock = FakeClock(START)
    async with api_factory(settings, clock) as api:
        old = [await told_and_published(api, START) for _ in range(3)]
        unpublished = await resolve(api)  # its outcome still waits for Kafka: kept
        still_open = (await api.create())["id"]
        clock.advance(170 * DAY)
        recent = await told_and_published(api, clock())
        clock.advance(11 * DAY)
        await fan_out(api)
        tables = ("exceptions", "exception_events", "occurrences", "outbox", "notification_events")
        before = {t: pruned(t) for t in tables}

        deleted = await prune(db=api.services.db, settings=settings, clock=clock)

        # each exception's notification events (opened, resolved) go with it, once told
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
                (NotificationEventRow, NotificationEventRow.exception_id),
            ):
                assert await count(api, model, column, exception_id) == 0
        for kept in (unpublished, still_open, recent):
            assert await exists(api, kept)
        assert await count(api, OutboxRow, OutboxRow.exception_id, recent) == 0  # published 11 days ago
        assert await count(api, OutboxRow, OutboxRow.exception_id, unpublished) == 1
        assert await prune(db=api.services.db, settings=settings, clock=clock) == {}


async def test_an_outcome_set_aside_and_never_published_keeps_its_exception(
    api_factory: ApiFactory, retention_settings: Settings
) -> None:
    clock = FakeClock(START)
    async with api_factory(retention_settings, clock) as api:
        exception_id = await resolve(api)
        await fan_out(api)
        async with api.services.db.write() as session, session.begin():
            (outcome,) = await store.outbox_for(session=session, exception_id=exception_id)
            await store.set_aside(session=session, outbox_id=outcome.id, reason="too large", now=START)
        clock.advance(365 * DAY)

        assert await prune(db=api.services.db, settings=retention_settings, clock=clock) == {}

        assert await exists(api, exception_id)
        assert await count(api, OutboxRow, OutboxRow.exception_id, exception_id) == 1


async def test_a_notification_event_not_yet_fanned_out_keeps_its_exception(
    api_factory: ApiFactory, retention_settings: Settings
) -> None:
    clock = FakeClock(START)
    async with api_factory(retention_settings, clock) as api:
        exception_id = await resolve(api)
        await mark_published(api, exception_id, START)
        clock.advance(365 * DAY)

        deleted = await prune(db=api.services.db, settings=retention_settings, clock=clock)
        assert deleted == {"outbox": 1}  # its outcome, published a year ago
        assert await exists(api, exception_id)
        assert await count(api, NotificationEventRow, NotificationEventRow.exception_id, exception_id) == 2

        await fan_out(api)
        deleted = await prune(db=api.services.db, settings=retention_settings, clock=clock)
        assert deleted == {"exceptions": 1, "exception_events": 2, "occurrences": 1, "notification_events": 2}


async def test_a_notification_waiting_for_its_receiver_keeps_its_exception(
    api_factory: ApiFactory, retention_settings: Settings
) -> None:
    clock = FakeClock(START)
    async with api_factory(retention_settings, clock) as api:
        exception_id = await told_and_published(api, START)
        await add_notification(api, exception_id)
        clock.advance(365 * DAY)

        deleted = await prune(db=api.services.db, settings=retention_settings, clock=clock)
        assert deleted == {"outbox": 1}  # its outcome, published a year ago
        assert await exists(api, exception_id)
        assert await count(api, NotificationRow, NotificationRow.exception_id, exception_id) == 1

        async with api.services.db.write() as session, session.begin():
            (notification,) = await notifications.for_exception(session=session, exception_id=exception_id)
            await notifications.mark_sent(session=session, row_id=notification.id, now=clock())
        deleted = await prune(db=api.services.db, settings=retention_settings, clock=clock)
        assert deleted == {
            "exceptions": 1,
            "exception_events": 2,
            "occurrences": 1,
            "notification_events": 2,
            "notifications": 1,
        }


async def test_a_notification_set_aside_for_good_goes_with_its_exception(
    api_factory: ApiFactory, retention_settings: Settings
) -> None:
    clock = FakeClock(START)
    async with api_factory(retention_settings, clock) as api:
        exception_id = await told_and_published(api, START)
        await add_notification(api, exception_id, set_aside_at=START, set_aside_reason=notifications.RATE_LIMITED)
        clock.advance(365 * DAY)

        deleted = await prune(db=api.services.db, settings=retention_settings, clock=clock)

        assert deleted["exceptions"] == 1
        assert deleted["notifications"] == 1


async def test_a_row_retention_cannot_delete_is_set_aside_and_the_rest_go(
    api_factory: ApiFactory, retention_settings: Settings
) -> None:
    clock = FakeClock(START)
    settings = retention_settings.model_copy(update={"retention_batch_rows": 10})
    async with api_factory(settings, clock) as api:
        first, stuck, last = [await told_and_published(api, START) for _ in range(3)]
        async with api.services.db.write() as session, session.begin():
            # a table retention does not know of (say a later migration's) still refers to `stuck`
            await session.execute(
                sa.text("CREATE TABLE held (exception_id VARCHAR(255) NOT NULL REFERENCES exceptions (id))")
            )
            await session.execute(sa.text("INSERT INTO held VALUES (:id)"), {"id": stuck})
        clock.advance(365 * DAY)
        before = set_aside_count("IntegrityError")

        deleted = await prune(db=api.services.db, settings=settings, clock=clock)

        assert deleted["exceptions"] == 2
        assert not await exists(api, first)
        assert not await exists(api, last)
        assert await exists(api, stuck)
        assert await count(api, ExceptionEventRow, ExceptionEventRow.exception_id, stuck) == 2
        assert set_aside_count("IntegrityError") - before == 1


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    await eventually_async(condition, timeout=seconds, interval=0.01)


async def test_an_exception_reopened_while_retention_runs_is_kept_with_its_history(
    api_factory: ApiFactory, retention_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(START)
    async with api_factory(retention_settings, clock) as api:
        reopened, other = [await told_and_published(api, START) for _ in range(2)]
        clock.advance(365 * DAY)
        db = api.services.db
        # the reopen's transaction stays open, its change and history written, until released
        written, release = asyncio.Event(), asyncio.Event()
        add_events = store.add_events  # the bus's history handler writes every change's row through it

        async def add_events_and_wait(**kwargs: Any) -> None:
            await add_events(**kwargs)
            await kwargs["session"].flush()
            written.set()
            await release.wait()

        monkeypatch.setattr(store, "add_events", add_events_and_wait)
        reopen = asyncio.create_task(api.act(reopened, "reopen", {"reason": "wrong call"}, role="admin"))
        await asyncio.wait_for(written.wait(), 10)
        retention = asyncio.create_task(prune(db=db, settings=retention_settings, clock=clock))

        async def retention_done_or_waiting() -> bool:
            if retention.done() or db.backend == "sqlite":  # SQLite: it waits for the one writer's turn
                return True
            async with db.read() as session:
                waiting = await session.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            return bool(waiting)

        await until(retention_done_or_waiting)
        if db.backend == "postgresql":
            assert retention.done()  # it skipped the exception the reopen holds, without waiting
        release.set()
        response = await asyncio.wait_for(reopen, 10)
        deleted = await asyncio.wait_for(retention, 10)

        assert response.status_code == 200, response.text
        assert deleted["exceptions"] == 1
        assert not await exists(api, other)
        async with db.read() as session:
            row = await session.get(ExceptionRow, reopened)
            assert row is not None and row.status == "open"
            actions = [event.action for event in await store.history(session=session, exception_id=reopened)]
        assert actions == ["created", "resolve", "reopen"]
