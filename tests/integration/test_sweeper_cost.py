"""The sweeper costs what changed, not what exists (issue 23 item 6, issue 27): with 10,000
unresolved exceptions and 100 active silences, a pass in which nothing is due runs a fixed few
statements (never one per exception nor one per silence, and never the event JSON), and a pass in
which some rows are due adds a fixed few statements per step that has work, whatever their number.
Ending a silence re-applies the other silences to what it held only. Statements are counted with
SQLAlchemy's `before_cursor_execute` event, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow, SilenceRow
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.silences import silencing
from loopgate.resolution_api.silences.silencing import SilenceState
from loopgate_schemas.exceptions import ExceptionRecord
from tests.fixtures.api import Api, ApiFactory, record
from tests.fixtures.clock import FakeClock

UNRESOLVED = 10_000
SILENCES = 100
# A pass with nothing due: the due snoozes, the due SLAs (two deadline reads), the due silences,
# the recheck of recent exceptions, and the gauges' three reads.
IDLE_STATEMENTS = 10


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """The statements the calling task runs (not the relays' running beside it)."""
    statements: list[str] = []
    task = asyncio.current_task()

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if asyncio.current_task() is task and not statement.lstrip().upper().startswith(
            ("BEGIN", "COMMIT", "ROLLBACK", "SELECT PG_")
        ):
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)


async def seed(api: Api, now: dt.datetime) -> list[str]:
    """10,000 claimed, low exceptions first seen 2 hours ago (past the shortest SLA, breaching none),
    created an hour ago (out of the silences' recheck window), each with its full event; and 100
    active silences matching none of them."""
    rows = []
    for i in range(UNRESOLVED):
        payload = record(
            exception_id=f"cost-{i:05d}",
            severity="low",
            detected_at=(now - dt.timedelta(hours=2)).isoformat(),
            event={"id": f"evt-{i}", "type": "bid.adjusted", "data": {"caption": "x" * 2000}},
        )
        values = store.new_exception_values(ExceptionRecord.model_validate(payload), now=now - dt.timedelta(hours=1))
        rows.append({**values, "status": "claimed", "assignee": "dana"})
    silences = [
        {
            "id": uuid.uuid4().hex,
            **dict.fromkeys(silencing.MATCHERS),
            "rule_id": f"no-such-rule-{i}",
            "match_all": False,
            "starts_at": now - dt.timedelta(hours=1),
            "ends_at": now + dt.timedelta(days=1),
            "created_by": "dana",
            "comment": "quiet",
            "created_at": now - dt.timedelta(hours=1),
            "applied": SilenceState.ACTIVE.value,
        }
        for i in range(SILENCES)
    ]
    async with api.services.db.write() as session, session.begin():
        for start in range(0, len(rows), 1000):
            await session.execute(sa.insert(ExceptionRow), rows[start : start + 1000])
        await session.execute(sa.insert(SilenceRow), silences)
    return [row["id"] for row in rows]


async def test_a_sweep_with_nothing_due_runs_a_fixed_few_statements(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    clock = FakeClock()
    async with api_factory(api_settings, clock) as api:
        await seed(api, clock())
        await api.services.sweeper.sweep()

        with counted(api.services.db) as statements:
            assert await api.services.sweeper.sweep() == (0, 0)

    assert len(statements) <= IDLE_STATEMENTS, "\n".join(statements)
    assert not any("exceptions.event," in s or "exceptions.event\n" in s for s in statements), statements


async def test_a_sweep_with_rows_due_adds_statements_per_step_not_per_row(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    clock = FakeClock()
    async with api_factory(api_settings, clock) as api:
        ids = await seed(api, clock())
        now = clock()
        past_sla, due_snoozes = ids[:10], ids[10:15]
        async with api.services.db.write() as session, session.begin():
            t = ExceptionRow
            await session.execute(sa.update(t).where(t.id.in_(past_sla)).values(first_seen=now - dt.timedelta(days=30)))
            await session.execute(
                sa.update(t)
                .where(t.id.in_(due_snoozes))
                .values(status="snoozed", snoozed_until=now - dt.timedelta(seconds=1))
            )
        with counted(api.services.db) as busy:
            assert await api.services.sweeper.sweep() == (5, 10)
        clock.advance(1)
        with counted(api.services.db) as idle:
            assert await api.services.sweeper.sweep() == (0, 0)  # nothing is due twice

    # Each step with work adds its locked re-read, the rows' update, their history and (SLA) their
    # notification events: 4 statements for 5 snoozes and 10 breaches alike.
    assert len(idle) <= IDLE_STATEMENTS, "\n".join(idle)
    assert len(busy) - len(idle) <= 2 * 4, "\n".join(busy)


async def test_the_due_rows_are_woken_and_escalated_exactly(api_factory: ApiFactory, api_settings: Settings) -> None:
    clock = FakeClock()
    async with api_factory(api_settings, clock) as api:
        ids = await seed(api, clock())
        now = clock()
        t = ExceptionRow
        async with api.services.db.write() as session, session.begin():
            await session.execute(sa.update(t).where(t.id.in_(ids[:10])).values(first_seen=now - dt.timedelta(days=30)))
            await session.execute(sa.update(t).where(t.id.in_(ids[10:15])).values(status="snoozed", snoozed_until=now))

        assert await api.services.sweeper.sweep() == (5, 10)

        async with api.services.db.read() as session, session.begin():
            changed = (
                await session.execute(
                    sa.select(t.id, t.status, t.sla_breach, t.version).where(t.status != "claimed").order_by(t.id)
                )
            ).all()
    assert [tuple(r) for r in changed] == [
        *((i, "escalated", "resolve", 2) for i in ids[:10]),
        *((i, "open", None, 2) for i in ids[10:15]),
    ]


async def test_ending_a_silence_costs_what_it_held_not_every_active_silence(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    clock = FakeClock()
    async with api_factory(api_settings, clock) as api:
        ids = await seed(api, clock())
        held = {"rule_id": "bid_over_cap", "client_id": "northwind"}
        created = await api.http.post(
            "/v1/silences",
            json={**held, "ends_at": (clock() + dt.timedelta(hours=1)).isoformat(), "comment": "maintenance"},
            headers=api.auth("operator"),
        )
        assert created.status_code == 201, created.text
        assert created.json()["silenced"] == UNRESOLVED

        with counted(api.services.db) as statements:
            response = await api.http.post(f"/v1/silences/{created.json()['id']}/expire", headers=api.auth("operator"))

        assert response.status_code == 200, response.text
        async with api.services.db.read() as session, session.begin():
            still_held = await session.scalar(sa.select(sa.func.count()).where(ExceptionRow.silenced_by.is_not(None)))
    assert still_held == 0
    assert len(ids) == UNRESOLVED
    assert len(statements) <= 20, "\n".join(statements)
