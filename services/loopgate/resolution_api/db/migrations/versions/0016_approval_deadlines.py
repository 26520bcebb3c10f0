"""Approval items (issue 26 item 0): an exception's release deadline (contract v2 `deadline`), when
the sweeper escalated it for that deadline, and the two partial indexes reading them: the approval
queue in deadline order, and the items whose deadline the sweeper may still escalate.

Revision ID: 0016_approval_deadlines
Revises: 0015_second_reviews
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

# As models.py spells them (a migration keeps its own words: a later change to the model's needs its own migration).
APPROVAL_UNRESOLVED = "kind = 'approval' AND status <> 'resolved'"
APPROVAL_DEADLINE_DUE = (
    "kind = 'approval' AND status IN ('open', 'claimed', 'snoozed') AND deadline_escalated_at IS NULL "
    "AND release_deadline IS NOT NULL"
)

revision = "0016_approval_deadlines"
down_revision = "0015_second_reviews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exceptions", sa.Column("release_deadline", UTCDateTime(), nullable=True))
    op.add_column("exceptions", sa.Column("deadline_escalated_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_exceptions_approval_queue",
        "exceptions",
        ["release_deadline", "created_at", "id"],
        sqlite_where=sa.text(APPROVAL_UNRESOLVED),
        postgresql_where=sa.text(APPROVAL_UNRESOLVED),
    )
    op.create_index(
        "ix_exceptions_approval_deadline_due",
        "exceptions",
        ["release_deadline"],
        sqlite_where=sa.text(APPROVAL_DEADLINE_DUE),
        postgresql_where=sa.text(APPROVAL_DEADLINE_DUE),
    )


def downgrade() -> None:
    op.drop_index("ix_exceptions_approval_deadline_due", table_name="exceptions")
    op.drop_index("ix_exceptions_approval_queue", table_name="exceptions")
    op.drop_column("exceptions", "deadline_escalated_at")
    op.drop_column("exceptions", "release_deadline")
