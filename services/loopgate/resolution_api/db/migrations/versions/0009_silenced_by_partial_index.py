"""The index that finds the exceptions a silence holds covers those rows only (silenced_by IS NOT
NULL). As a plain index on a column NULL for nearly every row, SQLite took it for the default
list's `silenced_by IS NULL` and sorted every unsilenced exception: 470 ms for the unfiltered list
and 310 ms for the last day, with 1,000,000 stored (0.6 and 0.4 ms with this index). It still
serves `silenced_by = :id`, which implies NOT NULL.

Revision ID: 0009_silenced_by_partial_index
Revises: 0008_notifications
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_silenced_by_partial_index"
down_revision = "0008_notifications"
branch_labels = None
depends_on = None

SILENCED = sa.text("silenced_by IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_exceptions_silenced_by", table_name="exceptions")
    op.create_index(
        "ix_exceptions_silenced_by",
        "exceptions",
        ["silenced_by"],
        sqlite_where=SILENCED,
        postgresql_where=SILENCED,
    )


def downgrade() -> None:
    op.drop_index("ix_exceptions_silenced_by", table_name="exceptions")
    op.create_index("ix_exceptions_silenced_by", "exceptions", ["silenced_by"])
