"""The Alembic migrations create exactly the tables models.py describes, and re-running them is a no-op."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import Base


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await db.dispose()


async def test_migrating_twice_changes_nothing(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await db.dispose()
