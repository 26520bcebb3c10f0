"""What each kind of receiver is sent, as pure functions of the exception and the event: a
CloudEvent (webhook), a readable message with a link (Slack-compatible incoming webhook) or an
alert (Alertmanager's /api/v2/alerts, the same labels from firing to resolved)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from loopgate.resolution_api.models import ExceptionRow
from loopgate_schemas.notifications import NOTIFICATION_TYPES, Notification, NotificationData
from loopgate_schemas.outcomes import DEFAULT_QUEUE

ALERT_NAME = "LoopgateException"


def queue_of(row: ExceptionRow) -> str:
    """The exception's queue (routing.py), or the default queue for one stored before routing."""
    return row.queue or DEFAULT_QUEUE


def exception_url(public_url: str, exception_id: str) -> str:
    """Where an operator opens the exception (LOOPGATE_PUBLIC_URL)."""
    return f"{public_url.rstrip('/')}/v1/exceptions/{exception_id}"


@dataclass(frozen=True, slots=True)
class Told:
    """One notification to render: which event of which exception, for which receiver."""

    notification_id: str
    event: str  # opened, escalated, sla_breached, resolved
    receiver: str
    at: dt.datetime
    level: int | None = None
    sla: str | None = None


def webhook_body(row: ExceptionRow, told: Told, *, public_url: str) -> dict[str, Any]:
    event = "escalated" if told.level is not None else told.event
    notification = Notification(
        id=told.notification_id,
        type=NOTIFICATION_TYPES[event],
        subject=row.id,
        time=told.at,
        data=NotificationData(
            exception_id=row.id,
            url=exception_url(public_url, row.id),
            event=event,  # type: ignore[arg-type]
            rule_id=row.rule_id,
            severity=row.severity,  # type: ignore[arg-type]
            client_id=row.client_id,
            queue=queue_of(row),
            source=row.source,
            subject=row.subject,
            summary=row.summary,
            status=row.status,
            occurrences=row.occurrences,
            first_seen=row.first_seen,
            receiver=told.receiver,
            level=told.level,
            sla=told.sla,
        ),
    )
    return notification.model_dump(mode="json")


def _headline(row: ExceptionRow, told: Told) -> str:
    if told.level is not None:
        return f"escalation level {told.level}: still {'unclaimed' if row.assignee is None else row.status}"
    return {
        "opened": "opened",
        "escalated": "escalated",
        "sla_breached": f"breached its {told.sla or ''} SLA".replace("  ", " "),
    }[told.event]


def slack_body(row: ExceptionRow, told: Told, *, public_url: str) -> dict[str, Any]:
    url = exception_url(public_url, row.id)
    client = row.client_id or "no client"
    text = (
        f"[{row.severity.upper()}] {row.rule_id} {_headline(row, told)} ({client}, queue {queue_of(row)})\n"
        f"{row.summary}\n<{url}|Open exception {row.id}> ({row.occurrences} occurrence"
        f"{'' if row.occurrences == 1 else 's'}, first seen {row.first_seen:%Y-%m-%d %H:%M} UTC)"
    )
    return {"text": text}


def alertmanager_body(
    row: ExceptionRow, told: Told, *, public_url: str, firing_hold_seconds: float
) -> list[dict[str, Any]]:
    """One alert; its labels name the exception, so firing, escalated and resolved are one alert
    to Alertmanager (the resolved one carries endsAt)."""
    url = exception_url(public_url, row.id)
    if told.event == "resolved":
        ends_at = row.resolved_at or told.at
    else:
        ends_at = max(row.first_seen, told.at) + dt.timedelta(seconds=firing_hold_seconds)
    return [
        {
            "labels": {
                "alertname": ALERT_NAME,
                "exception_id": row.id,
                "rule": row.rule_id,
                "severity": row.severity,
                "client": row.client_id or "",
                "queue": queue_of(row),
            },
            "annotations": {
                "summary": row.summary,
                "url": url,
                "event": told.event if told.level is None else f"escalation level {told.level}",
                "notification_id": told.notification_id,
            },
            "generatorURL": url,
            "startsAt": row.first_seen.isoformat(),
            "endsAt": ends_at.isoformat(),
        }
    ]


def render(row: ExceptionRow, told: Told, *, kind: str, public_url: str, firing_hold_seconds: float) -> str:
    if kind == "webhook":
        body: Any = webhook_body(row, told, public_url=public_url)
    elif kind == "slack":
        body = slack_body(row, told, public_url=public_url)
    else:
        body = alertmanager_body(row, told, public_url=public_url, firing_hold_seconds=firing_hold_seconds)
    return json.dumps(body, separators=(",", ":"))
