"""What the channels share: the plain data a template sees for one notification."""

from __future__ import annotations

from typing import Any

from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.notifications.payloads import Told, exception_url, headline, queue_of


def template_context(row: ExceptionRow, told: Told, *, public_url: str) -> dict[str, Any]:
    """Strings and numbers only: a template never holds a row or an object of ours."""
    return {
        "exception": {
            "id": row.id,
            "rule_id": row.rule_id,
            "severity": row.severity,
            "client_id": row.client_id,
            "queue": queue_of(row),
            "source": row.source,
            "subject": row.subject,
            "summary": row.summary,
            "status": row.status,
            "occurrences": row.occurrences,
            "first_seen": row.first_seen.isoformat(),
            "assignee": row.assignee,
        },
        "event": "escalated" if told.level is not None else told.event,
        "headline": headline(row, told),
        "level": told.level,
        "sla": told.sla,
        "url": exception_url(public_url, row.id),
        "receiver": told.receiver,
    }
