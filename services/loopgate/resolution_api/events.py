"""Domain events: what happened to an exception, in the past tense, one class per transition.

A command (exceptions/creation.py, transitions.py, bulk_work.py, sweeps/deadlines.py) changes the
exception's row and publishes its event on the message bus (messagebus.py) inside the same
transaction; handlers.py decides what follows from each (history, outbox, notifications, metrics,
waking the relays). Every event carries what its history row records; the few that need more
(the outcome of a resolution, the SLA of a breach, an opened exception's routing) carry it too."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from loopgate.resolution_api.exceptions.lifecycle import Action
from loopgate_schemas.outcomes import Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The root of every domain event: something about one exception."""

    exception_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionEvent(Event):
    """Something happened to an exception that its history records (`history_action` names the
    row); `version` is the exception's version after it."""

    history_action: ClassVar[str]
    at: dt.datetime
    actor: str
    from_status: str | None
    to_status: str
    version: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionOpened(ExceptionEvent):
    """A record opened a new exception in `queue`; `routing_fallback`: why a matching route passed
    it on (routing.py's Fallback value), None when none did."""

    history_action: ClassVar[str] = "created"
    queue: str
    routing_fallback: str | None
    routing_note: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Grouped(ExceptionEvent):
    """A record was an occurrence of the unresolved exception with its fingerprint."""

    history_action: ClassVar[str] = "grouped"


@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateReceived(Event):
    """A record received before came again: nothing changes (counted only)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionChanged(ExceptionEvent):
    """A transition (lifecycle.py's Action) took an exception from one status to another."""

    action: ClassVar[Action]


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed(ExceptionChanged):
    action: ClassVar[Action] = Action.CLAIM
    history_action: ClassVar[str] = Action.CLAIM.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Unclaimed(ExceptionChanged):
    action: ClassVar[Action] = Action.UNCLAIM
    history_action: ClassVar[str] = Action.UNCLAIM.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalated(ExceptionChanged):
    action: ClassVar[Action] = Action.ESCALATE
    history_action: ClassVar[str] = Action.ESCALATE.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Snoozed(ExceptionChanged):
    action: ClassVar[Action] = Action.SNOOZE
    history_action: ClassVar[str] = Action.SNOOZE.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Reopened(ExceptionChanged):
    action: ClassVar[Action] = Action.REOPEN
    history_action: ClassVar[str] = Action.REOPEN.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Woken(ExceptionChanged):
    """The sweeper ended a snooze whose time had come."""

    action: ClassVar[Action] = Action.WAKE
    history_action: ClassVar[str] = Action.WAKE.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved(ExceptionChanged):
    """A final resolution: `outcome` is the CloudEvent published on exception-outcomes."""

    action: ClassVar[Action] = Action.RESOLVE
    history_action: ClassVar[str] = Action.RESOLVE.value
    outcome: Outcome
    resolution_count: int
    rule_id: str
    severity: str
    decision: str
    time_to_resolve_seconds: float
    exception_traceparent: str | None  # the span that created the exception (the resolution's parent)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlaBreached(ExceptionChanged):
    """The sweeper escalated an exception past its `sla` ("ack" or "resolve")."""

    action: ClassVar[Action] = Action.SLA_BREACH
    history_action: ClassVar[str] = Action.SLA_BREACH.value
    sla: str
    severity: str
    resolution_count: int


EVENT_OF: dict[Action, type[ExceptionChanged]] = {
    cls.action: cls for cls in (Claimed, Unclaimed, Escalated, Snoozed, Reopened, Woken, Resolved, SlaBreached)
}
