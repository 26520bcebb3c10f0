"""Indexes that make background work and history pages cost what they read (issue 23 items 5, 6).

The sweeper reads only the exceptions whose deadline has passed: three partial indexes, each
holding the rows one deadline can still fall on (status first: SQLite, planning from the schema
alone, prefers an index whose leading columns the query fixes).

- `ix_exceptions_ack_due`: open exceptions that have breached no SLA, by (severity, first_seen):
  past the severity's ack time, every row of the range is due.
- `ix_exceptions_resolve_due`: open, claimed or snoozed exceptions that have not breached their
  resolve SLA, by (severity, first_seen).
- `ix_exceptions_snooze_due`: snoozed exceptions by the time they wake.

Escalated and resolved exceptions, and those past every SLA already, are in none of them, so a
sweep in which nothing is due reads no row at all, however many are stored.

And an exception's history is read a page at a time in id order (`GET .../history?cursor=`):
`ix_exception_events_exception_id_id` replaces the index on exception_id alone, so a page of a
history of a million events reads that page, not the whole history to sort it.

Revision ID: 0012_deadline_history_indexes
Revises: 0011_set_aside_lists
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_deadline_history_indexes"
down_revision = "0011_set_aside_lists"
branch_labels = None
depends_on = None

# As models.py spells them: the sweeper's queries repeat these words, so both databases see that
# the query implies the index's condition.
ACK_DUE = sa.text("status = 'open' AND sla_breach IS NULL")
RESOLVE_DUE = sa.text("status IN ('open', 'claimed', 'snoozed') AND (sla_breach IS NULL OR sla_breach = 'ack')")
SNOOZE_DUE = sa.text("status = 'snoozed'")


def upgrade() -> None:
    for name, columns, where in (
        ("ix_exceptions_ack_due", ["status", "severity", "first_seen"], ACK_DUE),
        ("ix_exceptions_resolve_due", ["status", "severity", "first_seen"], RESOLVE_DUE),
        ("ix_exceptions_snooze_due", ["status", "snoozed_until"], SNOOZE_DUE),
    ):
        op.create_index(name, "exceptions", columns, sqlite_where=where, postgresql_where=where)
    op.create_index("ix_exception_events_exception_id_id", "exception_events", ["exception_id", "id"])
    op.drop_index("ix_exception_events_exception_id", table_name="exception_events")


def downgrade() -> None:
    op.create_index("ix_exception_events_exception_id", "exception_events", ["exception_id"])
    op.drop_index("ix_exception_events_exception_id_id", table_name="exception_events")
    for name in ("ix_exceptions_snooze_due", "ix_exceptions_resolve_due", "ix_exceptions_ack_due"):
        op.drop_index(name, table_name="exceptions")
