"""Review policies: how much of one client's stream a person sees, per source and client.

From one end of the spectrum to the other (detection.toml's [review.<source>.<client>] tables):

- `approve_all`: every event is held for a person's release decision (an `approval` item);
- `risk`: held when one of its firings is at or above `min_severity` or puts at least
  `min_amount` of money at risk (a rule's own score is on its own scale, a ratio, a z-score, a 0..1
  where lower is worse, so the comparable risk is the severity configured for it and its impact);
- `uncertain`: held when the model's confidence is below `max_confidence`;
- `sample`: nothing held; audit samples at `rate` (the source's base rate when not given);
- `exceptions_only`: nothing held and no audit samples: the rules' exceptions alone.

A client without a table of its own gets the source's `"*"` table, and without that, the
detector's behaviour before policies (rule exceptions plus audit samples at the source's rate).
Rule exceptions are never suppressed by a policy: an approval item comes beside them. Each
approval item's deadline is the event's `data.scheduled_at` (when it has a valid one) minus
`deadline_margin_minutes`. Pure functions: the worker, the evaluator and the tests call them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from loopgate.detector.review_config import (
    ApproveAll,
    ExceptionsOnly,
    HeldPolicy,
    Policy,
    RiskThreshold,
    Sample,
    Uncertain,
)
from loopgate.detector.rules.base import Firing
from loopgate_schemas.events import CloudEvent
from loopgate_schemas.exceptions import APPROVAL_RULE_ID, Kind, Severity

APPROVAL_RULE = APPROVAL_RULE_ID
SCHEDULED_FIELD = "scheduled_at"  # the event's data field holding the post's scheduled publish time


def audits(policy: Policy | None) -> bool:
    """Whether audit sampling applies under `policy` (all but exceptions_only)."""
    return not isinstance(policy, ExceptionsOnly)


def audit_rate(policy: Policy | None, base_rate: float) -> float:
    """The audit base rate under `policy`: a sample policy's own rate, else the source's."""
    if isinstance(policy, Sample) and policy.rate is not None:
        return float(policy.rate)
    return base_rate


def holds(
    policy: Policy | None,
    confidence: float | None,
    firings: Sequence[Firing],
    severity_of: Callable[[str], Severity],
) -> bool:
    """Whether `policy` holds the event for a release decision."""
    if isinstance(policy, ApproveAll):
        return True
    if isinstance(policy, Uncertain):
        return confidence is not None and confidence < policy.max_confidence
    if isinstance(policy, RiskThreshold):
        for f in firings:
            if f.kind is Kind.AUDIT_SAMPLE:
                continue
            if policy.min_severity is not None and severity_of(f.rule_id).rank >= policy.min_severity.rank:
                return True
            if policy.min_amount is not None and f.impact is not None and f.impact.amount >= policy.min_amount:
                return True
    return False


def scheduled_time(raw_event: dict[str, Any]) -> tuple[datetime | None, str | None]:
    """The event's `data.scheduled_at` as an aware datetime, or (None, why it cannot be read)
    when it has one that is not RFC 3339 with an offset ((None, None): it has none)."""
    data = raw_event.get("data")
    value = data.get(SCHEDULED_FIELD) if isinstance(data, dict) else None
    if value is None:
        return None, None
    if not isinstance(value, str) or len(value) > 64:
        return None, f"{SCHEDULED_FIELD} is not an RFC 3339 string"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None, f"{SCHEDULED_FIELD} is not an RFC 3339 time: {value[:64]!r}"
    if when.tzinfo is None or when.utcoffset() is None:
        return None, f"{SCHEDULED_FIELD} has no UTC offset: {value[:64]!r}"
    return when, None


def release_deadline(scheduled: datetime | None, policy: HeldPolicy) -> datetime | None:
    """The last moment a release decision is useful: the scheduled time minus the margin."""
    if scheduled is None:
        return None
    try:
        return scheduled - timedelta(minutes=policy.deadline_margin_minutes)
    except OverflowError:  # a scheduled time near year 1
        return None


@dataclass(frozen=True, slots=True)
class Hold:
    """Why an event is held, and until when its release decision is useful."""

    mode: str
    deadline: datetime | None
    scheduled_at: datetime | None
    problem: str | None  # the scheduled time that could not be read, said in the item


def hold_for(policy: HeldPolicy, raw_event: dict[str, Any]) -> Hold:
    scheduled, problem = scheduled_time(raw_event)
    return Hold(policy.mode, release_deadline(scheduled, policy), scheduled, problem)


def approval_firing(event: CloudEvent, hold: Hold, firings: Sequence[Firing]) -> Firing:
    """The approval item of a held event: a person decides publish, publish_corrected or withhold."""
    flags = sorted({f.rule_id for f in firings if f.kind is not Kind.AUDIT_SAMPLE})
    by = f" by {hold.deadline.isoformat()}" if hold.deadline is not None else ""
    flagged = f"; flagged: {', '.join(flags)}" if flags else ""
    observed: dict[str, Any] = {
        "review_policy": hold.mode,
        SCHEDULED_FIELD: hold.scheduled_at.isoformat() if hold.scheduled_at is not None else None,
        "flags": flags,
    }
    if hold.problem is not None:
        observed["scheduled_at_problem"] = hold.problem
    return Firing(
        APPROVAL_RULE,
        Kind.APPROVAL,
        event.subject,
        f"Approve {event.type} {event.subject} ({event.data.client_id}) for release{by} ({hold.mode}){flagged}",
        observed,
        deadline=hold.deadline,
    )


def is_held_policy(policy: Policy | None) -> TypeGuard[HeldPolicy]:
    return isinstance(policy, (ApproveAll, RiskThreshold, Uncertain))
