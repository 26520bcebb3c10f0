"""Work by filter (POST /v1/exceptions/bulk): every exception the list filters match is resolved,
snoozed or claimed in one request, a dry run counts them first, and each resolution has one
outcome in the outbox. Both backends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow, OutboxRow
from tests.fixtures.api import Api, ApiFactory, record

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


# --- bounded (issue 23 item 5) -----------------------------------------------------------------


BROAD_FILTERS = [
    {"status": ["open"]},
    {"status": ["open", "claimed", "escalated", "snoozed"]},
    {"detected_after": "1970-01-01T00:00:00Z"},
    {"status": ["open"], "detected_after": "1970-01-01T00:00:00Z", "detected_before": "2100-01-01T00:00:00Z"},
]


@pytest.mark.parametrize("broad", BROAD_FILTERS, ids=["status", "every unresolved", "since 1970", "status and time"])
async def test_a_filter_naming_only_status_and_time_needs_all_true(api: Api, broad: dict[str, Any]) -> None:
    exc = await api.create()
    body = {"action": "claim", "filter": broad}

    refused = await api.http.post(BULK, json=body, headers=api.auth("admin"))
    dry = await api.http.post(BULK, json={**body, "dry_run": True}, headers=api.auth("operator"))

    assert (refused.status_code, dry.status_code) == (422, 422), refused.text
    assert refused.json()["detail"][0]["type"] == "filter_too_broad"
    assert (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()["status"] == "open"


async def test_all_true_is_the_admins_alone(api: Api) -> None:
    exc = await api.create()
    body = {"action": "claim", "filter": {"status": ["open"]}, "all": True, "assignee": "dana"}

    operator = await api.http.post(BULK, json=body, headers=api.auth("operator"))
    admin = await api.http.post(BULK, json=body, headers=api.auth("admin"))

    assert operator.status_code == 403, operator.text
    assert admin.status_code == 200, admin.text
    assert admin.json()["changed"] == 1
    got = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    assert (got["status"], got["assignee"]) == ("claimed", "dana")


async def test_a_filter_matching_more_than_the_cap_is_refused_with_its_count(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    async with api_factory(api_settings.model_copy(update={"bulk_max_rows": 3})) as api:
        for _ in range(5):
            await api.create(client_id="acme")
        for _ in range(3):
            await api.create(client_id="globex")

        dry = await bulk(api, action="claim", filter={"client_id": "acme"}, dry_run=True)
        over = await api.http.post(
            BULK, json={"action": "claim", "filter": {"client_id": "acme"}}, headers=api.auth("operator")
        )
        at_cap = await bulk(api, action="claim", filter={"client_id": "globex"})
        claimed = await api.http.get("/v1/exceptions", params={"status": "claimed"}, headers=api.auth("operator"))

    assert (dry["matched"], dry["max_rows"]) == (5, 3)
    assert over.status_code == 422, over.text
    assert "matches 5 exceptions" in over.json()["message"] and "LOOPGATE_BULK_MAX_ROWS=3" in over.json()["message"]
    assert (at_cap["matched"], at_cap["changed"]) == (3, 3)
    assert {e["client_id"] for e in claimed.json()["items"]} == {"globex"}


async def test_bulk_work_never_changes_more_than_the_cap_even_if_more_match_meanwhile(api: Api) -> None:
    from loopgate.resolution_api.exceptions import bulk_work
    from loopgate.resolution_api.exceptions.lifecycle import Action
    from loopgate.resolution_api.exceptions.store import ExceptionFilters

    for _ in range(7):
        await api.create(client_id="acme")

    done = await bulk_work.work(
        db=api.services.db,
        filters=ExceptionFilters(client_id="acme"),
        action=Action.CLAIM,
        actor="dana",
        change_for=bulk_work.claim_change("dana"),
        chunk=2,
        max_rows=5,
    )

    assert (done.matched, done.changed) == (5, 5)


async def test_bulk_resolve_by_ids_checks_each_version_and_goes_on(api: Api) -> None:
    fresh, stale, unversioned = [await api.create() for _ in range(3)]
    await api.act(stale["id"], "claim", {"assignee": "bob"})  # a colleague, after the caller read version 1

    response = await api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={
            "ids": [fresh["id"], stale["id"], unversioned["id"]],
            "versions": {fresh["id"]: 1, stale["id"]: 1},
            "decision": "confirmed",
        },
        headers=api.auth("operator"),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(r["id"] for r in body["resolved"]) == sorted([fresh["id"], unversioned["id"]])
    assert [(f["id"], f["status_code"]) for f in body["failed"]] == [(stale["id"], 412)]


@pytest.mark.parametrize(
    "versions", [{"other": 1}, {"x": "one"}, {"x": -1.5}], ids=["an id not listed", "not a number", "a float"]
)
async def test_bulk_resolve_versions_must_be_of_listed_ids(api: Api, versions: dict[str, Any]) -> None:
    response = await api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={"ids": ["x"], "versions": versions, "decision": "confirmed"},
        headers=api.auth("operator"),
    )

    assert response.status_code == 422, response.text
