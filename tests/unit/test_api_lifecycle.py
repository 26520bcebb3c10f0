"""The lifecycle rules of an exception (resolution_api/exceptions/lifecycle.py), without a database."""

from __future__ import annotations

import datetime as dt

import pytest

from loopgate.common.settings import DEFAULT_SLAS
from loopgate.resolution_api.exceptions.lifecycle import (
    Action,
    Status,
    TransitionNotAllowed,
    next_status,
    resolution_problem,
    sla_breach,
    time_to_resolve_seconds,
)
from loopgate_schemas.exceptions import Severity
from loopgate_schemas.outcomes import Decision, FieldChange

UNRESOLVED = [Status.OPEN, Status.CLAIMED, Status.ESCALATED, Status.SNOOZED]
T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


def test_claim_from_open_leads_to_claimed() -> None:
    assert next_status(Action.CLAIM, Status.OPEN) is Status.CLAIMED


@pytest.mark.parametrize("status", UNRESOLVED)
def test_every_unresolved_status_may_be_resolved(status: Status) -> None:
    assert next_status(Action.RESOLVE, status) is Status.RESOLVED


@pytest.mark.parametrize("action", [a for a in Action if a is not Action.REOPEN])
def test_resolved_is_final_for_everything_but_reopen(action: Action) -> None:
    with pytest.raises(TransitionNotAllowed) as err:
        next_status(action, Status.RESOLVED)
    assert str(err.value).startswith(f"cannot {action.value}: exception is resolved (allowed from: ")


def test_the_message_names_the_transition_and_where_it_is_allowed_from() -> None:
    with pytest.raises(TransitionNotAllowed) as err:
        next_status(Action.ESCALATE, Status.SNOOZED)
    assert str(err.value) == "cannot escalate: exception is snoozed (allowed from: claimed, open)"


def test_reopen_leads_from_resolved_back_to_open() -> None:
    assert next_status(Action.REOPEN, Status.RESOLVED) is Status.OPEN


@pytest.mark.parametrize("status", [Status.OPEN, Status.CLAIMED])
def test_open_and_claimed_may_be_escalated(status: Status) -> None:
    assert next_status(Action.ESCALATE, status) is Status.ESCALATED


def test_an_escalated_exception_can_be_claimed() -> None:
    assert next_status(Action.CLAIM, Status.ESCALATED) is Status.CLAIMED


def test_a_snooze_that_ran_out_leads_back_to_open() -> None:
    assert next_status(Action.WAKE, Status.SNOOZED) is Status.OPEN


@pytest.mark.parametrize("status", [Status.OPEN, Status.CLAIMED, Status.ESCALATED, Status.RESOLVED])
def test_only_snoozed_exceptions_wake(status: Status) -> None:
    with pytest.raises(TransitionNotAllowed):
        next_status(Action.WAKE, status)


def test_corrected_needs_a_non_empty_correction() -> None:
    assert resolution_problem(Decision.CORRECTED, "fixed", {}) == (
        "decision 'corrected' needs a non-empty correction: {field: {before, after}}"
    )
    assert resolution_problem(Decision.CORRECTED, "", {"bid_cpm": FieldChange(before=7.2, after=6.0)}) is None


@pytest.mark.parametrize("decision", [Decision.FALSE_POSITIVE, Decision.DISMISSED])
@pytest.mark.parametrize("reason", ["", "   "])
def test_false_positive_and_dismissed_need_a_reason(decision: Decision, reason: str) -> None:
    assert resolution_problem(decision, reason, {}) == f"decision '{decision.value}' needs a reason"


@pytest.mark.parametrize("decision", [Decision.CONFIRMED, Decision.ESCALATED])
def test_confirmed_and_escalated_need_nothing_more(decision: Decision) -> None:
    assert resolution_problem(decision, "", {}) is None


def test_time_to_resolve_counts_from_the_first_detection() -> None:
    assert time_to_resolve_seconds(T0, T0 + dt.timedelta(minutes=5)) == 300.0


def test_time_to_resolve_is_never_negative_under_clock_skew() -> None:
    assert time_to_resolve_seconds(T0, T0 - dt.timedelta(seconds=3)) == 0.0


CRITICAL = DEFAULT_SLAS[Severity.CRITICAL]  # 15 min to claim, 2 h to resolve


def _breach(status: Status, minutes: float, already: str | None = None) -> str | None:
    now = T0 + dt.timedelta(minutes=minutes)
    return sla_breach(status=status, first_seen=T0, already=already, policy=CRITICAL, now=now)


def test_an_unclaimed_critical_exception_breaches_its_ack_sla_after_15_minutes() -> None:
    assert _breach(Status.OPEN, 14.9) is None
    assert _breach(Status.OPEN, 15.1) == "ack"


def test_a_claimed_exception_has_met_its_ack_sla() -> None:
    assert _breach(Status.CLAIMED, 60) is None


def test_an_unresolved_critical_exception_breaches_its_resolve_sla_after_2_hours() -> None:
    assert _breach(Status.CLAIMED, 121) == "resolve"
    assert _breach(Status.OPEN, 121) == "resolve"


def test_each_sla_is_breached_once() -> None:
    assert _breach(Status.OPEN, 30, already="ack") is None
    assert _breach(Status.CLAIMED, 121, already="ack") == "resolve"
    assert _breach(Status.CLAIMED, 500, already="resolve") is None


@pytest.mark.parametrize("status", [Status.ESCALATED, Status.RESOLVED])
def test_escalated_and_resolved_exceptions_are_not_checked(status: Status) -> None:
    assert _breach(status, 1000) is None


def test_a_snooze_acknowledges_but_cannot_hide_a_resolve_sla_breach() -> None:
    assert _breach(Status.SNOOZED, 60) is None
    assert _breach(Status.SNOOZED, 121) == "resolve"
    assert next_status(Action.SLA_BREACH, Status.SNOOZED) is Status.ESCALATED


def test_default_slas_per_severity() -> None:
    hours = {s: (p.ack_seconds / 3600, p.resolve_seconds / 3600) for s, p in DEFAULT_SLAS.items()}
    assert hours == {
        Severity.CRITICAL: (0.25, 2),
        Severity.HIGH: (1, 8),
        Severity.MEDIUM: (4, 24),
        Severity.LOW: (24, 168),
        Severity.INFO: (24, 168),
    }
