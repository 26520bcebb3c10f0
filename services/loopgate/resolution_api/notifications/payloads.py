"""What each kind of receiver is sent, as pure functions of the exception and the event: a
CloudEvent (webhook), a readable message with a link (Slack-compatible incoming webhook) or an
alert (Alertmanager's /api/v2/alerts, the same labels from firing to resolved).

Every text taken from the record is data, never markup: in Slack's mrkdwn it is put on one line
and `&`, `<`, `>` are escaped (Slack's own rules), so a summary cannot mention `<!channel>` or
forge a link; JSON bodies escape by construction; alert labels and annotations are on one line.
Links carry the exception id percent-encoded. A row that cannot be rendered at all raises: the
relay sets that notification aside and renders the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from loopgate.common.text import one_line
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate_schemas.notifications import NOTIFICATION_TYPES, Notification, NotificationData
from loopgate_schemas.outcomes import DEFAULT_QUEUE

ALERT_NAME = "LoopgateException"
SLACK_SUMMARY_CHARACTERS = 3000  # Slack cuts a message's text at 40,000; one line stays readable
SLACK_FIELD_CHARACTERS = 255
SLACK_MENTION = re.compile(r"<(@[UW][A-Z0-9]{1,32}|!subteam\^S[A-Z0-9]{1,32})>")


def queue_of(row: ExceptionRow) -> str:
    """The exception's queue (routing.py), or the default queue for one stored before routing."""
    return row.queue or DEFAULT_QUEUE


def exception_url(public_url: str, exception_id: str) -> str:
    """The console's page of the exception (LOOPGATE_PUBLIC_URL), the id percent-encoded: a
    browser opens it, signs in if it must, and comes back (console/return_to.py). The JSON API
    (/v1/exceptions/<id>) wants a Bearer token, which a link from chat does not carry."""
    return f"{public_url.rstrip('/')}/console/exceptions/{quote(exception_id, safe='')}"


def slack_text(value: object, limit: int = SLACK_FIELD_CHARACTERS) -> str:
    """Data shown in Slack mrkdwn as itself: one line, cut, then `&`, `<`, `>` escaped."""
    return one_line(str(value), limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str, label: str) -> str:
    """A Slack link whose URL and label cannot end it early (`|` and `>` never pass unescaped)."""
    return f"<{slack_text(url, 2000).replace('|', '%7C')}|{slack_text(label)}>"


@dataclass(frozen=True, slots=True)
class Told:
    """One notification to render: which event of which exception, for which receiver."""

    notification_id: str
    event: str  # opened, escalated, sla_breached, resolved
    receiver: str
    at: dt.datetime
    level: int | None = None
    sla: str | None = None
    to: tuple[str, ...] = ()  # the paged people's addresses this receiver carries (mention, email, key, user)


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


headline = _headline  # the channels' templates see it too


def slack_body(row: ExceptionRow, told: Told, *, public_url: str) -> dict[str, Any]:
    url = exception_url(public_url, row.id)
    client = slack_text(row.client_id or "no client")
    headline = slack_text(_headline(row, told))
    text = (
        f"[{slack_text(row.severity.upper())}] {slack_text(row.rule_id)} {headline} "
        f"({client}, queue {slack_text(queue_of(row))})\n"
        f"{slack_text(row.summary, SLACK_SUMMARY_CHARACTERS)}\n{slack_link(url, f'Open exception {row.id}')} "
        f"({row.occurrences} occurrence{'' if row.occurrences == 1 else 's'}, "
        f"first seen {row.first_seen:%Y-%m-%d %H:%M} UTC)"
    )
    if told.to:
        text = f"{' '.join(slack_mention(address) for address in told.to)} {text}"
    return {"text": text}


def slack_mention(address: str) -> str:
    """A person's chat address as a mention when it is one (<@U123>, <!subteam^S1>), else as text."""
    return address if SLACK_MENTION.fullmatch(address) else slack_text(address)


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
                "exception_id": one_line(row.id),
                "rule": one_line(row.rule_id),
                "severity": one_line(row.severity),
                "client": one_line(row.client_id or ""),
                "queue": one_line(queue_of(row)),
            },
            "annotations": {
                "summary": one_line(row.summary, 20000),
                "url": url,
                "event": told.event if told.level is None else f"escalation level {told.level}",
                "notification_id": told.notification_id,
                **({"paged": one_line(", ".join(told.to), 2000)} if told.to else {}),
            },
            "generatorURL": url,
            "startsAt": row.first_seen.isoformat(),
            "endsAt": ends_at.isoformat(),
        }
    ]


def render(
    row: ExceptionRow,
    told: Told,
    *,
    kind: str,
    public_url: str,
    firing_hold_seconds: float,
    templates: dict[str, Any] | None = None,
) -> str:
    from loopgate.resolution_api.notifications.channels.catalog import render_channel  # they import this module

    if (channel := render_channel(row, told, kind=kind, public_url=public_url, templates=templates or {})) is not None:
        body: Any = channel
    elif kind == "webhook":
        body = webhook_body(row, told, public_url=public_url)
    elif kind == "slack":
        body = slack_body(row, told, public_url=public_url)
    else:
        body = alertmanager_body(row, told, public_url=public_url, firing_hold_seconds=firing_hold_seconds)
    return json.dumps(body, separators=(",", ":"))
