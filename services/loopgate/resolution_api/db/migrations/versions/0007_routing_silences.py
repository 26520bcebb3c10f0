"""Routing and silences (issue 16): each exception keeps the queue it was routed to (existing
ones: "default") and the silence holding it, if any; silences and their audit trail.

Revision ID: 0007_routing_silences
Revises: 0006_exception_impact
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0007_routing_silences"
down_revision = "0006_exception_impact"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exceptions", sa.Column("queue", sa.String(255), nullable=True))
    op.add_column("exceptions", sa.Column("silenced_by", sa.String(32), nullable=True))
    op.execute(sa.table("exceptions", sa.column("queue", sa.String())).update().values(queue="default"))
    with op.batch_alter_table("exceptions") as batch:
        batch.alter_column("queue", existing_type=sa.String(255), nullable=False)
    op.create_index("ix_exceptions_queue_created_at_id", "exceptions", ["queue", "created_at", "id"])
    op.create_index(
        "ix_exceptions_unsilenced_status_created_at_id",
        "exceptions",
        ["status", "created_at", "id"],
        sqlite_where=sa.text("silenced_by IS NULL"),
        postgresql_where=sa.text("silenced_by IS NULL"),
    )
    op.create_index("ix_exceptions_silenced_by", "exceptions", ["silenced_by"])
    op.create_table(
        "silences",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("rule_id", sa.String(64), nullable=True),
        sa.Column("client_id", sa.String(255), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("match_all", sa.Boolean(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expired_by", sa.String(255), nullable=True),
        sa.Column("expired_at", UTCDateTime(), nullable=True),
        sa.Column("applied", sa.String(16), nullable=False),
    )
    op.create_index("ix_silences_applied_ends_at", "silences", ["applied", "ends_at"])
    op.create_table(
        "silence_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("silence_id", sa.String(32), sa.ForeignKey("silences.id"), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
    )
    op.create_index("ix_silence_events_silence_id", "silence_events", ["silence_id"])


def downgrade() -> None:
    op.drop_index("ix_silence_events_silence_id", table_name="silence_events")
    op.drop_table("silence_events")
    op.drop_index("ix_silences_applied_ends_at", table_name="silences")
    op.drop_table("silences")
    op.drop_index("ix_exceptions_silenced_by", table_name="exceptions")
    op.drop_index("ix_exceptions_unsilenced_status_created_at_id", table_name="exceptions")
    op.drop_index("ix_exceptions_queue_created_at_id", table_name="exceptions")
    with op.batch_alter_table("exceptions") as batch:
        batch.drop_column("silenced_by")
        batch.drop_column("queue")
