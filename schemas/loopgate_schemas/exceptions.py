"""The exception record: one per rule firing (or audit sample), value on `exceptions`."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

# Namespace for deterministic ids: the same (event, rule) always gives the same exception_id.
EXCEPTION_ID_NAMESPACE = uuid.UUID("6f0c1d8e-7a52-4b8e-9d43-1c2a0e5b9f10")


# The detector's rules (services/loopgate/detector/rules/, with audit samples and schema violations):
# detection.toml's [severity] lists each, and tests/unit/test_record_identifiers.py keeps the two equal.
# Bounded metric labels take these values only (common/metrics.py: any other rule is `other`).
RULE_IDS = frozenset(
    {
        "bid_over_cap",
        "bid_jump",
        "bid_anomaly",
        "overspend",
        "pacing_off",
        "constraint",
        "bad_flight",
        "click_url",
        "domain_not_allowed",
        "size_mismatch",
        "delivery_stalled",
        "delivery_anomaly",
        "caption_too_long",
        "brand_safety",
        "brand_voice",
        "claim_verification",
        "schema_violation",
        "audit_sample",
        "approval_gate",
    }
)

APPROVAL_RULE_ID = "approval_gate"  # the rule of approval items (kind approval, contract v2)

# --- identifiers (README "Identifiers") ------------------------------------------------------
# Keys (exception_id, rule_id) are ASCII, safe as they are in a URL path segment (never "." nor
# ".."), a log line, a metric label and Slack markup: a letter or digit, then letters, digits and
# . _ : -
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
# Text identifiers (subject, client_id, fingerprint) come from upstream events: any character but
# those that break a line or hide text from the person reading it: C0 and C1 controls (CR, LF, TAB,
# ESC, NEL...), DEL, the line and paragraph separators, the bidirectional controls and the
# invisible formatting characters (zero-width spaces and joiners, soft hyphen, BOM). The same
# pattern is in the JSON Schema.
NOT_IN_TEXT_ID = r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb"
TEXT_ID_PATTERN = f"^[^{NOT_IN_TEXT_ID}]+$"
_KEY = re.compile(KEY_PATTERN)
_NOT_IN_TEXT_ID = re.compile(f"[{NOT_IN_TEXT_ID}]")


def clean_text_id(value: str) -> str:
    """`value` with every character a text identifier may not hold replaced by U+FFFD (the
    detector's records from upstream events with odd subjects or client ids still pass)."""
    if value.isascii() and value.isprintable():  # the common case, in C
        return value
    return _NOT_IN_TEXT_ID.sub("\ufffd", value)


def _key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise PydanticCustomError(
            "identifier_charset", "must start with a letter or digit, then only letters, digits and . _ : -"
        )
    return value


def _text_id(value: str) -> str:
    if _NOT_IN_TEXT_ID.search(value):
        raise PydanticCustomError(
            "identifier_charset",
            "must not hold control characters (CR, LF, TAB...), line separators or invisible formatting characters",
        )
    return value


Key = Annotated[str, AfterValidator(_key), Field(json_schema_extra={"pattern": KEY_PATTERN})]
TextId = Annotated[str, AfterValidator(_text_id), Field(json_schema_extra={"pattern": TEXT_ID_PATTERN})]


class Kind(StrEnum):
    """What sort of exception: a threshold breach, an anomaly, an audit sample, a data-quality problem, a policy, or
    (contract v2, additive) an approval: an output held for a person's release decision."""

    THRESHOLD_BREACH = "threshold_breach"
    ANOMALY = "anomaly"
    AUDIT_SAMPLE = "audit_sample"
    DATA_QUALITY = "data_quality"
    POLICY = "policy"
    APPROVAL = "approval"


class Severity(StrEnum):
    """How urgent: info, low, medium, high or critical (configured per rule)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """How urgent, as a number to compare and sort by: info 0 ... critical 4 (the order above)."""
        return _SEVERITY_RANKS[self]


_SEVERITY_RANKS: dict[Severity, int] = {severity: rank for rank, severity in enumerate(Severity)}


class EventRef(BaseModel):
    """Where the triggering message is on the broker."""

    model_config = ConfigDict(extra="ignore")

    topic: str = Field(description="The topic the triggering message was read from.")
    partition: int = Field(ge=0, description="Its partition, a whole number, never negative.")
    offset: int = Field(ge=0, description="Its offset in that partition, a whole number, never negative.")


class Impact(BaseModel):
    """Contract v2: the money at risk, where the rule can estimate it (operators sort their queue by it)."""

    model_config = ConfigDict(extra="ignore")

    amount: float = Field(
        ge=0,
        allow_inf_nan=False,
        description="The estimate, in the currency's major unit (e.g. euros, not cents) as a finite JSON number, "
        "never negative.",
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the amount (the event's currency).")
    basis: str = Field(
        min_length=1,
        max_length=500,
        description="One line: how the amount was estimated, naming every assumption (e.g. overspend so far today: "
        "spend_to_date - daily_budget).",
    )


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
                    "impact": {
                        "amount": 12.0,
                        "currency": "EUR",
                        "basis": "(bid_cpm 7.20 - max_bid_cpm 6.00) / 1000 x 10000 impressions: one hour at an "
                        "assumed 10000 impressions an hour (impact.bid_impressions_per_hour; the event carries no "
                        "volume)",
                    },
                    "event": {"id": "b6f1c7e0-0002", "type": "bid.adjusted"},
                    "event_ref": {"topic": "bid-management.events", "partition": 0, "offset": 42},
                    "detected_at": "2026-11-24T09:16:41Z",
                }
            ]
        },
    )

    exception_id: Key = Field(
        min_length=1,
        max_length=64,
        description="Deterministic from the triggering event id and rule_id (a UUID v5), so a redelivered event yields "
        "the same id; for a message that is not a valid event, from its topic, partition and offset. The message key "
        "on `exceptions`. 1 to 64 characters: a letter or digit, then letters, digits and . _ : - (safe as it is in "
        "a URL path and a log line).",
    )
    fingerprint: TextId = Field(
        min_length=1,
        max_length=512,
        description="The grouping key, rule + subject (`rule_id:subject`): records with the same fingerprint that "
        "arrive while an exception with it is open become occurrences of it (a count and last_seen), not new "
        "exceptions. An audit sample's includes the event id (never grouped); a schema violation's is the topic and "
        "error kind. 1 to 512 characters, none of them a control character, a line separator or an invisible "
        "formatting character.",
    )
    kind: Kind = Field(
        description="threshold_breach, anomaly, audit_sample, data_quality or policy; contract v2 adds approval (an "
        "output held by a review policy until a person decides publish, publish_corrected or withhold)."
    )
    rule_id: Key = Field(
        min_length=1,
        max_length=64,
        description="The rule that fired (e.g. bid_over_cap); audit_sample for an audit sample, schema_violation for a "
        "message that is not a valid event of its topic. 1 to 64 characters: a letter or digit, then letters, digits "
        "and . _ : -",
    )
    severity: Severity = Field(description="info, low, medium, high or critical (configured per rule).")
    source: str = Field(
        min_length=1, max_length=255, description="The topic of the triggering message (e.g. bid-management.events)."
    )
    event_type: str | None = Field(
        default=None,
        max_length=255,
        description="The triggering event's `type` (e.g. bid.adjusted); null for a message that is not a valid event.",
    )
    subject: TextId = Field(
        min_length=1,
        max_length=255,
        description="The entity the exception is about: the line item for bid rules, the campaign for budget and "
        "constraint rules, the placement, the content; the event's `subject` for an audit sample; the topic for a "
        "schema violation. 1 to 255 characters, none of them a control character, a line separator or an invisible "
        "formatting character (the detector replaces such characters of an upstream id with U+FFFD).",
    )
    client_id: TextId | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="The client the triggering event is for; null for a message that is not a valid event. 1 to 255 "
        "characters, none of them a control character, a line separator or an invisible formatting character.",
    )
    summary: str = Field(min_length=1, max_length=1000, description="One line a person can act on.")
    observed: dict[str, Any] = Field(
        default_factory=dict, description='The values that triggered it, by name (e.g. {"bid_cpm": 7.2}).'
    )
    threshold: dict[str, Any] | None = Field(
        default=None,
        description='The limits the rule compared against, by name (e.g. {"max_bid_cpm": 6.0}); null when it has none.',
    )
    expected: dict[str, Any] | None = Field(
        default=None,
        description="What the values were expected to be, by name (e.g. a baseline's mean and std, an allow-list); "
        "null when the rule has none.",
    )
    score: float | None = Field(
        default=None,
        description="The rule's score where it has one (e.g. bid_cpm / max_bid_cpm, an anomaly's z-score); null "
        "otherwise.",
    )
    event: dict[str, Any] | None = Field(
        default=None,
        description="The full triggering CloudEvent as received (long strings may be cut, see trimmed); null for a "
        "message that is not a valid event.",
    )
    event_ref: EventRef | None = Field(
        default=None,
        description="Where the triggering message is (topic, partition, offset): the full event stays reachable "
        "through it.",
    )
    occurrences: int = Field(
        default=1,
        ge=1,
        description="How many identical firings this record stands for (the detector may coalesce a burst of identical "
        "data-quality firings into one record); a whole number, at least 1.",
    )
    detected_at: AwareDatetime = Field(description="When the detector produced the record, RFC 3339 with a UTC offset.")
    impact: Impact | None = Field(
        default=None,
        description="Contract v2: the money at risk (amount, currency, basis), where the rule can estimate it: the "
        "overspend so far, a bid's excess over its cap times an assumed volume, spend ahead of even pace; null where "
        "the event gives no honest estimate (e.g. a stalled placement: the event has no price).",
    )
    # Contract v2: JSON paths inside `event` whose values were cut to keep the record under 512 KiB.
    trimmed: list[str] | None = Field(
        default=None,
        description="Contract v2: the JSON paths inside `event` whose long strings were cut to keep the record under "
        "512 KiB; null when nothing was cut. A record is never dropped for its size: the full event stays reachable "
        "through event_ref.",
    )
    deadline: AwareDatetime | None = Field(
        default=None,
        description="Contract v2, approval items: the last moment the release decision is useful, the event's "
        "data.scheduled_at minus the review policy's margin; null when the event has no (readable) scheduled time "
        "and on every other kind.",
    )
