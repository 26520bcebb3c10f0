"""The sweeper's deadline reads come from their partial indexes (migration 0012) on both databases,
so a pass reads the due rows only, never a scan of what is stored. SQLite plans from the schema
alone, so a small database shows the plan a large one gets; PostgreSQL plans from statistics, so
the test turns sequential scans off to check that the index can serve the query (its condition is
implied by the query's)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import event

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import store

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


async def plans(db: Database) -> list[str]:
    """The plan of each statement the sweeper's deadline reads run, one text each."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    slas = Settings().slas
    deadlines = {severity.value: (sla.ack_seconds, sla.resolve_seconds) for severity, sla in slas.items()}
    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.read() as session, session.begin():
            await store.any_sla_breaches_due(session=session, deadlines=deadlines, now=NOW)
            await store.due_sla_breaches(session=session, deadlines=deadlines, now=NOW, limit=100)
            await store.any_snoozes_due(session=session, now=NOW)
            await store.due_snoozes(session=session, now=NOW, limit=100)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    found = []
    async with db.engine.connect() as conn:
        if db.backend == "postgresql":
            await conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in statements:
            if "FROM exceptions" not in statement:
                continue
            explain = "EXPLAIN QUERY PLAN " if db.backend == "sqlite" else "EXPLAIN "
            rows = (await conn.exec_driver_sql(explain + statement, parameters)).all()
            found.append("\n".join(str(row[-1]) for row in rows))
    return found


async def test_the_sweepers_deadline_reads_use_their_partial_indexes(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        sla_check, sla_rows, snooze_check, snooze_rows = await plans(db)
    finally:
        await db.dispose()
    for plan in (sla_check, sla_rows):
        assert "ix_exceptions_ack_due" in plan and "ix_exceptions_resolve_due" in plan, plan
        assert "Seq Scan" not in plan and "SCAN exceptions" not in plan, plan
    for plan in (snooze_check, snooze_rows):
        assert "ix_exceptions_snooze_due" in plan, plan
        assert "Seq Scan" not in plan and "SCAN exceptions" not in plan, plan
