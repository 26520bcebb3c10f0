"""Opsgenie's alert API (https://docs.opsgenie.com/docs/alert-api): an exception is one alert,
`alias` = the exception's id: opened, escalated and breaching its SLA create it (Opsgenie folds
a create with an open alert's alias into that alert), resolving it closes it
(POST /v2/alerts/{alias}/close?identifierType=alias). The API key goes in the
`Authorization: GenieKey <key>` header at each attempt, never into the stored payload.
Opsgenie answers 202; 422 is a request it will never take (set aside); 401/403 (a wrong key),
429 and 5xx are retried.

A notification for a person (an escalation level reaching someone whose channel this receiver
carries) adds them as the alert's responders (`{"type": "user", "username": ...}`, the schedules
file's address: their Opsgenie user name, an email address)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from loopgate.common.text import one_line
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.notifications.channels.common import template_context
from loopgate.resolution_api.notifications.payloads import Told, exception_url, queue_of
from loopgate.resolution_api.notifications.templates import Part

API_URL = "https://api.opsgenie.com"  # the EU instance: https://api.eu.opsgenie.com
MESSAGE_CHARACTERS = 130  # Opsgenie's limits
DESCRIPTION_CHARACTERS = 15000
USERNAME = re.compile(r"^[^@\s,;<>\"]{1,64}@[A-Za-z0-9.-]{1,253}$")  # Opsgenie's user names are email addresses
RESPONDERS = 50  # Opsgenie's limit
PRIORITIES = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4", "info": "P5"}


def person_username(value: str) -> str:
    """A person's Opsgenie user name (the schedules file), else ValueError."""
    if not USERNAME.fullmatch(value):
        raise ValueError("an Opsgenie user name is its email address (name@domain)")
    return value


def body(row: ExceptionRow, told: Told, *, public_url: str, templates: dict[str, Part]) -> dict[str, Any]:
    if told.event == "resolved":
        note = one_line(f"resolved in Loopgate ({row.decision or 'resolved'})", 25000)
        return {"action": "close", "alias": row.id, "body": {"source": "Loopgate", "note": note}}
    url = exception_url(public_url, row.id)
    message = templates["message"].render(template_context(row, told, public_url=public_url))
    details = {
        "exception_id": row.id,
        "rule": row.rule_id,
        "client": row.client_id or "",
        "queue": queue_of(row),
        "occurrences": str(row.occurrences),
        "url": url,
        "event": told.event if told.level is None else f"escalation level {told.level}",
        "notification_id": told.notification_id,
    }
    return {
        "action": "create",
        "alias": row.id,
        "body": {
            "message": message or one_line(row.summary, MESSAGE_CHARACTERS),
            "alias": row.id,
            "description": one_line(f"{row.summary}\n{url}", DESCRIPTION_CHARACTERS),
            "priority": PRIORITIES.get(row.severity, "P3"),
            "source": "Loopgate",
            "entity": one_line(row.client_id or "", 512),
            "tags": [one_line(t, 50) for t in (row.rule_id, row.severity, queue_of(row))],
            "details": {k: one_line(v, 8000) for k, v in details.items()},
            **(
                {"responders": [{"type": "user", "username": person_username(u)} for u in told.to[:RESPONDERS]]}
                if told.to
                else {}
            ),
        },
    }


def request(base: str, payload: str, key: str | None) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and auth header of one attempt."""
    if not key:
        raise ValueError("no API key (key_env or key_file)")
    alert = json.loads(payload)
    root = base.rstrip("/")
    if root.endswith("/v2/alerts"):
        root = root[: -len("/v2/alerts")]
    if alert["action"] == "close":
        url = f"{root}/v2/alerts/{quote(alert['alias'], safe='')}/close?identifierType=alias"
    else:
        url = f"{root}/v2/alerts"
    body = json.dumps(alert["body"], separators=(",", ":")).encode()
    return url, body, {"Authorization": f"GenieKey {key}"}
