"""Scoped principals (issue 25): a client's reviewer sees and works only its clients' reviewer
queues, an analyst reads and changes nothing, a token scoped to a client sees that client alone;
everything outside the scope answers the same 404 as what does not exist, and changes nothing.
The scope is applied in one place (scoping.py), so lists, gets, counts, statistics, exports,
bulk actions and history all obey it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role, scope_for
from loopgate.resolution_api.access.scoping import acting_as, caller_scope
from loopgate.resolution_api.db.models import ExceptionRow
from tests.fixtures.api import Api, ApiFactory, claim

IN_AN_HOUR = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()


@dataclass
class World:
    api: Api
    northwind_claim: str  # routed to reviewers-northwind
    contoso_claim: str  # routed to reviewers-contoso
    northwind_bid: str  # northwind, but the agency's default queue
    contoso_bid: str
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def world(api_factory: ApiFactory, api_settings: Settings) -> AsyncIterator[World]:
    async with api_factory(api_settings) as api:
        ids = [
            (await api.create(**claim("northwind")))["id"],
            (await api.create(**claim("contoso")))["id"],
            (await api.create(client_id="northwind"))["id"],
            (await api.create(client_id="contoso"))["id"],
        ]
        tokens = {"reviewer": api.tokens[Role.REVIEWER], "analyst": api.tokens[Role.ANALYST]}
        for name, role, clients in [
            ("contoso-operator", "operator", ["contoso"]),
            ("contoso-admin", "admin", ["contoso"]),
        ]:
            made = await api.http.post(
                "/v1/tokens", json={"name": name, "role": role, "clients": clients}, headers=api.auth(Role.ADMIN)
            )
            tokens[name] = made.json()["token"]
        yield World(api, *ids, tokens=tokens)


async def listed(world: World, who: str, **params: Any) -> set[str]:
    response = await world.api.http.get("/v1/exceptions", params={"limit": 200, **params}, headers=world.auth(who))
    assert response.status_code == 200, response.text
    return {e["id"] for e in response.json()["items"]}


async def stored_status(world: World, exception_id: str) -> tuple[str, int]:
    async with world.api.services.db.read() as session, session.begin():
        row = await session.get(ExceptionRow, exception_id)
        assert row is not None
        return row.status, row.version


async def test_a_reviewer_lists_only_its_clients_reviewer_queue(world: World) -> None:
    assert await listed(world, "reviewer") == {world.northwind_claim}
    assert await listed(world, "reviewer", client_id="contoso") == set()
    assert await listed(world, "reviewer", queue="default") == set()


async def test_a_token_scoped_to_a_client_sees_every_queue_of_that_client_alone(world: World) -> None:
    assert await listed(world, "contoso-operator") == {world.contoso_claim, world.contoso_bid}


async def test_an_analyst_reads_everything_and_changes_nothing(world: World) -> None:
    everything = await listed(world, "analyst")
    claimed = await world.api.http.post(f"/v1/exceptions/{world.northwind_bid}/claim", headers=world.auth("analyst"))

    assert {world.northwind_claim, world.contoso_claim, world.northwind_bid, world.contoso_bid} <= everything
    assert claimed.status_code == 403
    assert await stored_status(world, world.northwind_bid) == ("open", 1)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/exceptions/{id}", None),
        ("GET", "/v1/exceptions/{id}/history", None),
        ("POST", "/v1/exceptions/{id}/claim", {}),
        ("POST", "/v1/exceptions/{id}/resolve", {"decision": "confirmed", "reason": "r"}),
        ("POST", "/v1/exceptions/{id}/escalate", {"reason": "r"}),
        ("POST", "/v1/exceptions/{id}/snooze", {"until": IN_AN_HOUR}),
    ],
)
async def test_out_of_scope_is_the_same_404_as_missing_and_changes_nothing(
    world: World, method: str, path: str, body: Any
) -> None:
    outside = await world.api.http.request(
        method, path.format(id=world.contoso_claim), json=body, headers=world.auth("reviewer")
    )
    missing = await world.api.http.request(
        method, path.format(id="no-such-exception"), json=body, headers=world.auth("reviewer")
    )

    assert outside.status_code == missing.status_code == 404
    assert outside.json()["detail"].replace(world.contoso_claim, "X") == missing.json()["detail"].replace(
        "no-such-exception", "X"
    )
    assert await stored_status(world, world.contoso_claim) == ("open", 1)


async def test_a_reviewer_works_its_own_claim_check_with_a_correction(world: World) -> None:
    auth = world.auth("reviewer")
    claimed = await world.api.http.post(f"/v1/exceptions/{world.northwind_claim}/claim", headers=auth)
    resolved = await world.api.http.post(
        f"/v1/exceptions/{world.northwind_claim}/resolve",
        json={
            "decision": "corrected",
            "reason": "the study does not support it",
            "correction": {"product_claims": {"before": ["clinically proven"], "after": []}},
        },
        headers=auth,
    )

    assert claimed.status_code == 200 and resolved.status_code == 200, resolved.text
    assert resolved.json()["resolution"]["resolver"] == "reviewer-tester"


async def test_bulk_actions_reach_only_what_the_scope_covers(world: World) -> None:
    response = await world.api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={"ids": [world.northwind_claim, world.contoso_claim], "decision": "confirmed", "reason": "checked"},
        headers=world.auth("contoso-operator"),
    )

    assert response.status_code == 200, response.text
    assert await stored_status(world, world.northwind_claim) == ("open", 1)
    assert (await stored_status(world, world.contoso_claim))[0] == "resolved"


async def test_a_reviewer_works_one_exception_at_a_time_never_in_bulk(world: World) -> None:
    response = await world.api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={"ids": [world.northwind_claim], "decision": "confirmed", "reason": "checked"},
        headers=world.auth("reviewer"),
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "role 'reviewer' may not work exceptions in bulk"
    assert await stored_status(world, world.northwind_claim) == ("open", 1)


async def test_statistics_and_the_export_count_only_what_the_scope_covers(world: World) -> None:
    for exception_id in (world.northwind_claim, world.contoso_claim, world.contoso_bid):
        await world.api.act(exception_id, "resolve", {"decision": "confirmed", "reason": "ok"})

    stats = await world.api.http.get("/v1/stats/verdicts", headers=world.auth("reviewer"))
    export = await world.api.http.get("/v1/export/training-data", headers=world.auth("contoso-operator"))

    assert stats.status_code == 200, stats.text
    assert sum(group["resolved"] for group in stats.json()["groups"]) == 1
    exported = {orjson.loads(line)["exception_id"] for line in export.text.splitlines() if line}
    assert exported == {world.contoso_claim, world.contoso_bid}


async def test_a_token_scoped_to_clients_may_not_manage_tokens_even_as_admin(world: World) -> None:
    response = await world.api.http.post(
        "/v1/tokens", json={"name": "escalated", "role": "admin"}, headers=world.auth("contoso-admin")
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "a token scoped to clients contoso may not manage tokens"


async def test_each_request_starts_seeing_nothing_and_leaves_no_scope_behind(world: World) -> None:
    await world.api.http.get("/v1/exceptions", headers=world.auth("reviewer"))

    assert caller_scope.get().agency_wide  # the test's own context, after a reviewer's request
    with acting_as(scope_for(Role.REVIEWER, ["northwind"])):
        async with world.api.services.db.read() as session, session.begin():
            seen = set((await session.execute(sa.select(ExceptionRow.id))).scalars())
    assert seen == {world.northwind_claim}


async def test_a_token_scoped_to_a_client_silences_only_that_client_and_sees_only_its_silences(world: World) -> None:
    api, auth = world.api, world.auth("contoso-operator")
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    agency = await api.http.post(
        "/v1/silences",
        json={"rule_id": "bid_over_cap", "ends_at": ends, "comment": "agency"},
        headers=api.auth("admin"),
    )
    other = await api.http.post(
        "/v1/silences",
        json={"client_id": "northwind", "ends_at": ends, "comment": "not mine"},
        headers=api.auth("operator"),
    )

    refused = [
        await api.http.post("/v1/silences", json={**body, "ends_at": ends, "comment": "c"}, headers=auth)
        for body in ({"client_id": "northwind"}, {"rule_id": "bid_over_cap"}, {"match_all": True})
    ]
    own = await api.http.post(
        "/v1/silences", json={"client_id": "contoso", "ends_at": ends, "comment": "c"}, headers=auth
    )
    listed = await api.http.get("/v1/silences", headers=auth)
    foreign = await api.http.post(f"/v1/silences/{other.json()['id']}/expire", headers=auth)

    assert [r.status_code for r in refused] == [403, 403, 403]
    assert refused[0].json()["detail"].startswith("a token scoped to clients contoso may silence only those clients'")
    assert own.status_code == 201 and own.json()["silenced"] == 1  # contoso's claim; its bid is the agency's
    assert [s["id"] for s in listed.json()["items"]] == [own.json()["id"]]
    assert agency.status_code == 201 and foreign.status_code == 404
