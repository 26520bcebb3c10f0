"""People on call (issue 28 item 2): an escalation level's event keeps the people it pages, with
their channels as they were when the level was reached, so the relay addresses each receiver's
message to them (a chat mention) even after the schedules file changes.

Revision ID: 0017_notification_event_people
Revises: 0016_approval_deadlines
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_notification_event_people"
down_revision = "0016_approval_deadlines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notification_events", sa.Column("people", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification_events") as batch:
        batch.drop_column("people")
