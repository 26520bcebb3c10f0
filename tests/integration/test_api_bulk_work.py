"""Work by filter (POST /v1/exceptions/bulk): every exception the list filters match is resolved,
snoozed or claimed in one request, a dry run counts them first, and each resolution has one
outcome in the outbox. Both backends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from prometheus_client import REGISTRY

from loopgate.resolution_api.models import ExceptionEventRow, ExceptionRow, OutboxRow
from tests.fixtures.api import Api, record

BULK = "/v1/exceptions/bulk"
STORM = 10_000


async def store_storm(api: Api, exceptions: int, **overrides: Any) -> None:
    """`exceptions` bid_over_cap exceptions, each grouped from two records (its occurrences: 2)."""
    records = [
        record(exception_id=f"storm-{n}-{copy}", fingerprint=f"bid_over_cap:li-{n}", **overrides)
        for n in range(exceptions)
        for copy in range(2)
    ]
    for start in range(0, len(records), 500):
        response = await api.http.post(
            "/v1/exceptions/batch", json={"records": records[start : start + 500]}, headers=api.auth("service")
        )
        assert response.status_code == 200, response.text


async def bulk(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.http.post(BULK, json=body, headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def scalar(api: Api, stmt: Any) -> Any:
    async with api.services.db.read() as session:
        return (await session.execute(stmt)).scalar_one()


async def test_a_storm_of_10000_grouped_exceptions_is_resolved_in_one_call_with_one_outcome_each(api: Api) -> None:
    await store_storm(api, STORM)
    bystander = await api.create(rule_id="bid_jump", fingerprint="bid_jump:li-x")
    storm = {"rule_id": "bid_over_cap", "status": ["open", "claimed", "escalated", "snoozed"]}
    resolution = {"decision": "false_positive", "reason": "the cap was raised upstream"}

    counted = {"decision": "false_positive", "rule": "bid_over_cap"}
    before = REGISTRY.get_sample_value("loopgate_resolutions_total", counted) or 0.0
    ttr_before = (
        REGISTRY.get_sample_value("loopgate_rule_time_to_resolve_seconds_count", {"rule": "bid_over_cap"}) or 0.0
    )

    dry = await bulk(api, action="resolve", filter=storm, dry_run=True, **resolution)
    assert (dry["matched"], dry["changed"]) == (STORM, 0)
    assert await scalar(api, sa.select(sa.func.count()).select_from(OutboxRow)) == 0

    done = await bulk(api, action="resolve", filter=storm, **resolution)
    assert (done["matched"], done["changed"], done["skipped"]) == (STORM, STORM, 0)
    # The verdict counters see bulk resolutions as they see single ones.
    assert REGISTRY.get_sample_value("loopgate_resolutions_total", counted) == before + STORM
    assert (
        REGISTRY.get_sample_value("loopgate_rule_time_to_resolve_seconds_count", {"rule": "bid_over_cap"})
        == ttr_before + STORM
    )

    resolved = sa.select(sa.func.count()).where(ExceptionRow.status == "resolved", ExceptionRow.occurrences == 2)
    assert await scalar(api, resolved) == STORM
    outcomes = sa.select(sa.func.count(sa.distinct(OutboxRow.exception_id)), sa.func.count(OutboxRow.outcome_id))
    async with api.services.db.read() as session:
        assert tuple((await session.execute(outcomes)).one()) == (STORM, STORM)
    events = sa.select(sa.func.count()).where(ExceptionEventRow.action == "resolve")
    assert await scalar(api, events) == STORM
    untouched = await api.http.get(f"/v1/exceptions/{bystander['id']}", headers=api.auth("operator"))
    assert untouched.json()["status"] == "open"

    again = await bulk(api, action="resolve", filter=storm, **resolution)
    assert (again["matched"], again["changed"]) == (0, 0)


async def test_snooze_and_claim_by_filter_change_each_match_once(api: Api) -> None:
    ours = [await api.create(client_id="acme") for _ in range(3)]
    other = await api.create(client_id="globex")
    await api.act(ours[0]["id"], "claim", {"assignee": "bob"})

    claimed = await bulk(api, action="claim", filter={"client_id": "acme"}, assignee="bob")
    assert (claimed["matched"], claimed["changed"], claimed["skipped"]) == (3, 2, 1)

    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    snoozed = await bulk(api, action="snooze", filter={"client_id": "acme"}, until=until, reason="client asked")
    assert (snoozed["matched"], snoozed["changed"]) == (3, 3)
    for exception in ours:
        body = (await api.http.get(f"/v1/exceptions/{exception['id']}", headers=api.auth("operator"))).json()
        assert (body["status"], body["assignee"], body["version"]) == ("snoozed", "bob", 3)
        history = await api.http.get(f"/v1/exceptions/{exception['id']}/history", headers=api.auth("operator"))
        assert [e["action"] for e in history.json()["items"]] == ["created", "claim", "snooze"]
    assert (await api.http.get(f"/v1/exceptions/{other['id']}", headers=api.auth("operator"))).json()["status"] == (
        "open"
    )


async def test_bulk_work_names_a_filter_and_what_its_action_needs(api: Api) -> None:
    for body in (
        {"action": "resolve", "filter": {}, "decision": "confirmed"},
        {"action": "resolve", "filter": {"rule_id": "bid_over_cap"}},
        {"action": "snooze", "filter": {"rule_id": "bid_over_cap"}},
    ):
        response = await api.http.post(BULK, json=body, headers=api.auth("operator"))
        assert response.status_code == 422, response.text
    service = await api.http.post(
        BULK, json={"action": "claim", "filter": {"rule_id": "x"}}, headers=api.auth("service")
    )
    assert service.status_code == 403
