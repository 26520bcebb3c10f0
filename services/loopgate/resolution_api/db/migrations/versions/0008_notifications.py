"""Notifications (issue 16): `notification_events`, written in the same transaction as the change
on-call must hear of, and `notifications`, one per receiver with its stable id, which the relay
sends; exceptions remember the last escalation level told.

Revision ID: 0008_notifications
Revises: 0007_routing_silences
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0008_notifications"
down_revision = "0007_routing_silences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("exceptions") as batch:
        batch.add_column(sa.Column("escalation_level", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "notification_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("receivers", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expanded_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("exception_id", "key", name="uq_notification_events_exception_key"),
    )
    op.create_index("ix_notification_events_exception_id", "notification_events", ["exception_id"])
    op.create_index("ix_notification_events_pending", "notification_events", ["expanded_at", "id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("notification_id", sa.String(36), nullable=False, unique=True),
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("receiver_kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(512), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("set_aside_at", UTCDateTime(), nullable=True),
        sa.Column("set_aside_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_notifications_exception_id", "notifications", ["exception_id"])
    op.create_index("ix_notifications_pending", "notifications", ["receiver", "sent_at", "set_aside_at", "id"])
    op.create_index("ix_notifications_flapping", "notifications", ["fingerprint", "receiver", "created_at"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_events")
    with op.batch_alter_table("exceptions") as batch:
        batch.drop_column("escalation_level")
