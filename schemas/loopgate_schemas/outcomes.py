"""The outcome CloudEvent published on `exception-outcomes`: one per final resolution."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

OUTCOME_TYPE: Final = "loopgate.exception.resolved"
OUTCOME_SOURCE = "loopgate/resolution-api"
_OUTCOME_ID_NAMESPACE = uuid.UUID("9a3e2b71-3c8f-4d0e-b5a6-2f7e1c4d8a90")


class Decision(StrEnum):
    CONFIRMED = "confirmed"
    FALSE_POSITIVE = "false_positive"
    CORRECTED = "corrected"
    ESCALATED = "escalated"
    DISMISSED = "dismissed"


class FieldChange(BaseModel):
    """One corrected field: what it was and what the human set it to."""

    model_config = ConfigDict(extra="forbid")

    before: Any = None
    after: Any = None


def outcome_id_for(exception_id: str, resolution_number: int) -> str:
    """Stable CloudEvent id of an exception's n-th final resolution (n > 1 only after a reopen),
    so a relay that publishes twice publishes the same event."""
    return str(uuid.uuid5(_OUTCOME_ID_NAMESPACE, f"{exception_id}\x1f{resolution_number}"))


class OutcomeData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    exception_id: str
    rule_id: str
    source: str
    decision: Decision
    resolver: str
    reason: str
    correction: dict[str, FieldChange] = Field(default_factory=dict)
    resolved_at: AwareDatetime
    time_to_resolve_seconds: float = Field(ge=0)


class Outcome(BaseModel):
    """CloudEvent of type `loopgate.exception.resolved`; `subject` is the exception_id."""

    model_config = ConfigDict(extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = OUTCOME_SOURCE
    type: Literal["loopgate.exception.resolved"] = OUTCOME_TYPE
    time: AwareDatetime
    subject: str
    datacontenttype: Literal["application/json"] = "application/json"
    data: OutcomeData
