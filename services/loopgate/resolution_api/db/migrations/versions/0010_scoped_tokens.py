"""Tokens as credentials people manage (issue 25): a scope (the clients a token may see), optional
expiry, last use, rotation with a grace period, names unique among active tokens; and the audit log
of who created, rotated or revoked which token. Active tokens that already share a name keep the
oldest's name; the others get their id appended, so the unique index can be built.

Revision ID: 0010_scoped_tokens
Revises: 0009_silenced_by_partial_index
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0010_scoped_tokens"
down_revision = "0009_silenced_by_partial_index"
branch_labels = None
depends_on = None

ACTIVE = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("clients", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_used_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("previous_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_valid_until", UTCDateTime(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, name FROM tokens WHERE revoked_at IS NULL ORDER BY created_at, id")
    ).fetchall()
    seen: set[str] = set()
    for token_id, name in rows:
        if name in seen:
            bind.execute(
                sa.text("UPDATE tokens SET name = :name WHERE id = :id"),
                {"name": f"{name[:200]}-{token_id}", "id": token_id},
            )
        seen.add(name)
    op.create_index("ix_tokens_previous_hash", "tokens", ["previous_hash"])
    op.create_index(
        "uq_tokens_active_name", "tokens", ["name"], unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("token_id", sa.String(32), sa.ForeignKey("tokens.id"), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("clients", sa.JSON(), nullable=True),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_console_sessions_token_id", "console_sessions", ["token_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("console_sessions")
    op.drop_index("uq_tokens_active_name", table_name="tokens")
    op.drop_index("ix_tokens_previous_hash", table_name="tokens")
    with op.batch_alter_table("tokens") as batch:
        for column in ("previous_valid_until", "previous_hash", "last_used_at", "expires_at", "clients"):
            batch.drop_column(column)
