"""The notification CloudEvent Loopgate posts to a webhook receiver (structured JSON over HTTP):
on call hears that an exception opened, was escalated or breached its SLA."""

from __future__ import annotations

import uuid
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from loopgate_schemas.exceptions import Severity

NOTIFICATION_SOURCE: Final = "loopgate/resolution-api"
NOTIFICATION_TYPES: Final = {
    "opened": "loopgate.exception.opened",
    "escalated": "loopgate.exception.escalated",
    "sla_breached": "loopgate.exception.sla_breached",
}
_NOTIFICATION_ID_NAMESPACE = uuid.UUID("5d0c6f3e-8b41-4f7a-9c2d-6e1b3a9f7d21")


def notification_id_for(exception_id: str, event_key: str, receiver: str) -> str:
    """Stable id of one notification (an exception's event, told to one receiver): a resend, after
    a retry or a restart, carries the same id, so a receiver can drop what it has seen."""
    return str(uuid.uuid5(_NOTIFICATION_ID_NAMESPACE, f"{exception_id}\x1f{event_key}\x1f{receiver}"))


class NotificationData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exception_id: str
    url: str = Field(description="Where an operator opens the exception.")
    event: Literal["opened", "escalated", "sla_breached"]
    rule_id: str
    severity: Severity
    client_id: str | None
    queue: str
    source: str
    subject: str
    summary: str
    status: str
    occurrences: int
    first_seen: AwareDatetime
    receiver: str = Field(description="The receiver this copy was sent to (its name in the configuration).")
    level: int | None = Field(default=None, description="The escalation level that sent it; null otherwise.")
    sla: str | None = Field(default=None, description="The SLA breached (ack or resolve), for sla_breached.")


class Notification(BaseModel):
    """CloudEvents 1.0, structured mode (`application/cloudevents+json`)."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="Stable per (exception, event, receiver): notification_id_for.")
    source: str = NOTIFICATION_SOURCE
    type: str = Field(description="loopgate.exception.opened, .escalated or .sla_breached")
    subject: str = Field(description="The exception_id.")
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: NotificationData
