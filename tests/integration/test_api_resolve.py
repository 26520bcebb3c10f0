"""Resolving: decisions per contract, resolved is final, and the outcome is committed to the
outbox in the same transaction (Kafka is unreachable here: it stays pending)."""

from __future__ import annotations

import datetime as dt

import orjson

from loopgate.resolution_api.exceptions import store
from loopgate_schemas.outcomes import Outcome, outcome_id_for
from tests.fixtures.api import Api


async def test_resolving_records_the_decision_resolver_and_time_to_resolve(api: Api) -> None:
    detected = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    exc = await api.create(detected_at=detected.isoformat())

    response = await api.act(
        exc["id"],
        "resolve",
        {
            "decision": "corrected",
            "reason": "cap applied",
            "correction": {"bid_cpm": {"before": 7.2, "after": 6.0}},
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "resolved"
    assert body["version"] == 2
    assert response.headers["ETag"] == '"2"'
    resolution = body["resolution"]
    assert resolution["decision"] == "corrected"
    assert resolution["reason"] == "cap applied"
    assert resolution["correction"] == {"bid_cpm": {"before": 7.2, "after": 6.0}}
    assert resolution["resolver"] == "operator-tester"
    assert 600 <= resolution["time_to_resolve_seconds"] < 660


async def test_resolving_commits_exactly_one_outcome_to_the_outbox(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "resolve", {"decision": "false_positive", "reason": "planned promo"})

    async with api.services.db.read() as session:
        (row,) = await store.outbox_for(session=session, exception_id=exc["id"])
    outcome = Outcome.model_validate(orjson.loads(row.payload))
    assert row.outcome_id == outcome.id == outcome_id_for(exc["id"], 1)
    assert row.sent_at is None  # Kafka is unreachable in this test
    assert outcome.type == "loopgate.exception.resolved"
    assert outcome.subject == exc["id"]
    assert outcome.data.exception_id == exc["id"]
    assert outcome.data.rule_id == "bid_over_cap"
    assert outcome.data.source == "bid-management.events"
    assert outcome.data.decision == "false_positive"
    assert outcome.data.reason == "planned promo"
    assert outcome.data.resolver == "operator-tester"
    assert outcome.data.correction == {}


async def test_resolving_a_resolved_exception_is_409_and_writes_no_second_outcome(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "resolve", {"decision": "confirmed"})

    again = await api.act(exc["id"], "resolve", {"decision": "dismissed", "reason": "duplicate"})

    assert again.status_code == 409
    assert again.json()["detail"].startswith("cannot resolve: exception is resolved")
    async with api.services.db.read() as session:
        assert len(await store.outbox_for(session=session, exception_id=exc["id"])) == 1


async def test_corrected_without_a_correction_is_422_naming_the_problem(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "resolve", {"decision": "corrected", "reason": "fixed"})

    assert response.status_code == 422
    assert response.json()["message"] == (
        "body: decision 'corrected' needs a non-empty correction: {field: {before, after}}"
    )


async def test_false_positive_without_a_reason_is_422(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "resolve", {"decision": "false_positive"})

    assert response.status_code == 422
    assert response.json()["message"] == "body: decision 'false_positive' needs a reason"


async def test_dismissed_with_a_blank_reason_is_422(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "resolve", {"decision": "dismissed", "reason": "  "})

    assert response.status_code == 422
    assert response.json()["message"] == "body: decision 'dismissed' needs a reason"


async def test_an_unknown_decision_is_422_naming_the_field(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "resolve", {"decision": "maybe"})

    assert response.status_code == 422
    assert response.json()["message"].startswith("body.decision: Input should be 'confirmed', ")


async def test_resolving_an_unknown_exception_is_404(api: Api) -> None:
    response = await api.act("no-such-exception", "resolve", {"decision": "confirmed"})

    assert response.status_code == 404
    assert response.json() == {"detail": "no exception with id 'no-such-exception'"}


async def test_the_resolution_is_in_the_history(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "resolve", {"decision": "dismissed", "reason": "test traffic"})

    history = (await api.http.get(f"/v1/exceptions/{exc['id']}/history", headers=api.auth("operator"))).json()

    last = history["items"][-1]
    assert (last["action"], last["actor"], last["from_status"], last["to_status"]) == (
        "resolve",
        "operator-tester",
        "open",
        "resolved",
    )
    assert last["fields"] == {"decision": "dismissed", "reason": "test traffic", "correction": {}}
