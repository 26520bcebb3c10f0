"""The exception record: one per rule firing (or audit sample), value on `exceptions`."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Namespace for deterministic ids: the same (event, rule) always gives the same exception_id.
EXCEPTION_ID_NAMESPACE = uuid.UUID("6f0c1d8e-7a52-4b8e-9d43-1c2a0e5b9f10")


class Kind(StrEnum):
    THRESHOLD_BREACH = "threshold_breach"
    ANOMALY = "anomaly"
    AUDIT_SAMPLE = "audit_sample"
    DATA_QUALITY = "data_quality"
    POLICY = "policy"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class EventRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


def exception_id_for(trigger: str, rule_id: str) -> str:
    """Deterministic id from what triggered the firing (an event id, or a message position for a
    message that is not an event) and the rule: a redelivered event yields the same id."""
    return str(uuid.uuid5(EXCEPTION_ID_NAMESPACE, f"{rule_id}\x1f{trigger}"))


def fingerprint_for(rule_id: str, subject: str) -> str:
    """Grouping key: one open exception per rule and subject."""
    return f"{rule_id}:{subject}"


class ExceptionRecord(BaseModel):
    """What the detector publishes and the resolution API accepts (contract: 'Exception record')."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "exception_id": "0b9ad2c4-5d1e-5c55-8a0a-3f1f7d2f5d11",
                    "fingerprint": "bid_over_cap:li-88121",
                    "kind": "threshold_breach",
                    "rule_id": "bid_over_cap",
                    "severity": "high",
                    "source": "bid-management.events",
                    "event_type": "bid.adjusted",
                    "subject": "li-88121",
                    "client_id": "northwind",
                    "summary": "Bid 7.20 EUR CPM on li-88121 (northwind, ttd) is 20% over the campaign cap of 6.00",
                    "observed": {"bid_cpm": 7.2},
                    "threshold": {"max_bid_cpm": 6.0},
                    "score": 1.2,
                    "event": {"id": "b6f1c7e0-0002", "type": "bid.adjusted"},
                    "event_ref": {"topic": "bid-management.events", "partition": 0, "offset": 42},
                    "detected_at": "2026-11-24T09:16:41Z",
                }
            ]
        },
    )

    exception_id: str = Field(min_length=1, max_length=64)
    fingerprint: str = Field(min_length=1, max_length=512)
    kind: Kind
    rule_id: str = Field(min_length=1, max_length=64)
    severity: Severity
    source: str = Field(min_length=1, max_length=255)
    event_type: str | None = Field(default=None, max_length=255)
    subject: str = Field(min_length=1, max_length=255)
    client_id: str | None = Field(default=None, max_length=255)
    summary: str = Field(min_length=1, max_length=1000)
    observed: dict[str, Any] = Field(default_factory=dict)
    threshold: dict[str, Any] | None = None
    expected: dict[str, Any] | None = None
    score: float | None = None
    event: dict[str, Any] | None = None
    event_ref: EventRef | None = None
    occurrences: int = Field(default=1, ge=1)
    detected_at: AwareDatetime
    # Contract v2: JSON paths inside `event` whose values were cut to keep the record under 512 KiB.
    trimmed: list[str] | None = None
