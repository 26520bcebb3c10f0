"""Indexes for the list endpoint: each filter column leads an index that ends in the sort key
(created_at, id), so a filtered page is read in order from the index instead of sorting every
match; first_seen (the time-range filter) gets one too. They replace the single-column indexes.

Revision ID: 0002_list_indexes
Revises: 0001_initial
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002_list_indexes"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

FILTER_COLUMNS = ("status", "severity", "rule_id", "source", "client_id", "assignee", "first_seen")
REPLACED = ("status", "severity", "rule_id", "source", "client_id", "assignee")


def upgrade() -> None:
    for column in REPLACED:
        op.drop_index(f"ix_exceptions_{column}", table_name="exceptions")
    for column in FILTER_COLUMNS:
        op.create_index(f"ix_exceptions_{column}_created_at_id", "exceptions", [column, "created_at", "id"])


def downgrade() -> None:
    for column in FILTER_COLUMNS:
        op.drop_index(f"ix_exceptions_{column}_created_at_id", table_name="exceptions")
    for column in REPLACED:
        op.create_index(f"ix_exceptions_{column}", "exceptions", [column])
