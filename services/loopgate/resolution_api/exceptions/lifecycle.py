"""The rules of an exception's life, as pure functions: which action is allowed from which
status, what a resolution must carry, and when an SLA is breached.

    open ──claim──> claimed ──resolve──> resolved ──reopen (admin)──> open
    claimed ──unclaim (its assignee or an admin)──> open
    open/claimed ──escalate──> escalated ──claim──> claimed
    open/claimed ──snooze──> snoozed ──(until passes)──> open
    open/claimed/snoozed ──(SLA breached)──> escalated

A snooze counts as an acknowledgement, never as a resolution: the resolve SLA still runs while an
exception sleeps, so a snooze cannot hide a breach (the exception is woken and escalated).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from loopgate.common.settings import Sla
from loopgate.resolution_api.domain_errors import Conflict
from loopgate_schemas.outcomes import Decision


class Status(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    ESCALATED = "escalated"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Action(StrEnum):
    CLAIM = "claim"
    UNCLAIM = "unclaim"
    RESOLVE = "resolve"
    ESCALATE = "escalate"
    SNOOZE = "snooze"
    WAKE = "wake"  # the system ends a snooze whose time has come
    REOPEN = "reopen"
    SLA_BREACH = "sla_breach"  # the system escalates an exception past its SLA


S = Status
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    Action.CLAIM: (frozenset({S.OPEN, S.CLAIMED, S.ESCALATED, S.SNOOZED}), S.CLAIMED),
    Action.UNCLAIM: (frozenset({S.CLAIMED}), S.OPEN),
    Action.RESOLVE: (frozenset({S.OPEN, S.CLAIMED, S.ESCALATED, S.SNOOZED}), S.RESOLVED),
    Action.ESCALATE: (frozenset({S.OPEN, S.CLAIMED}), S.ESCALATED),
    Action.SNOOZE: (frozenset({S.OPEN, S.CLAIMED, S.SNOOZED}), S.SNOOZED),
    Action.WAKE: (frozenset({S.SNOOZED}), S.OPEN),
    Action.REOPEN: (frozenset({S.RESOLVED}), S.OPEN),
    Action.SLA_BREACH: (frozenset({S.OPEN, S.CLAIMED, S.SNOOZED}), S.ESCALATED),
}
UNRESOLVED = frozenset(s for s in Status if s is not S.RESOLVED)
SLA_CHECKED = frozenset({S.OPEN, S.CLAIMED, S.SNOOZED})


class TransitionNotAllowed(Conflict):
    """The action is not allowed from the exception's current status."""

    def __init__(self, action: Action, status: Status) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[action][0]))
        super().__init__(f"cannot {action.value}: exception is {status.value} (allowed from: {allowed})")
        self.action = action
        self.status = status


def next_status(action: Action, current: Status) -> Status:
    """The status `action` leads to from `current`; TransitionNotAllowed when it is not allowed."""
    allowed_from, target = TRANSITIONS[action]
    if current not in allowed_from:
        raise TransitionNotAllowed(action, current)
    return target


def resolution_problem(decision: Decision, reason: str, correction: dict[str, Any]) -> str | None:
    """Why a resolution is incomplete, or None when it may be recorded."""
    if decision in (Decision.CORRECTED, Decision.PUBLISH_CORRECTED) and not correction:
        return f"decision '{decision.value}' needs a non-empty correction: {{field: {{before, after}}}}"
    if decision in (Decision.FALSE_POSITIVE, Decision.DISMISSED) and not reason.strip():
        return f"decision '{decision.value}' needs a reason"
    return None


def time_to_resolve_seconds(first_seen: dt.datetime, resolved_at: dt.datetime) -> float:
    """Seconds from the first detection to the resolution; never negative (clock skew)."""
    return max(0.0, (resolved_at - first_seen).total_seconds())


def sla_breach(
    *, status: Status, first_seen: dt.datetime, already: str | None, policy: Sla, now: dt.datetime
) -> str | None:
    """The SLA ("ack" or "resolve") an exception breaches now and has not breached before, or None.
    Escalated and resolved exceptions are not checked; a snoozed one only against its resolve SLA
    (snoozing acknowledges it)."""
    if status not in SLA_CHECKED:
        return None
    age = (now - first_seen).total_seconds()
    if age > policy.resolve_seconds and already != "resolve":
        return "resolve"
    if status is S.OPEN and age > policy.ack_seconds and already is None:
        return "ack"
    return None
