"""The outcome CloudEvent published on `exception-outcomes`: one per final resolution."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from loopgate_schemas.exceptions import Kind, Severity

OUTCOME_TYPE: Final = "loopgate.exception.resolved"
OUTCOME_SOURCE = "loopgate/resolution-api"
_OUTCOME_ID_NAMESPACE = uuid.UUID("9a3e2b71-3c8f-4d0e-b5a6-2f7e1c4d8a90")
# The queue of exceptions no route matches (the resolution API's routes file can rename it).
DEFAULT_QUEUE: Final = "default"


class Decision(StrEnum):
    """The human's verdict on an exception; contract v2 adds the release decisions of an approval item
    (publish as is, publish the corrected version, withhold)."""

    CONFIRMED = "confirmed"
    FALSE_POSITIVE = "false_positive"
    CORRECTED = "corrected"
    ESCALATED = "escalated"
    DISMISSED = "dismissed"
    # Contract v2, approval items only (kind `approval`): what the content pipeline does with the held output.
    PUBLISH = "publish"
    PUBLISH_CORRECTED = "publish_corrected"
    WITHHOLD = "withhold"


class FieldChange(BaseModel):
    """One corrected field: what it was and what the human set it to."""

    model_config = ConfigDict(extra="forbid")

    before: Any = Field(default=None, description="The field's value before the correction (any JSON value).")
    after: Any = Field(default=None, description="The value the human set (any JSON value).")


def outcome_id_for(exception_id: str, resolution_number: int) -> str:
    """Stable CloudEvent id of an exception's n-th final resolution (n > 1 only after a reopen),
    so a relay that publishes twice publishes the same event."""
    return str(uuid.uuid5(_OUTCOME_ID_NAMESPACE, f"{exception_id}\x1f{resolution_number}"))


class OutcomeData(BaseModel):
    """What was decided about an exception, by whom and why."""

    model_config = ConfigDict(extra="ignore")

    exception_id: str = Field(
        description="The exception resolved; equal to the outcome's `subject` and the message key."
    )
    rule_id: str = Field(description="The rule that fired (e.g. bid_over_cap).")
    source: str = Field(description="The topic of the triggering message (e.g. bid-management.events).")
    decision: Decision = Field(
        description="The human's verdict: confirmed, false_positive, corrected, escalated or dismissed; on an approval "
        "item (kind approval, contract v2) the release decision: publish (as is), publish_corrected (the correction "
        "says what to change, field by field) or withhold (never publish)."
    )
    resolver: str = Field(description="Who resolved it (the operator's or service's name).")
    reason: str = Field(description="Free text: why.")
    correction: dict[str, FieldChange] = Field(
        default_factory=dict,
        description='What the human changed, field by field: {"field": {"before": ..., "after": ...}}; empty when '
        "nothing changed.",
    )
    resolved_at: AwareDatetime = Field(description="When it was resolved, RFC 3339 with a UTC offset.")
    time_to_resolve_seconds: float = Field(
        ge=0, description="Seconds from the exception's first detection to this resolution, never negative."
    )

    # --- version 2 (additive, all optional: a v1 outcome still reads) -------------------------
    # An outcome alone is a training example: what fired, on what, from which model, and the verdict.
    event_id: str | None = Field(
        default=None,
        description="v2. The `id` of the triggering CloudEvent (of the first record that opened the exception); null "
        "when the message was not a valid event (schema violations).",
    )
    event_type: str | None = Field(
        default=None, description="v2. The triggering event's `type` (e.g. bid.adjusted); null when it had none."
    )
    subject: str | None = Field(
        default=None, description="v2. The entity the exception is about (the event's subject, e.g. a campaign_id)."
    )
    client_id: str | None = Field(default=None, description="v2. The agency client; null when the event had none.")
    kind: Kind | None = Field(
        default=None, description="v2. threshold_breach, anomaly, audit_sample, data_quality or policy."
    )
    severity: Severity | None = Field(default=None, description="v2. info, low, medium, high or critical.")
    fingerprint: str | None = Field(
        default=None, description="v2. The grouping key (rule + subject) of the exception resolved."
    )
    occurrences: int | None = Field(
        default=None, ge=1, description="v2. How many firings were grouped into this exception, at least 1."
    )
    observed: dict[str, Any] | None = Field(
        default=None, description="v2. The values that triggered it, by name (as in the exception record)."
    )
    threshold: dict[str, Any] | None = Field(
        default=None, description="v2. The threshold(s) they broke, by name; null for rules without one."
    )
    expected: dict[str, Any] | None = Field(
        default=None,
        description="v2. What the values were expected to be (e.g. a baseline's mean and std); null when "
        "the rule has no expectation.",
    )
    score: float | None = Field(default=None, description="v2. The rule's score where it has one; null otherwise.")
    model: str | None = Field(
        default=None,
        description="v2. The model that produced what was judged (the event's data.model, e.g. on content.generated); "
        "null when the event names none.",
    )
    model_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="v2. That model's confidence, 0..1 (the event's data.model_confidence, on bid.adjusted and "
        "content.generated); null when the event has none.",
    )
    detected_at: AwareDatetime | None = Field(
        default=None,
        description="v2. When the exception was first detected (the earliest detected_at of its records), RFC 3339 "
        "with a UTC offset.",
    )
    queue: str | None = Field(
        default=None,
        description="v2. The queue (team) the exception was routed to when it was created (the resolution API's "
        "routes file).",
    )
    deadline: AwareDatetime | None = Field(
        default=None,
        description="v2. Approval items: the release deadline the item carried (the event's scheduled time minus the "
        "review policy's margin); null when it had none and on every other kind.",
    )


class Outcome(BaseModel):
    """CloudEvent of type `loopgate.exception.resolved`; `subject` is the exception_id."""

    model_config = ConfigDict(extra="ignore")

    specversion: Literal["1.0"] = Field(default="1.0", description='The CloudEvents version: always "1.0".')
    id: str = Field(
        description="Stable per exception and resolution (a reopened exception's next resolution gets a new one), so "
        "an outcome published twice carries the same id."
    )
    source: str = Field(default=OUTCOME_SOURCE, description="Always loopgate/resolution-api.")
    type: Literal["loopgate.exception.resolved"] = Field(
        default=OUTCOME_TYPE, description="Always loopgate.exception.resolved."
    )
    time: AwareDatetime = Field(
        description="When the exception was resolved (equal to data.resolved_at), RFC 3339 with a UTC offset."
    )
    subject: str = Field(description="The exception_id; also the message key on `exception-outcomes`.")
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Always application/json."
    )
    data: OutcomeData = Field(description="The resolution (OutcomeData).")
