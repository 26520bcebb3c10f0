"""PagerDuty's Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
an exception is one incident, `dedup_key` = the exception's id: opened, escalated and breaching
its SLA trigger it (PagerDuty folds a repeated trigger into the open incident), resolving it
resolves it. The integration's routing key comes from the environment or a file and is put
into the body at each attempt, never into the stored payload. PagerDuty answers 202; 400 is an
event it will never take (set aside); 401/403 (a wrong key), 429 and 5xx are retried.

A notification for a person (an escalation level reaching someone whose channel this receiver
carries) goes to that person's routing key (the schedules file's address) instead of the
receiver's: the payload keeps it as `person_routing_key`, and the relay writes one notification
per paged person, and resolves each incident with the key that triggered it."""

from __future__ import annotations

import json
import re
from typing import Any

from loopgate.common.text import one_line
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.notifications.channels.common import template_context
from loopgate.resolution_api.notifications.payloads import Told, exception_url, queue_of
from loopgate.resolution_api.notifications.templates import Part

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_CHARACTERS = 1024  # PagerDuty's limit on payload.summary
# Loopgate's severities on PagerDuty's four
ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")  # an Events API v2 integration key
SEVERITIES = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}


def person_key(value: str) -> str:
    """A person's routing key (the schedules file), else ValueError."""
    if not ROUTING_KEY.fullmatch(value):
        raise ValueError("a PagerDuty routing key is 32 letters and digits")
    return value


def body(row: ExceptionRow, told: Told, *, public_url: str, templates: dict[str, Part]) -> dict[str, Any]:
    if len(told.to) > 1:
        raise ValueError("one PagerDuty routing key per notification")
    person = {"person_routing_key": person_key(told.to[0])} if told.to else {}
    if told.event == "resolved":
        return {"event_action": "resolve", "dedup_key": row.id, **person}
    url = exception_url(public_url, row.id)
    summary = templates["summary"].render(template_context(row, told, public_url=public_url))
    return {
        "event_action": "trigger",
        "dedup_key": row.id,
        "payload": {
            "summary": summary or one_line(row.summary, SUMMARY_CHARACTERS),
            "source": one_line(row.source or "loopgate", 255),
            "severity": SEVERITIES.get(row.severity, "error"),
            "timestamp": row.first_seen.isoformat(),
            "component": one_line(row.rule_id, 255),
            "group": one_line(queue_of(row), 255),
            "class": one_line(row.rule_id, 255),
            "custom_details": {
                "exception_id": row.id,
                "client_id": row.client_id,
                "subject": row.subject,
                "status": row.status,
                "occurrences": row.occurrences,
                "event": told.event if told.level is None else f"escalation level {told.level}",
                "notification_id": told.notification_id,
            },
        },
        "links": [{"href": url, "text": f"Open exception {row.id}"}],
        "client": "Loopgate",
        "client_url": url,
        **person,
    }


def request(url: str, payload: str, key: str | None) -> tuple[str, bytes]:
    """The URL and body of one attempt, the routing key put in now (the paged person's, else the
    receiver's)."""
    event = json.loads(payload)
    key = event.pop("person_routing_key", None) or key
    if not key:
        raise ValueError("no routing key (key_env or key_file)")
    return url, json.dumps({"routing_key": key, **event}, separators=(",", ":")).encode()
