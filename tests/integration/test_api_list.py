"""GET /v1/exceptions: filters and cursor pagination, newest first, stable while new ones arrive."""

from __future__ import annotations

from typing import Any

from tests.fixtures.api import Api


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/v1/exceptions", params=params, headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_empty_list(api: Api) -> None:
    assert await _list(api) == {"items": [], "next_cursor": None}


async def test_pages_walk_every_exception_once_newest_first_even_while_new_ones_arrive(api: Api) -> None:
    created = [(await api.create())["id"] for _ in range(7)]

    first = await _list(api, limit=3)
    await api.create()  # arrives between pages: sorts before the cursor, never shifts later pages
    second = await _list(api, limit=3, cursor=first["next_cursor"])
    third = await _list(api, limit=3, cursor=second["next_cursor"])

    seen = [e["id"] for page in (first, second, third) for e in page["items"]]
    assert seen == list(reversed(created))
    assert third["next_cursor"] is None


async def test_filters_combine(api: Api) -> None:
    match = await api.create(
        severity="critical", client_id="acme", rule_id="overspend", source="bid-management.events"
    )
    await api.create(severity="critical", client_id="other", rule_id="overspend")
    await api.create(severity="low", client_id="acme", rule_id="overspend")
    await api.create(severity="critical", client_id="acme", rule_id="bid_jump")

    body = await _list(
        api, severity="critical", client_id="acme", rule_id="overspend", source="bid-management.events"
    )

    assert [e["id"] for e in body["items"]] == [match["id"]]


async def test_status_and_severity_may_be_repeated(api: Api) -> None:
    claimed = await api.create(severity="high")
    await api.act(claimed["id"], "claim")
    escalated = await api.create(severity="medium")
    await api.act(escalated["id"], "escalate", {"reason": "x"})
    await api.create(severity="high")  # open

    body = await _list(api, status=["claimed", "escalated"])

    assert {e["id"] for e in body["items"]} == {claimed["id"], escalated["id"]}
    assert len((await _list(api, severity=["high", "medium"]))["items"]) == 3


async def test_filter_by_assignee(api: Api) -> None:
    mine = await api.create()
    await api.act(mine["id"], "claim", {"assignee": "dana"})
    await api.create()

    assert [e["id"] for e in (await _list(api, assignee="dana"))["items"]] == [mine["id"]]


async def test_a_bad_cursor_is_400_naming_it(api: Api) -> None:
    response = await api.http.get(
        "/v1/exceptions", params={"cursor": "garbage"}, headers=api.auth("operator")
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "invalid cursor 'garbage': pass next_cursor from a previous page"}


async def test_an_unknown_status_filter_is_422(api: Api) -> None:
    response = await api.http.get("/v1/exceptions", params={"status": "closed"}, headers=api.auth("operator"))

    assert response.status_code == 422
    assert response.json()["message"].startswith("query.status.0: Input should be 'open', ")


async def test_limit_is_bounded(api: Api) -> None:
    response = await api.http.get("/v1/exceptions", params={"limit": 1000}, headers=api.auth("operator"))

    assert response.status_code == 422
    assert response.json()["message"] == "query.limit: Input should be less than or equal to 200"
