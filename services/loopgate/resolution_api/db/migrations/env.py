"""Alembic environment. The API and `loopgate api migrate` pass an open connection
(config.attributes["connection"]); the plain `alembic` command gets the URL from alembic.ini's
`sqlalchemy.url` or else from the settings (LOOPGATE_DATABASE_URL)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from loopgate.resolution_api.db.models import Base

target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    # Batch mode lets later migrations alter tables on SQLite too.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    from loopgate.resolution_api.db.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_with)
    finally:
        await engine.dispose()


def main() -> None:
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from loopgate.common.settings import get_settings

        url = get_settings().database_url
    asyncio.run(run_standalone(url))


main()
