"""The application's PostgreSQL role: rows only. The schema's owner runs the migrations
(`loopgate api migrate --grant-to ROLE`) and grants the role what the API needs, reading and
writing rows, never creating, altering or dropping tables; the migration table it may only read
(the API checks the schema is at head). Granted again after every migration, so tables a new
migration adds are covered; SQLite has no roles, so there is nothing to grant there."""

from __future__ import annotations

import re

from sqlalchemy import text

from loopgate.common.errors import LoopgateError
from loopgate.resolution_api.db.engine import Database

# PostgreSQL's unquoted identifiers, lower case (what CREATE ROLE name makes): nothing to quote or inject.
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_$]{0,62}")


class BadRoleName(LoopgateError, ValueError):
    pass


def checked_role(role: str) -> str:
    if not ROLE_NAME.fullmatch(role):
        raise BadRoleName(
            f"--grant-to {role!r}: a PostgreSQL role name is lower-case letters, digits, _ or $ "
            "(at most 63, not starting with a digit)"
        )
    return role


def grant_statements(role: str, schema: str = "public") -> list[str]:
    role = checked_role(role)
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"REVOKE CREATE ON SCHEMA {schema} FROM {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
    ]


async def grant_row_access(db: Database, role: str) -> bool:
    """Grant `role` the API's row access; False (nothing done) on SQLite."""
    statements = grant_statements(role)
    if db.backend != "postgresql":
        return False
    async with db.engine.begin() as conn:
        exists = (await conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})).first()
        if exists is None:
            raise BadRoleName(f"--grant-to {role!r}: no such role in this database cluster (CREATE ROLE it first)")
        for statement in statements:
            await conn.execute(text(statement))
    return True
