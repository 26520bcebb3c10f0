"""Grouped notifications (issue 28 item 3): the exceptions waiting in each receiver's groups and
each group's messages, so one message lists a group's new exceptions exactly once.

Revision ID: 0018_notification_groups
Revises: 0017_notification_event_people
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0018_notification_groups"
down_revision = "0017_notification_event_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_group_members",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("group_key", sa.String(2048), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.UniqueConstraint("receiver", "exception_id", name="uq_notification_group_members_receiver_exception"),
    )
    op.create_index(
        "ix_notification_group_members_untold", "notification_group_members", ["message_id", "receiver", "group_key"]
    )
    op.create_index("ix_notification_group_members_exception_id", "notification_group_members", ["exception_id"])
    op.create_table(
        "notification_groups",
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("group_key", sa.String(2048), primary_key=True),
        sa.Column("messages", sa.Integer, nullable=False),
        sa.Column("last_message_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_groups")
    op.drop_index("ix_notification_group_members_exception_id", "notification_group_members")
    op.drop_index("ix_notification_group_members_untold", "notification_group_members")
    op.drop_table("notification_group_members")
