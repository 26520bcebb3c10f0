"""Production runs the API as a PostgreSQL role that may only read and write rows: the schema's
owner migrates (`loopgate api migrate --grant-to ROLE`) and grants; the API, started with
LOOPGATE_DATABASE_MIGRATE_ON_START=false, works every exception as usual, cannot change the schema,
and refuses to start on a schema that is not at head, saying what to run. Real PostgreSQL."""

from __future__ import annotations

import re
import uuid

import asyncpg
import pytest
from typer.testing import CliRunner

from loopgate.cli.main import app as cli
from loopgate.common.settings import Settings
from loopgate.resolution_api.db.engine import Database, SchemaNotAtHead, head_revision
from loopgate.resolution_api.db.privileges import BadRoleName, grant_row_access
from loopgate_tools.postgres import PostgresServer
from tests.fixtures.api import UNREACHABLE_BOOTSTRAP, ApiFactory, claim

pytestmark = pytest.mark.postgres


async def _as_superuser(server: PostgresServer, *statements: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(host=server.host, port=server.port, user=server.user, database=database)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def owned(postgres_server: PostgresServer) -> tuple[str, str, str]:
    """A database owned by a migration role, and an application role with no rights yet."""
    tag = uuid.uuid4().hex[:8]
    owner, app_role, database = f"lg_owner_{tag}", f"lg_app_{tag}", f"lg_{tag}"
    await _as_superuser(
        postgres_server,
        f"CREATE ROLE {owner} LOGIN",
        f"CREATE ROLE {app_role} LOGIN",
        f"CREATE DATABASE {database} OWNER {owner}",
    )
    await _as_superuser(postgres_server, f"ALTER SCHEMA public OWNER TO {owner}", database=database)
    return owner, app_role, database


def _url(server: PostgresServer, user: str, database: str) -> str:
    return f"postgresql+asyncpg://{user}@{server.host}:{server.port}/{database}"


async def test_the_application_role_works_exceptions_but_cannot_change_the_schema(
    postgres_server: PostgresServer, owned: tuple[str, str, str], api_factory: ApiFactory
) -> None:
    owner, app_role, database = owned
    migrator = Database(_url(postgres_server, owner, database))
    try:
        await migrator.migrate()
        assert await grant_row_access(migrator, app_role) is True
    finally:
        await migrator.dispose()
    settings = Settings(
        database_url=_url(postgres_server, app_role, database),
        database_migrate_on_start=False,
        kafka_bootstrap=UNREACHABLE_BOOTSTRAP,
        sweep_interval_seconds=3600,
    )

    async with api_factory(settings) as api:
        created = await api.create(**claim("northwind"))
        resolved = await api.act(created["id"], "resolve", {"decision": "confirmed", "reason": "checked"})
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"

    conn = await asyncpg.connect(host=postgres_server.host, port=postgres_server.port, user=app_role, database=database)
    try:
        for forbidden in (
            "CREATE TABLE intruder (id int)",
            "DROP TABLE exceptions",
            "ALTER TABLE exceptions ADD COLUMN x int",
            "UPDATE alembic_version SET version_num = 'x'",
            "TRUNCATE exceptions",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(forbidden)
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
    finally:
        await conn.close()


async def test_an_unmigrated_schema_is_refused_with_what_to_run(
    postgres_server: PostgresServer, owned: tuple[str, str, str]
) -> None:
    _, app_role, database = owned
    db = Database(_url(postgres_server, app_role, database))
    try:
        with pytest.raises(SchemaNotAtHead) as refused:
            await db.prepare(migrate=False)
    finally:
        await db.dispose()

    assert str(refused.value) == (
        f"the database is at migration none (an empty database), this Loopgate needs {head_revision()}: run "
        "`loopgate api migrate` as the schema's owner first (LOOPGATE_DATABASE_MIGRATE_ON_START is false, "
        "so this process does not migrate)"
    )


async def test_granting_to_a_role_that_does_not_exist_is_refused(
    postgres_server: PostgresServer, owned: tuple[str, str, str]
) -> None:
    owner, _, database = owned
    db = Database(_url(postgres_server, owner, database))
    try:
        await db.migrate()
        with pytest.raises(BadRoleName, match="no such role in this database cluster"):
            await grant_row_access(db, "nobody_here")
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    "role",
    ["Loopgate", "app; DROP TABLE exceptions", "1app", "a" * 64, "", "app-role", 'app"x'],
)
def test_the_migrate_command_refuses_a_role_name_it_would_have_to_quote(role: str) -> None:
    result = CliRunner().invoke(cli, ["api", "migrate", "--grant-to", role])

    assert result.exit_code == 2
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())  # typer's error box, unwrapped
    assert (
        "a PostgreSQL role name is lower-case letters, digits, _ or $ (at most 63, not starting with a digit)" in said
    )
