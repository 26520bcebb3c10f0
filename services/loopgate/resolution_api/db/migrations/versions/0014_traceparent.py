"""Traces (issue 29): the W3C traceparent an exception was created in, and the one its outcome
is published in, so a resolution and its outcome continue the exception's trace.

Revision ID: 0014_traceparent
Revises: 0013_console_sso_sign_ins
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_traceparent"
down_revision = "0013_console_sso_sign_ins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exceptions", sa.Column("traceparent", sa.String(55), nullable=True))
    op.add_column("outbox", sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
    op.drop_column("exceptions", "traceparent")
