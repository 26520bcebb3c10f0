"""A second pair of eyes (issue 26): the resolutions chosen for a blind second review, the second
decision and the lead's final one; and each exception's second-review state.

Revision ID: 0015_second_reviews
Revises: 0014_traceparent
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0015_second_reviews"
down_revision = "0014_traceparent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exceptions", sa.Column("second_review", sa.String(16), nullable=True))
    op.create_index("ix_exceptions_resolver", "exceptions", ["resolver"])
    op.create_table(
        "second_reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("exception_id", sa.String(64), sa.ForeignKey("exceptions.id"), nullable=False),
        sa.Column("resolution_count", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=True),
        sa.Column("chosen_by", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_resolver", sa.String(255), nullable=False),
        sa.Column("first_decision", sa.String(32), nullable=False),
        sa.Column("reviewer", sa.String(255), nullable=True),
        sa.Column("second_decision", sa.String(32), nullable=True),
        sa.Column("second_reason", sa.Text, nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("lead_exception_id", sa.String(64), nullable=True),
        sa.Column("final_decision", sa.String(32), nullable=True),
        sa.Column("adjudicated_by", sa.String(255), nullable=True),
        sa.Column("adjudicated_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("exception_id", "resolution_count", name="uq_second_reviews_resolution"),
    )
    op.create_index("ix_second_reviews_exception_id", "second_reviews", ["exception_id"])
    op.create_index("ix_second_reviews_lead_exception_id", "second_reviews", ["lead_exception_id"])
    op.create_index("ix_second_reviews_status_created_at", "second_reviews", ["status", "created_at", "id"])
    op.create_index("ix_second_reviews_reviewed_at", "second_reviews", ["reviewed_at"])


def downgrade() -> None:
    op.drop_table("second_reviews")
    op.drop_index("ix_exceptions_resolver", table_name="exceptions")
    op.drop_column("exceptions", "second_review")
