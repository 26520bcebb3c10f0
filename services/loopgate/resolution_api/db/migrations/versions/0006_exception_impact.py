"""Exceptions keep the record's `impact` (contract v2: the money at risk), its amount in a column
of its own and the severity as a rank, so the list can filter on the amount and sort by severity
then impact, or by impact, from an index (one per order, led by the status the queue reads).
Existing exceptions get their rank; none has an impact (the API did not keep it before).

Revision ID: 0006_exception_impact
Revises: 0005_resolved_index
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_exception_impact"
down_revision = "0005_resolved_index"
branch_labels = None
depends_on = None

# Frozen here (a migration must not change with the code): cursor.SEVERITY_RANK as of this revision.
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def upgrade() -> None:
    op.add_column("exceptions", sa.Column("impact", sa.JSON(), nullable=True))
    op.add_column("exceptions", sa.Column("impact_amount", sa.Float(), nullable=True))
    op.add_column("exceptions", sa.Column("severity_rank", sa.Integer(), nullable=True))
    severity = sa.column("severity", sa.String())
    op.execute(
        sa.table("exceptions", severity, sa.column("severity_rank", sa.Integer()))
        .update()
        .values(severity_rank=sa.case(SEVERITY_RANK, value=severity, else_=0))
    )
    with op.batch_alter_table("exceptions") as batch:
        batch.alter_column("severity_rank", existing_type=sa.Integer(), nullable=False)
    op.create_index(
        "ix_exceptions_status_severity_impact",
        "exceptions",
        ["status", "severity_rank", "impact_amount", "created_at", "id"],
    )
    op.create_index("ix_exceptions_status_impact", "exceptions", ["status", "impact_amount", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_exceptions_status_impact", table_name="exceptions")
    op.drop_index("ix_exceptions_status_severity_impact", table_name="exceptions")
    with op.batch_alter_table("exceptions") as batch:
        batch.drop_column("severity_rank")
        batch.drop_column("impact_amount")
        batch.drop_column("impact")
