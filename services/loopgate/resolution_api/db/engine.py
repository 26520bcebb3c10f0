"""Database engine, sessions and migrations: SQLite (aiosqlite) by default, PostgreSQL (asyncpg).

Write transactions on SQLite start with BEGIN IMMEDIATE, so concurrent writers queue on the
busy timeout instead of failing when a read lock cannot be upgraded; reads use a plain BEGIN.
Within one process, SQLite write sessions also take turns on an asyncio lock: SQLite has one
writer at a time anyway, and its busy handler polls with sleeps of up to 100 ms, which made
writers under load wait seconds for a lock that was free most of the time.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import math
import os
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from loopgate.common.errors import LoopgateError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_READONLY = "loopgate_readonly"
SQLITE_BUSY_TIMEOUT_SECONDS = 30


def _json_dumps(value: Any) -> str:
    # orjson writes NaN and infinities as null: PostgreSQL's json type refuses them.
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: the standard library writes any size
        return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, json_serializer=_json_dumps)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, json_serializer=_json_dumps
    )
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READONLY) else "BEGIN IMMEDIATE")


class SchemaNotAtHead(LoopgateError, RuntimeError):
    """The database's schema is not the one this code needs, and this process may not migrate it."""


class SecondWriter(RuntimeError):
    """A second API process on the same SQLite file."""


class Database:
    """The engine and its two session factories: `write` and `read` (both in a transaction)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._write = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_turn = asyncio.Lock() if self.backend == "sqlite" else None
        self.read = async_sessionmaker(self.engine.execution_options(**{_READONLY: True}), expire_on_commit=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session for one write transaction (`async with db.write() as s, s.begin():`)."""
        if self._write_turn is None:
            async with self._write() as session:
                yield session
            return
        async with self._write_turn, self._write() as session:
            yield session

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[bool]:
        """Whether this process may do the named job now, while the block runs. On PostgreSQL (API
        replicas share the database): a session advisory lock, taken without waiting (False: another
        replica holds it) and released with the block or with the connection if the process dies.
        SQLite has one API process (see `single_writer`): always True."""
        if self.backend != "postgresql":
            yield True
            return
        key = zlib.crc32(name.encode())
        async with self.engine.connect() as conn:
            held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar())
            try:
                yield held
            finally:
                if held:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    @contextmanager
    def single_writer(self) -> Iterator[None]:
        """SQLite: this process is the one API writing the file (a lock file beside it, held until
        the block ends, released by the system if the process dies); a second one is refused at start
        with SecondWriter. Nothing on PostgreSQL, where replicas share the database."""
        database = make_url(self.url).database
        if self.backend != "sqlite" or not database or database == ":memory:":
            yield
            return
        path = Path(f"{database}.writer.lock")
        handle = path.open("a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise SecondWriter(
                    f"another API process (pid {holder}) already writes the SQLite database {database}: SQLite "
                    "takes one API process; stop the other one, or run several replicas on PostgreSQL "
                    "(LOOPGATE_DATABASE_URL=postgresql+asyncpg://...)"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    async def migrate(self) -> None:
        """Apply every Alembic migration not applied yet."""
        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head)

    async def check_at_head(self) -> None:
        """Raise SchemaNotAtHead unless every migration is applied (a process whose database role may
        not change the schema: LOOPGATE_DATABASE_MIGRATE_ON_START=false)."""
        async with self.engine.connect() as conn:
            current = await conn.run_sync(current_revision)
        head = head_revision()
        if current != head:
            raise SchemaNotAtHead(
                f"the database is at migration {current or 'none (an empty database)'}, this Loopgate needs "
                f"{head}: run `loopgate api migrate` as the schema's owner first "
                "(LOOPGATE_DATABASE_MIGRATE_ON_START is false, so this process does not migrate)"
            )

    async def prepare(self, *, migrate: bool) -> None:
        """Ready for use: migrated to head (`migrate`), or checked to be there."""
        if migrate:
            await self.migrate()
        else:
            await self.check_at_head()

    async def ping(self) -> None:
        async with self.read() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
