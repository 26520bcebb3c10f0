"""Notification events: one that cannot be turned into notifications (a malformed row) is set
aside with its reason instead of rolling back its whole batch forever (issue 23). Partial indexes
find what was set aside (notification events, notifications that could not be rendered or sent,
outcomes), newest first, for the admin's lists.

Revision ID: 0011_set_aside_lists
Revises: 0010_scoped_tokens
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0011_set_aside_lists"
down_revision = "0010_scoped_tokens"
branch_labels = None
depends_on = None

_SET_ASIDE = [
    ("ix_notification_events_set_aside", "notification_events", "set_aside_at IS NOT NULL"),
    ("ix_notifications_failed", "notifications", "set_aside_at IS NOT NULL AND set_aside_reason <> 'rate_limited'"),
    ("ix_outbox_set_aside", "outbox", "set_aside_at IS NOT NULL"),
]


def upgrade() -> None:
    with op.batch_alter_table("notification_events") as batch:
        batch.add_column(sa.Column("set_aside_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("set_aside_reason", sa.Text(), nullable=True))
    op.drop_index("ix_notification_events_pending", table_name="notification_events")
    op.create_index("ix_notification_events_pending", "notification_events", ["expanded_at", "set_aside_at", "id"])
    for name, table, where in _SET_ASIDE:
        op.create_index(name, table, ["id"], sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, table, _ in _SET_ASIDE:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_notification_events_pending", table_name="notification_events")
    op.create_index("ix_notification_events_pending", "notification_events", ["expanded_at", "id"])
    with op.batch_alter_table("notification_events") as batch:
        batch.drop_column("set_aside_reason")
        batch.drop_column("set_aside_at")
