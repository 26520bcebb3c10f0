"""GET /v1/exceptions: filters and cursor pagination, newest first, stable while new ones arrive."""

from __future__ import annotations

import datetime as dt
from typing import Any

from loopgate.common.settings import Settings
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock


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
    match = await api.create(severity="critical", client_id="acme", rule_id="overspend", source="bid-management.events")
    await api.create(severity="critical", client_id="other", rule_id="overspend")
    await api.create(severity="low", client_id="acme", rule_id="overspend")
    await api.create(severity="critical", client_id="acme", rule_id="bid_jump")

    body = await _list(api, severity="critical", client_id="acme", rule_id="overspend", source="bid-management.events")

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


async def test_pages_of_several_statuses_interleave_them_newest_first(api: Api) -> None:
    """The on-call queue (several statuses) is merged from one read per status: the pages must
    still walk every match once, in one newest-first order, with the other filters applied."""
    expected = []
    for n in range(9):
        row = await api.create(severity="high" if n % 4 else "low")
        if n % 3 == 1:
            await api.act(row["id"], "claim")
        elif n % 3 == 2:
            await api.act(row["id"], "escalate", {"reason": "x"})
        if n % 4:
            expected.append(row["id"])
    await api.act((await api.create(severity="high"))["id"], "resolve", {"decision": "confirmed"})

    pages, cursor = [], None
    while True:
        body = await _list(
            api,
            status=["open", "claimed", "escalated"],
            severity="high",
            limit=2,
            **({"cursor": cursor} if cursor else {}),
        )
        pages.append([e["id"] for e in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert [i for page in pages for i in page] == list(reversed(expected))
    assert all(len(page) == 2 for page in pages[:-1])


async def test_filter_by_assignee(api: Api) -> None:
    mine = await api.create()
    await api.act(mine["id"], "claim", {"assignee": "dana"})
    await api.create()

    assert [e["id"] for e in (await _list(api, assignee="dana"))["items"]] == [mine["id"]]


async def test_a_bad_cursor_is_400_naming_it(api: Api) -> None:
    response = await api.http.get("/v1/exceptions", params={"cursor": "garbage"}, headers=api.auth("operator"))

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


def after_them() -> FakeClock:
    """The records' times are fixed, so is the API's clock: they stay in its record window whatever the date."""
    return FakeClock(dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC))


async def test_detected_after_and_before_select_on_first_seen_and_pages_walk_them_once(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    base = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
    created_hours = (5, 0, 3, 1, 4, 2, 6)  # first_seen order differs from creation order
    clock = after_them()
    async with api_factory(api_settings, clock) as api:
        by_hour = {}
        for h in created_hours:
            by_hour[h] = (await api.create(detected_at=(base + dt.timedelta(hours=h)).isoformat()))["id"]
            clock.advance(1)  # created one after the other

        params = {"detected_after": "2026-11-24T10:00:00Z", "detected_before": "2026-11-24T15:00:00+00:00"}
        first = await _list(api, **params, limit=2)
        second = await _list(api, **params, limit=2, cursor=first["next_cursor"])
        third = await _list(api, **params, limit=2, cursor=second["next_cursor"])

    seen = [e["id"] for page in (first, second, third) for e in page["items"]]
    # hours 1 to 5 (after is inclusive, before exclusive), newest created first
    assert seen == [by_hour[h] for h in (2, 4, 1, 3, 5)]
    assert third["next_cursor"] is None


async def test_a_time_range_combines_with_other_filters(api_factory: ApiFactory, api_settings: Settings) -> None:
    detected = "2026-11-24T09:30:00Z"
    async with api_factory(api_settings, after_them()) as api:
        match = await api.create(severity="critical", detected_at=detected)
        await api.create(severity="low", detected_at=detected)
        await api.create(severity="critical", detected_at="2026-11-25T09:30:00Z")

        body = await _list(api, severity="critical", detected_before="2026-11-25T00:00:00Z")

    assert [e["id"] for e in body["items"]] == [match["id"]]


async def test_a_time_without_an_offset_is_422_saying_what_is_expected(api: Api) -> None:
    response = await api.http.get(
        "/v1/exceptions", params={"detected_after": "2026-11-24T09:00:00"}, headers=api.auth("operator")
    )

    assert response.status_code == 422
    assert response.json()["message"] == (
        "query.detected_after: must be an RFC 3339 date-time with an offset, e.g. 2026-11-24T09:16:41Z"
    )


async def test_an_unescaped_plus_in_a_time_is_422_with_a_hint(api: Api) -> None:
    response = await api.http.get(
        "/v1/exceptions?detected_before=2026-11-24T09:00:00+01:00", headers=api.auth("operator")
    )

    assert response.status_code == 422
    assert response.json()["message"].endswith("(a '+' in a query string must be sent as %2B)")


async def test_a_range_that_ends_before_it_starts_is_400(api: Api) -> None:
    response = await api.http.get(
        "/v1/exceptions",
        params={"detected_after": "2026-11-24T10:00:00Z", "detected_before": "2026-11-24T09:00:00Z"},
        headers=api.auth("operator"),
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "detected_after (2026-11-24T10:00:00+00:00) must be before "
        "detected_before (2026-11-24T09:00:00+00:00)"
    }
