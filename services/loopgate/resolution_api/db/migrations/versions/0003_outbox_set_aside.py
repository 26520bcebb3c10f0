"""Outbox: an outcome that can never be published (e.g. too large for Kafka) is set aside with
its reason instead of blocking every outcome behind it.

Revision ID: 0003_outbox_set_aside
Revises: 0002_list_indexes
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0003_outbox_set_aside"
down_revision = "0002_list_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("set_aside_at", UTCDateTime(), nullable=True))
    op.add_column("outbox", sa.Column("set_aside_reason", sa.Text(), nullable=True))
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "set_aside_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"])
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("set_aside_reason")
        batch.drop_column("set_aside_at")
