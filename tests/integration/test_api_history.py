"""History is bounded and paged (issue 23 item 5, issue 27): every grouped occurrence adds a history
row, so the history of a fingerprint that fires a million times is read a page at a time, by a
cursor, through the API and the console; the answer keeps its shape (`exception_id`, `items`) and
adds `next_cursor`. Paging is exact while occurrences keep arriving. Both backends."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
from typing import Any

import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.cursor import Position, Sort, encode_cursor, encode_history_cursor
from tests.fixtures.api import Api, ApiFactory, record


async def grouped(api: Api, fingerprint: str, count: int) -> None:
    """`count` more occurrences of the open exception with `fingerprint`, a batch at a time."""
    for start in range(0, count, 100):
        records = [record(fingerprint=fingerprint) for _ in range(min(100, count - start))]
        response = await api.http.post("/v1/exceptions/batch", json={"records": records}, headers=api.auth("service"))
        assert response.status_code == 200, response.text
        assert {r["result"] for r in response.json()["results"]} == {"grouped"}


async def all_pages(api: Api, exception_id: str, limit: int | None = None) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {} if limit is None else {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await api.http.get(
            f"/v1/exceptions/{exception_id}/history", params=params, headers=api.auth("operator")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def stored_history(api: Api, exception_id: str) -> list[int]:
    async with api.services.db.read() as session, session.begin():
        return [e.id for e in await store.history(session=session, exception_id=exception_id)]


async def test_a_long_history_comes_a_page_of_100_at_a_time_by_default(api: Api) -> None:
    first = await api.create(fingerprint="fp-long")
    await grouped(api, "fp-long", 249)

    response = await api.http.get(f"/v1/exceptions/{first['id']}/history", headers=api.auth("operator"))
    pages = await all_pages(api, first["id"])

    body = response.json()
    assert set(body) == {"exception_id", "items", "next_cursor"}  # the old shape, and the cursor
    assert (body["exception_id"], len(body["items"]), body["items"][0]["action"]) == (first["id"], 100, "created")
    assert [len(page) for page in pages] == [100, 100, 50]
    assert [e["id"] for page in pages for e in page] == await stored_history(api, first["id"])


async def test_a_short_history_is_one_page_without_a_cursor(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "claim")

    body = (await api.http.get(f"/v1/exceptions/{exc['id']}/history", headers=api.auth("operator"))).json()

    assert ([e["action"] for e in body["items"]], body["next_cursor"]) == (["created", "claim"], None)


@pytest.mark.parametrize("limit", [1, 7, 500])
async def test_pages_of_any_allowed_size_add_up_to_the_whole_history(api: Api, limit: int) -> None:
    first = await api.create(fingerprint=f"fp-size-{limit}")
    await grouped(api, f"fp-size-{limit}", 20)

    pages = await all_pages(api, first["id"], limit=limit)

    assert all(len(page) <= limit for page in pages)
    assert [e["id"] for page in pages for e in page] == await stored_history(api, first["id"])


async def test_paging_is_exact_while_occurrences_keep_arriving(api: Api) -> None:
    first = await api.create(fingerprint="fp-busy")
    await grouped(api, "fp-busy", 30)

    async def occurrences() -> None:
        for _ in range(40):
            await api.http.post("/v1/exceptions", json=record(fingerprint="fp-busy"), headers=api.auth("service"))

    async def reader() -> list[int]:
        seen, cursor = [], None
        for _ in range(200):
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            body = (
                await api.http.get(f"/v1/exceptions/{first['id']}/history", params=params, headers=api.auth("operator"))
            ).json()
            seen += [e["id"] for e in body["items"]]
            # At the end for now, a tailing reader resumes after the last event it saw.
            cursor = body["next_cursor"] or (encode_history_cursor(seen[-1]) if seen else None)
            await asyncio.sleep(0)
        return seen

    seen, _ = await asyncio.gather(reader(), occurrences())
    rest = [e["id"] for page in await all_pages(api, first["id"]) for e in page if e["id"] > seen[-1]]

    assert seen + rest == await stored_history(api, first["id"])  # nothing twice, nothing skipped
    assert len(seen + rest) == 1 + 30 + 40


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": 501},
        {"limit": 10**30},
        {"limit": "ten"},
        {"cursor": "x" * 201},
    ],
    ids=["limit=0", "negative", "over the maximum", "huge", "not a number", "cursor too long"],
)
async def test_hostile_limits_are_a_422(api: Api, params: dict[str, Any]) -> None:
    exc = await api.create()

    response = await api.http.get(f"/v1/exceptions/{exc['id']}/history", params=params, headers=api.auth("operator"))

    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !!",
        b64({"after": 1}),
        b64(["history", -1]),
        b64(["history", 2**31]),
        b64(["history", "12"]),
        b64(["history", 1.5]),
        b64(["history", True]),
        b64(["history", 1, 2]),
        encode_cursor(Position(sort=Sort.NEWEST, created_at=dt.datetime.now(dt.UTC), exception_id="exc-1")),
    ],
    ids=[
        "garbage",
        "an object",
        "negative",
        "past the column",
        "a string",
        "a float",
        "a boolean",
        "three keys",
        "a list cursor",
    ],
)
async def test_garbage_cursors_are_a_400_naming_the_cursor(api: Api, cursor: str) -> None:
    exc = await api.create()

    response = await api.http.get(
        f"/v1/exceptions/{exc['id']}/history", params={"cursor": cursor}, headers=api.auth("operator")
    )

    assert response.status_code == 400, response.text
    assert "cursor" in response.json()["detail"]


async def test_a_cursor_past_the_end_is_an_empty_last_page(api: Api) -> None:
    exc = await api.create()

    response = await api.http.get(
        f"/v1/exceptions/{exc['id']}/history",
        params={"cursor": encode_history_cursor(2**31 - 1)},
        headers=api.auth("operator"),
    )

    assert (response.status_code, response.json()["items"], response.json()["next_cursor"]) == (200, [], None)


async def test_the_console_shows_the_first_page_of_history_and_links_to_the_rest(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    async with api_factory(api_settings.model_copy(update={"console_secure_cookie": False})) as api:
        await console_history(api)


async def console_history(api: Api) -> None:
    first = await api.create(fingerprint="fp-console")
    await grouped(api, "fp-console", 119)
    page = await api.http.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    signed = await api.http.post("/console/sign-in", data={"csrf": csrf.group(1), "token": api.tokens["operator"]})
    assert signed.status_code == 303

    shown = await api.http.get(f"/console/exceptions/{first['id']}")
    events = []
    url: str | None = f"/console/exceptions/{first['id']}/history"
    more = re.search(r'id="history-more" href="([^"]+)"', shown.text)
    url = more.group(1).replace("&amp;", "&") if more else None
    while url:
        next_page = await api.http.get(url)
        assert next_page.status_code == 200, next_page.text
        events.append(next_page.text.count("<li><time"))
        found = re.search(r'id="history-more" href="([^"]+)"', next_page.text)
        url = found.group(1).replace("&amp;", "&") if found else None

    assert shown.status_code == 200
    assert shown.text.count("<li><time") == 50
    assert events == [50, 20]
    bad = await api.http.get(f"/console/exceptions/{first['id']}/history", params={"cursor": "garbage"})
    assert bad.status_code == 400
