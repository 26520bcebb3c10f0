"""Inhibition (issue 28 item 3): the openings an inhibit rule holds back while another exception
fires, and when each was released.

Revision ID: 0019_notification_inhibitions
Revises: 0018_notification_groups
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0019_notification_inhibitions"
down_revision = "0018_notification_groups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_inhibitions",
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), primary_key=True),
        sa.Column("inhibited_by", sa.String(64), nullable=False),
        sa.Column("rule", sa.Integer, nullable=False),
        sa.Column("held_at", UTCDateTime(), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_notification_inhibitions_released_at", "notification_inhibitions", ["released_at"])


def downgrade() -> None:
    op.drop_index("ix_notification_inhibitions_released_at", "notification_inhibitions")
    op.drop_table("notification_inhibitions")
