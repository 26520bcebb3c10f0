"""Single sign-on for the console (issue 25): sign-ins under way at the identity provider, each
taken once by its callback (the state's hash, the nonce and the PKCE verifier).

Revision ID: 0013_console_sso_sign_ins
Revises: 0012_deadline_history_indexes
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loopgate.resolution_api.db.models import UTCDateTime

revision = "0013_console_sso_sign_ins"
down_revision = "0012_deadline_history_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sso_sign_ins",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_console_sso_sign_ins_created_at", "console_sso_sign_ins", ["created_at"])


def downgrade() -> None:
    op.drop_table("console_sso_sign_ins")
