"""An index on (resolved_at, id): verdict statistics read a window of resolutions, and the
training-data export pages through decided exceptions in that order (keyset pages).

Revision ID: 0005_resolved_index
Revises: 0004_exception_trimmed
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0005_resolved_index"
down_revision = "0004_exception_trimmed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_exceptions_resolved_at_id", "exceptions", ["resolved_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_exceptions_resolved_at_id", table_name="exceptions")
