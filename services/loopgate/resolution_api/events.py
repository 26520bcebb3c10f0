"""Domain events: what happened to an exception, in the past tense, one class per transition.

A command (exceptions/transitions.py, exceptions/bulk_work.py, sweeps/deadlines.py) changes the
exception's row and publishes its event on the message bus (messagebus.py) inside the same
transaction; handlers.py decides what follows from each (history, outbox, notifications, metrics,
waking the relays). Every event carries what its history row records; the few that need more
(the outcome of a resolution, the SLA of a breach) carry it too."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from loopgate.resolution_api.exceptions.lifecycle import Action
from loopgate_schemas.outcomes import Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionChanged:
    """An exception went from one status to another: `version` is its version after the change."""

    action: ClassVar[Action]
    exception_id: str
    at: dt.datetime
    actor: str
    from_status: str
    to_status: str
    version: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Claimed(ExceptionChanged):
    action: ClassVar[Action] = Action.CLAIM


@dataclass(frozen=True, slots=True, kw_only=True)
class Unclaimed(ExceptionChanged):
    action: ClassVar[Action] = Action.UNCLAIM


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalated(ExceptionChanged):
    action: ClassVar[Action] = Action.ESCALATE


@dataclass(frozen=True, slots=True, kw_only=True)
class Snoozed(ExceptionChanged):
    action: ClassVar[Action] = Action.SNOOZE


@dataclass(frozen=True, slots=True, kw_only=True)
class Reopened(ExceptionChanged):
    action: ClassVar[Action] = Action.REOPEN


@dataclass(frozen=True, slots=True, kw_only=True)
class Woken(ExceptionChanged):
    """The sweeper ended a snooze whose time had come."""

    action: ClassVar[Action] = Action.WAKE


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolved(ExceptionChanged):
    """A final resolution: `outcome` is the CloudEvent published on exception-outcomes."""

    action: ClassVar[Action] = Action.RESOLVE
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
    sla: str
    severity: str
    resolution_count: int


Event = ExceptionChanged

EVENT_OF: dict[Action, type[ExceptionChanged]] = {
    cls.action: cls for cls in (Claimed, Unclaimed, Escalated, Snoozed, Reopened, Woken, Resolved, SlaBreached)
}
