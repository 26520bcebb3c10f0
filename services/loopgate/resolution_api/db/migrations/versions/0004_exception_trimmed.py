"""Exceptions keep the record's `trimmed` (contract v2): the paths inside `event` whose long
strings the detector cut to keep the record under 512 KiB.

Revision ID: 0004_exception_trimmed
Revises: 0003_outbox_set_aside
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_exception_trimmed"
down_revision = "0003_outbox_set_aside"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exceptions", sa.Column("trimmed", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("exceptions") as batch:
        batch.drop_column("trimmed")
