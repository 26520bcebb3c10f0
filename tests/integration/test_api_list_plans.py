"""The on-call lists are read from an index in their order, never by sorting every exception that
matches: with 1,000,000 stored, a sort of the unsilenced ones took 470 ms on SQLite (the
unfiltered list) and 310 ms (the last day), against under a millisecond read newest first from
`ix_exceptions_created_at_id` (migration 0009; docs/performance.md). SQLite chooses its plan from
the schema, not from the row count, so a small database shows the plan a large one gets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import reading
from loopgate.resolution_api.exceptions.store import ExceptionFilters

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)

DEFAULT_LISTS = {
    "unfiltered (the default: unsilenced only)": ExceptionFilters(silenced=False),
    "the last day": ExceptionFilters(silenced=False, detected_after=NOW - dt.timedelta(days=1)),
    "silenced or not": ExceptionFilters(silenced=None),
}


async def plan_of_list(db: Database, filters: ExceptionFilters) -> list[str]:
    """SQLite's plan for the statement a list page runs."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await reading.list_page(db=db, filters=filters, cursor=None, limit=50)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)
    (statement, parameters), *_ = [s for s in statements if "FROM exceptions" in s[0]]
    async with db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
    return [str(row[3]) for row in rows]


@pytest.mark.parametrize("filters", DEFAULT_LISTS.values(), ids=DEFAULT_LISTS.keys())
async def test_a_default_list_reads_newest_first_from_the_created_at_index(
    tmp_path: Path, filters: ExceptionFilters
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}")
    try:
        await db.migrate()
        plan = await plan_of_list(db, filters)
    finally:
        await db.dispose()
    assert any("ix_exceptions_created_at_id" in step for step in plan), plan
    assert not any("ix_exceptions_silenced_by" in step for step in plan), plan
