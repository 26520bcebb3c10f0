"""Approval items (issue 26 item 0): an approval item takes a release decision (publish,
publish_corrected with its correction, withhold) and nothing else, its outcome carries the decision,
who decided, how long it waited and its deadline; the approval queue orders items by deadline; the
sweeper escalates, once, the ones about to miss it (injected clock). Both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import orjson
import pytest

from loopgate.common.kafka import read_topic
from loopgate.common.settings import Settings
from loopgate.resolution_api.approvals.deadlines import DEADLINE_ACTOR, escalate_near_deadlines
from loopgate.resolution_api.exceptions import store
from loopgate_schemas.outcomes import Outcome
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

START = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def approval(deadline: dt.datetime | None, client: str = "northwind", **overrides: Any) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:12]
    return {
        "exception_id": f"apr-{uid}",
        "fingerprint": f"approval_gate:post-{uid}:evt-{uid}",
        "kind": "approval",
        "rule_id": "approval_gate",
        "severity": "medium",
        "source": "content-pipeline.events",
        "event_type": "content.generated",
        "subject": f"post-{uid}",
        "client_id": client,
        "summary": f"Approve content.generated post-{uid} ({client}) for release (approve_all)",
        "observed": {"review_policy": "approve_all", "scheduled_at": None, "flags": []},
        "threshold": None,
        "event": {"id": f"evt-{uid}", "type": "content.generated", "data": {"caption": "Spring is here"}},
        "deadline": deadline.isoformat() if deadline is not None else None,
        **overrides,
    }


@pytest.fixture
async def clocked(api_factory: ApiFactory, api_settings: Settings) -> Any:
    clock = FakeClock(START)
    async with api_factory(api_settings, clock) as api:
        yield api, clock


async def outbox_outcome(api: Api, exception_id: str) -> Outcome:
    async with api.services.db.read() as session:
        (row,) = await store.outbox_for(session=session, exception_id=exception_id)
    return Outcome.model_validate(orjson.loads(row.payload))


async def test_publish_releases_the_item_and_its_outcome_says_who_how_long_and_the_deadline(clocked: Any) -> None:
    api, clock = clocked
    deadline = START + dt.timedelta(hours=2)
    item = await api.create(**approval(deadline))
    assert item["kind"] == "approval"
    assert item["release_deadline"] == deadline.isoformat().replace("+00:00", "Z")
    clock.advance(300)

    response = await api.act(item["id"], "resolve", {"decision": "publish", "reason": ""})

    assert response.status_code == 200, response.text
    assert response.json()["resolution"]["decision"] == "publish"
    outcome = await outbox_outcome(api, item["id"])
    assert outcome.data.decision == "publish"
    assert outcome.data.kind == "approval"
    assert outcome.data.resolver == "operator-tester"
    assert outcome.data.time_to_resolve_seconds == 300.0
    assert outcome.data.deadline == deadline
    assert outcome.data.subject == item["subject"]
    assert outcome.data.correction == {}


async def test_publish_corrected_carries_the_correction_field_by_field(api: Api) -> None:
    item = await api.create(**approval(None))
    correction = {"data.caption": {"before": "Spring is here", "after": "Spring is here!"}}

    response = await api.act(
        item["id"], "resolve", {"decision": "publish_corrected", "reason": "tone", "correction": correction}
    )

    assert response.status_code == 200, response.text
    outcome = await outbox_outcome(api, item["id"])
    assert outcome.data.decision == "publish_corrected"
    assert outcome.data.model_dump(mode="json")["correction"] == correction
    assert outcome.data.deadline is None


async def test_withhold_is_a_release_decision(api: Api) -> None:
    item = await api.create(**approval(None))
    response = await api.act(item["id"], "resolve", {"decision": "withhold", "reason": "off-brand"})
    assert response.status_code == 200, response.text
    assert (await outbox_outcome(api, item["id"])).data.decision == "withhold"


async def test_publish_corrected_without_a_correction_is_refused_and_nothing_is_written(api: Api) -> None:
    item = await api.create(**approval(None))
    response = await api.act(item["id"], "resolve", {"decision": "publish_corrected", "reason": "x"})
    assert response.status_code == 422
    assert "publish_corrected' needs a non-empty correction" in response.text
    read = await api.http.get(f"/v1/exceptions/{item['id']}", headers=api.auth("operator"))
    assert read.json()["status"] == "open"


@pytest.mark.parametrize("decision", ["confirmed", "false_positive", "dismissed", "escalated"])
async def test_an_approval_item_refuses_a_verdict(api: Api, decision: str) -> None:
    item = await api.create(**approval(None))
    response = await api.act(item["id"], "resolve", {"decision": decision, "reason": "because"})
    assert response.status_code == 400
    assert "an approval item takes a release decision" in response.json()["detail"]
    read = await api.http.get(f"/v1/exceptions/{item['id']}", headers=api.auth("operator"))
    assert read.json()["status"] == "open"


@pytest.mark.parametrize("decision", ["publish", "withhold"])
async def test_a_release_decision_on_any_other_kind_is_refused(api: Api, decision: str) -> None:
    exc = await api.create()  # a bid_over_cap threshold breach
    response = await api.act(exc["id"], "resolve", {"decision": decision, "reason": "because"})
    assert response.status_code == 400
    assert f"decision {decision!r} is a release decision" in response.json()["detail"]


@pytest.mark.parametrize(
    "deadline",
    ["2026-12-07T10:00:00", "tomorrow", "2026-13-07T10:00:00Z", {"at": "now"}, [1]],
    ids=["no-offset", "text", "month-13", "object", "list"],
)
async def test_a_record_with_a_bad_deadline_is_refused_naming_the_field(api: Api, deadline: Any) -> None:
    sent = {**approval(None), "deadline": deadline}
    response = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))
    assert response.status_code == 422
    assert "deadline" in response.text


async def test_the_approval_queue_orders_items_by_deadline_then_those_without_one(clocked: Any) -> None:
    api, clock = clocked
    late = await api.create(**approval(START + dt.timedelta(hours=5)))
    none_old = await api.create(**approval(None))
    clock.advance(1)
    soon = await api.create(**approval(START + dt.timedelta(minutes=40)))
    none_new = await api.create(**approval(None))
    middle = await api.create(**approval(START + dt.timedelta(hours=2), client="contoso"))
    await api.create()  # not an approval item: never in the approval queue
    decided = await api.create(**approval(START + dt.timedelta(minutes=1)))
    await api.act(decided["id"], "resolve", {"decision": "publish", "reason": ""})

    order, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await api.http.get("/v1/approvals", params=params, headers=api.auth("operator"))
        assert page.status_code == 200, page.text
        order += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert order == [soon["id"], middle["id"], late["id"], none_old["id"], none_new["id"]]
    only = await api.http.get("/v1/approvals", params={"client_id": "contoso"}, headers=api.auth("operator"))
    assert [item["id"] for item in only.json()["items"]] == [middle["id"]]
    reviewer = await api.http.get("/v1/approvals", headers=api.auth("reviewer"))  # scoped to northwind
    assert middle["id"] not in [item["id"] for item in reviewer.json()["items"]]


@pytest.mark.parametrize(
    "cursor", ["garbage", "W10", "WyJhcHByb3ZhbHMiLG51bGwsIngiLCJ5Il0"], ids=["text", "list", "bad-time"]
)
async def test_a_bad_cursor_is_a_400(api: Api, cursor: str) -> None:
    response = await api.http.get("/v1/approvals", params={"cursor": cursor}, headers=api.auth("operator"))
    assert response.status_code == 400
    assert "cursor" in response.json()["detail"]


async def test_the_sweeper_escalates_once_the_items_about_to_miss_their_deadline(clocked: Any) -> None:
    api, clock = clocked
    before = api.services.settings.approval_escalate_before_seconds  # 900 by default
    near = await api.create(**approval(START + dt.timedelta(seconds=before + 60)))
    far = await api.create(**approval(START + dt.timedelta(hours=3)))
    undated = await api.create(**approval(None))
    snoozed = await api.create(**approval(START + dt.timedelta(seconds=before + 30)))
    until = (START + dt.timedelta(hours=1)).isoformat()
    assert (await api.act(snoozed["id"], "snooze", {"until": until, "reason": "later"})).status_code == 200
    db = api.services.db

    assert await escalate_near_deadlines(db=db, before=before, clock=clock) == 0  # 60 s too early
    clock.advance(61)
    assert await api.services.sweeper.sweep() == (0, 2)  # the sweeper's pass takes this step (no SLA is due)
    assert await escalate_near_deadlines(db=db, before=before, clock=clock) == 0  # once

    async def read(item: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = (await api.http.get(f"/v1/exceptions/{item['id']}", headers=api.auth("operator"))).json()
        return body

    for item in (near, snoozed):
        body = await read(item)
        assert body["status"] == "escalated"
        assert body["deadline_escalated_at"] == clock().isoformat().replace("+00:00", "Z")
        assert body["snoozed_until"] is None
    assert (await read(far))["status"] == "open"
    assert (await read(undated))["status"] == "open"
    history = (await api.http.get(f"/v1/exceptions/{near['id']}/history", headers=api.auth("operator"))).json()
    last = history["items"][-1] if "items" in history else history[-1]
    assert last["actor"] == DEADLINE_ACTOR
    assert "no release decision yet" in last["fields"]["reason"]

    # Claimed again after the escalation, it is not escalated a second time for the same deadline.
    assert (await api.act(near["id"], "claim", {})).status_code == 200
    clock.advance(3 * 3600)  # past `far`'s deadline too
    assert await escalate_near_deadlines(db=db, before=before, clock=clock) == 1  # `far` only
    assert (await read(near))["status"] == "claimed"


@pytest.mark.kafka
async def test_release_decisions_reach_exception_outcomes_on_the_real_broker(
    api_factory: ApiFactory, kafka_settings: Settings, database_url: str
) -> None:
    settings = kafka_settings.model_copy(update={"database_url": database_url, "outbox_interval_seconds": 0.2})
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    decisions = {
        "publish": {"decision": "publish", "reason": ""},
        "publish_corrected": {
            "decision": "publish_corrected",
            "reason": "claim softened",
            "correction": {"data.caption": {"before": "Best parka ever", "after": "Our lightest parka"}},
        },
        "withhold": {"decision": "withhold", "reason": "off-brand"},
    }
    ids: dict[str, str] = {}
    async with api_factory(settings) as api:
        for name, body in decisions.items():
            item = await api.create(**approval(deadline))
            assert (await api.act(item["id"], "resolve", body)).status_code == 200
            ids[name] = item["id"]
        for exception_id in ids.values():
            for _ in range(400):
                async with api.services.db.read() as session:
                    rows = await store.outbox_for(session=session, exception_id=exception_id)
                if rows and all(r.sent_at is not None for r in rows):
                    break
                await asyncio.sleep(0.05)

    records = await read_topic(kafka_settings.kafka_bootstrap, kafka_settings.outcomes_topic)
    outcomes = {m.key.decode(): Outcome.model_validate(orjson.loads(m.value)) for m in records if m.key and m.value}
    assert set(outcomes) == set(ids.values())
    assert len(records) == 3
    for name, exception_id in ids.items():
        data = outcomes[exception_id].data
        assert (data.decision, data.kind, data.rule_id) == (name, "approval", "approval_gate")
        assert data.resolver == "operator-tester"
        assert data.deadline == deadline
        assert data.time_to_resolve_seconds >= 0
    corrected = outcomes[ids["publish_corrected"]].data.model_dump(mode="json")["correction"]
    assert corrected == {"data.caption": {"before": "Best parka ever", "after": "Our lightest parka"}}
    assert outcomes[ids["withhold"]].data.reason == "off-brand"


async def test_verdict_statistics_count_the_release_decisions_of_approval_items(api: Api) -> None:
    for body in ({"decision": "publish"}, {"decision": "publish"}, {"decision": "withhold", "reason": "no"}):
        item = await api.create(**approval(None))
        assert (await api.act(item["id"], "resolve", {"reason": "", **body})).status_code == 200
    exc = await api.create()
    await api.act(exc["id"], "resolve", {"decision": "confirmed", "reason": ""})

    stats = (await api.http.get("/v1/stats/verdicts", headers=api.auth("operator"))).json()["groups"]
    by_rule = {g["rule_id"]: g for g in stats}
    assert by_rule["approval_gate"]["counts"] == {"publish": 2, "publish_corrected": 0, "withhold": 1}
    assert (by_rule["approval_gate"]["resolved"], by_rule["approval_gate"]["judged"]) == (3, 0)
    assert by_rule["approval_gate"]["precision"] is None
    assert set(by_rule["bid_over_cap"]["counts"]) == {
        "confirmed",
        "false_positive",
        "corrected",
        "escalated",
        "dismissed",
    }
