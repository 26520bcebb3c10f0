"""The message bus (messagebus.py, handlers.py): every change publishes exactly its domain event,
whichever entry point made it (API, console, bulk work, sweeper), and what happens when a handler
raises depends on when it runs: in the transaction it undoes the change, after the commit it cannot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api import events, handlers
from loopgate.resolution_api.exceptions import reading, store, transitions
from loopgate.resolution_api.sweeps.deadlines import escalate_sla_breaches, wake_due_snoozes
from loopgate_schemas.outcomes import Decision, outcome_id_for
from tests.fixtures.api import Api, record
from tests.integration.test_console import sign_in


class Recorder:
    """A subscriber keeping every event it is handed, in the transaction or after the commit."""

    def __init__(self) -> None:
        self.seen: list[events.Event] = []

    async def __call__(self, session: AsyncSession, published: Sequence[events.Event]) -> None:
        self.seen.extend(published)

    def after_commit(self, published: Sequence[events.Event]) -> None:
        self.seen.extend(published)


@pytest.fixture
def recorder(api: Api) -> Recorder:
    """Every transition's event (ExceptionChanged) the app's bus publishes from now on."""
    seen = Recorder()
    api.services.bus.subscribe(events.ExceptionChanged, seen)
    return seen


async def _history_actions(api: Api, exception_id: str) -> list[str]:
    async with api.services.db.read() as session:
        return [e.action for e in await store.history(session=session, exception_id=exception_id)]


async def _outbox_ids(api: Api) -> list[str]:
    async with api.services.db.read() as session:
        return [row.outcome_id for row in await store.pending_outbox(session=session, limit=100)]


# --- every transition publishes exactly its event ---------------------------------------------

Step = tuple[str, dict[str, Any] | None, str]  # action, body, role
TRANSITIONS: dict[str, tuple[list[Step], type[events.Event], str, str]] = {
    # the route's action -> (steps before it, its event, from status, to status)
    "claim": ([], events.Claimed, "open", "claimed"),
    "unclaim": ([("claim", None, "operator")], events.Unclaimed, "claimed", "open"),
    "escalate": ([], events.Escalated, "open", "escalated"),
    "snooze": ([], events.Snoozed, "open", "snoozed"),
    "resolve": ([], events.Resolved, "open", "resolved"),
    "reopen": ([("resolve", {"decision": "confirmed"}, "operator")], events.Reopened, "resolved", "open"),
}
BODIES: dict[str, tuple[dict[str, Any] | None, str]] = {
    "claim": (None, "operator"),
    "unclaim": (None, "operator"),
    "escalate": ({"reason": "needs finance"}, "operator"),
    "snooze": ({"until": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()}, "operator"),
    "resolve": ({"decision": "false_positive", "reason": "cap raised"}, "operator"),
    "reopen": ({"reason": "wrong call"}, "admin"),
}


@pytest.mark.parametrize("action", list(TRANSITIONS))
async def test_every_transition_publishes_exactly_its_event(api: Api, recorder: Recorder, action: str) -> None:
    exc = await api.create()
    before, event_class, from_status, to_status = TRANSITIONS[action]
    for step, body, role in before:
        assert (await api.act(exc["id"], step, body, role=role)).status_code == 200
    recorder.seen.clear()
    body, role = BODIES[action]

    response = await api.act(exc["id"], action, body, role=role)

    assert response.status_code == 200, response.text
    assert [type(e) for e in recorder.seen] == [event_class]
    (event,) = recorder.seen
    assert (event.exception_id, event.from_status, event.to_status, event.version) == (
        exc["id"],
        from_status,
        to_status,
        response.json()["version"],
    )
    assert event.actor == f"{role}-tester"
    assert event.action.value == action


async def test_a_resolution_event_carries_its_outcome(api: Api, recorder: Recorder) -> None:
    exc = await api.create()

    await api.act(exc["id"], "resolve", {"decision": "false_positive", "reason": "cap raised"})

    (event,) = recorder.seen
    assert isinstance(event, events.Resolved)
    assert event.outcome.id == outcome_id_for(exc["id"], 1)
    assert (event.decision, event.resolution_count, event.rule_id) == ("false_positive", 1, exc["rule_id"])
    assert await _outbox_ids(api) == [event.outcome.id]


async def test_a_change_that_changes_nothing_or_is_refused_publishes_nothing(api: Api, recorder: Recorder) -> None:
    exc = await api.create()
    await api.act(exc["id"], "claim")
    recorder.seen.clear()

    again = await api.act(exc["id"], "claim")  # what one already holds: a no-op
    refused = await api.act(exc["id"], "reopen", {"reason": "not resolved"}, role="admin")  # 409

    assert (again.status_code, refused.status_code) == (200, 409)
    assert recorder.seen == []


async def test_the_sweeper_publishes_woken_and_sla_breached(api: Api, recorder: Recorder) -> None:
    snoozed, late = await api.create(), await api.create()
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    assert (await api.act(snoozed["id"], "snooze", {"until": until.isoformat()})).status_code == 200
    recorder.seen.clear()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)

    woken = await wake_due_snoozes(db=api.services.db, clock=lambda: later, bus=api.services.bus)
    escalated = await escalate_sla_breaches(
        db=api.services.db, slas=api.services.settings.slas, clock=lambda: later, bus=api.services.bus
    )

    assert (woken, escalated) == (1, 2)
    assert [(type(e), e.exception_id) for e in recorder.seen] == [
        (events.Woken, snoozed["id"]),
        *sorted([(events.SlaBreached, snoozed["id"]), (events.SlaBreached, late["id"])], key=lambda p: p[1]),
    ]
    breach = recorder.seen[1]
    assert isinstance(breach, events.SlaBreached) and breach.sla == "resolve"  # both SLAs passed: the later one
    assert await _history_actions(api, late["id"]) == ["created", "sla_breach"]


async def test_bulk_work_publishes_one_event_per_exception_changed(api: Api, recorder: Recorder) -> None:
    ids = [(await api.create(client_id="acme"))["id"] for _ in range(3)]

    response = await api.http.post(
        "/v1/exceptions/bulk",
        json={"action": "resolve", "filter": {"client_id": "acme"}, "decision": "dismissed", "reason": "campaign"},
        headers=api.auth("operator"),
    )

    assert response.status_code == 200, response.text
    assert sorted((type(e), e.exception_id) for e in recorder.seen) == sorted((events.Resolved, i) for i in ids)
    assert sorted(await _outbox_ids(api)) == sorted(outcome_id_for(i, 1) for i in ids)


async def test_records_publish_opened_grouped_and_duplicate(api: Api) -> None:
    seen = Recorder()
    api.services.bus.subscribe(events.Event, seen)

    first, again = record(fingerprint="fp-1"), record(fingerprint="fp-1")  # the same fingerprint: grouped
    answers = [
        (await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))).json()["result"]
        for sent in (first, again, again)  # and the same record again
    ]

    assert answers == ["created", "grouped", "duplicate"]
    assert [(type(e), e.exception_id) for e in seen.seen] == [
        (events.ExceptionOpened, first["exception_id"]),
        (events.Grouped, first["exception_id"]),
        (events.DuplicateReceived, first["exception_id"]),
    ]
    opened = seen.seen[0]
    assert isinstance(opened, events.ExceptionOpened) and (opened.queue, opened.routing_fallback) == ("default", None)
    assert await _history_actions(api, first["exception_id"]) == ["created", "grouped"]


# --- a handler's error ------------------------------------------------------------------------


class HandlerBroke(Exception):
    pass


async def test_a_handler_that_raises_in_the_transaction_undoes_the_whole_change(api: Api) -> None:
    """The status, the history row, the outbox row and the notification event written before it
    are all rolled back, the error reaches the caller and no after-commit handler runs."""
    exc = await api.create()
    bus = handlers.bootstrap()
    after = Recorder()

    async def broken(session: AsyncSession, published: Sequence[events.Resolved]) -> None:
        raise HandlerBroke("the handler's own bug")

    bus.subscribe(events.Resolved, broken)  # after the outbox and notification handlers
    bus.subscribe_after_commit(events.Event, after.after_commit)

    with pytest.raises(HandlerBroke):
        await transitions.resolve(
            db=api.services.db,
            exception_id=exc["id"],
            actor="dana",
            resolution=transitions.ResolutionInput(Decision.CONFIRMED, "", {}),
            if_match=None,
            bus=bus,
        )

    row = await reading.get(db=api.services.db, exception_id=exc["id"])
    assert (row.status, row.version, row.resolution_count) == ("open", 1, 0)
    assert await _history_actions(api, exc["id"]) == ["created"]
    assert await _outbox_ids(api) == []
    assert after.seen == []


async def test_a_handler_that_raises_after_the_commit_is_counted_and_the_change_stands(api: Api) -> None:
    exc = await api.create()
    bus = handlers.bootstrap()
    later = Recorder()

    def broken(published: Sequence[events.Claimed]) -> None:
        raise HandlerBroke("the handler's own bug")

    name = broken.__qualname__
    errors_before = REGISTRY.get_sample_value("loopgate_event_handler_errors_total", {"handler": name}) or 0.0
    bus.subscribe_after_commit(events.Claimed, broken)
    bus.subscribe_after_commit(events.Claimed, later.after_commit)

    row = await transitions.claim(
        db=api.services.db, exception_id=exc["id"], actor="dana", assignee="dana", if_match=None, bus=bus
    )

    assert (row.status, row.assignee) == ("claimed", "dana")
    assert await _history_actions(api, exc["id"]) == ["created", "claim"]
    assert [type(e) for e in later.seen] == [events.Claimed]  # the handlers after it still ran
    errors = REGISTRY.get_sample_value("loopgate_event_handler_errors_total", {"handler": name})
    assert errors == errors_before + 1


# --- one bus for every entry point ------------------------------------------------------------


async def test_a_new_subscriber_sees_the_events_of_the_api_and_of_the_console(console: Api) -> None:
    seen = Recorder()
    console.services.bus.subscribe_after_commit(events.Event, seen.after_commit)
    by_api, by_console = await console.create(), await console.create()
    csrf = await sign_in(console)
    assert [type(e) for e in seen.seen] == [events.ExceptionOpened, events.ExceptionOpened]  # the intake's
    seen.seen.clear()

    await console.act(by_api["id"], "claim")
    page = await console.http.post(
        f"/console/exceptions/{by_console['id']}/resolve", data={"csrf": csrf, "version": "1", "decision": "confirmed"}
    )

    assert page.status_code == 303, page.text
    assert [(type(e), e.exception_id, e.actor) for e in seen.seen] == [
        (events.Claimed, by_api["id"], "operator-tester"),
        (events.Resolved, by_console["id"], "operator-tester"),
    ]


async def test_a_resolution_wakes_the_outbox_relay_from_every_entry_point(
    console: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus wakes the relay after the commit (create_app passes handlers.bootstrap its outbox
    relay); no route does it itself."""
    woken: list[int] = []
    monkeypatch.setattr(console.services.relay, "wake", lambda: woken.append(1))
    by_api, by_console = await console.create(), await console.create()
    csrf = await sign_in(console)

    await console.act(by_api["id"], "resolve", {"decision": "confirmed"})
    await console.http.post(
        f"/console/exceptions/{by_console['id']}/resolve", data={"csrf": csrf, "version": "1", "decision": "confirmed"}
    )

    assert len(woken) == 2
