"""Initial tables: exceptions, occurrences, exception_events, outbox, tokens.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

UNRESOLVED = sa.text("status <> 'resolved'")


def upgrade() -> None:
    op.create_table(
        "exceptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("fingerprint", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=True),
        sa.Column("summary", sa.String(1000), nullable=False),
        sa.Column("observed", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.JSON(), nullable=True),
        sa.Column("expected", sa.JSON(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("event", sa.JSON(), nullable=True),
        sa.Column("event_ref", sa.JSON(), nullable=True),
        sa.Column("occurrences", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(255), nullable=True),
        sa.Column("snoozed_until", UTCDateTime(), nullable=True),
        sa.Column("sla_breach", sa.String(16), nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("correction", sa.JSON(), nullable=True),
        sa.Column("resolver", sa.String(255), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("time_to_resolve_seconds", sa.Float(), nullable=True),
        sa.Column("resolution_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "uq_exceptions_unresolved_fingerprint",
        "exceptions",
        ["fingerprint"],
        unique=True,
        sqlite_where=UNRESOLVED,
        postgresql_where=UNRESOLVED,
    )
    op.create_index("ix_exceptions_created_at_id", "exceptions", ["created_at", "id"])
    op.create_index("ix_exceptions_status", "exceptions", ["status"])
    for column in ("rule_id", "severity", "source", "client_id", "assignee"):
        op.create_index(f"ix_exceptions_{column}", "exceptions", [column])

    op.create_table(
        "occurrences",
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("detected_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_occurrences_exception_id", "occurrences", ["exception_id"])

    op.create_table(
        "exception_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
    )
    op.create_index("ix_exception_events_exception_id", "exception_events", ["exception_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("outcome_id", sa.String(64), nullable=False, unique=True),
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"])
    op.create_index("ix_outbox_exception_id", "outbox", ["exception_id"])

    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    for table in ("tokens", "outbox", "exception_events", "occurrences", "exceptions"):
        op.drop_table(table)
