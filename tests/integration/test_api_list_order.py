"""GET /v1/exceptions by impact: `impact` kept and returned, `min_impact`, and the three orders
(`sort=newest`, `severity`, `impact`), each paged once through every match with ties."""

from __future__ import annotations

import base64
import datetime as dt
import random
from typing import Any

import orjson
import pytest

from loopgate.common.settings import Settings
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

ACTION_BODIES: dict[str, dict[str, Any]] = {
    "claim": {},
    "escalate": {"reason": "x"},
    "resolve": {"decision": "confirmed"},
}
RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def impact(amount: float, currency: str = "EUR") -> dict[str, Any]:
    return {"amount": amount, "currency": currency, "basis": "overspend so far today: spend_to_date - daily_budget"}


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/v1/exceptions", params=params, headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _walk(api: Api, **params: Any) -> list[str]:
    """Every page of a list, its ids in order; asserts every page but the last is full."""
    ids: list[str] = []
    cursor = None
    while True:
        body = await _list(api, **params, **({"cursor": cursor} if cursor else {}))
        ids += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
        assert len(body["items"]) == params["limit"]


def _expected(rows: list[dict[str, Any]], sort: str) -> list[str]:
    def newest(r: dict[str, Any]) -> tuple[dt.datetime, str]:
        return dt.datetime.fromisoformat(r["created_at"]), r["id"]

    def by_impact(r: dict[str, Any]) -> tuple[bool, float]:
        amount = r["impact"]["amount"] if r["impact"] else None
        return amount is not None, amount or 0.0

    key = {
        "newest": newest,
        "impact": lambda r: (*by_impact(r), *newest(r)),
        "severity": lambda r: (RANK[r["severity"]], *by_impact(r), *newest(r)),
    }[sort]
    return [r["id"] for r in sorted(rows, key=key, reverse=True)]


async def test_impact_is_stored_and_returned(api: Api) -> None:
    with_impact = await api.create(impact=impact(12.5, "USD"))
    without = await api.create()

    fetched = (await api.http.get(f"/v1/exceptions/{with_impact['id']}", headers=api.auth("operator"))).json()
    listed = {e["id"]: e["impact"] for e in (await _list(api))["items"]}

    assert with_impact["impact"] == fetched["impact"] == impact(12.5, "USD")
    assert without["impact"] is None
    assert listed == {with_impact["id"]: impact(12.5, "USD"), without["id"]: None}


async def test_min_impact_keeps_those_at_least_that_amount_and_never_those_without(api: Api) -> None:
    ids = {amount: (await api.create(impact=impact(amount)))["id"] for amount in (0, 4.99, 5, 10)}
    await api.create()

    assert {e["id"] for e in (await _list(api, min_impact=5))["items"]} == {ids[5], ids[10]}
    assert {e["id"] for e in (await _list(api, min_impact=0))["items"]} == set(ids.values())
    assert (await _list(api, min_impact=1e308))["items"] == []


async def test_the_default_order_is_still_newest_first(api: Api) -> None:
    low = await api.create(severity="low")
    await api.create(severity="critical", impact=impact(1000))

    assert (await _list(api))["items"][-1]["id"] == low["id"]
    assert (await _list(api, sort="severity"))["items"][-1]["id"] == low["id"]


@pytest.fixture
async def tied(api_factory: ApiFactory, api_settings: Settings) -> Any:
    """Forty exceptions in every status, severity and impact, with ties at every key: several are
    created at the same instant (the fake clock moves every third), amounts repeat, many have none."""
    rng = random.Random(156)
    clock = FakeClock(dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC))
    async with api_factory(api_settings, clock) as api:
        for n in range(40):
            amount = rng.choice([None, None, 0, 5, 5, 12.5, 1e9])
            body = await api.create(
                exception_id=f"exc-{n:03d}",
                severity=rng.choice(list(RANK)),
                detected_at=(clock() - dt.timedelta(hours=n % 7)).isoformat(),
                **({"impact": impact(amount, rng.choice(["EUR", "USD"]))} if amount is not None else {}),
            )
            action = rng.choice(["open", "open", "claim", "escalate", "resolve"])
            if action != "open":
                acted = await api.act(body["id"], action, ACTION_BODIES[action])
                assert acted.status_code == 200, acted.text
            if n % 3 == 2:
                clock.advance(1)
        rows = []
        for n in range(40):
            got = await api.http.get(f"/v1/exceptions/exc-{n:03d}", headers=api.auth("operator"))
            rows.append(got.json())
        assert {r["status"] for r in rows} == {"open", "claimed", "escalated", "resolved"}
        assert len({r["created_at"] for r in rows}) < len(rows)
        yield api, rows


@pytest.mark.parametrize("sort", ["newest", "severity", "impact"])
@pytest.mark.parametrize("limit", [1, 3, 7])
async def test_pages_walk_every_exception_once_in_order_ties_included(tied: Any, sort: str, limit: int) -> None:
    api, rows = tied
    assert await _walk(api, sort=sort, limit=limit) == _expected(rows, sort)


@pytest.mark.parametrize("sort", ["newest", "severity", "impact"])
@pytest.mark.parametrize(
    "filters",
    [
        {"status": ["open", "claimed", "escalated"]},
        {"status": "open"},
        {"severity": ["high", "low"], "status": ["open", "resolved"]},
        {"min_impact": 5},
        {"detected_after": "2026-11-27T04:00:00Z", "detected_before": "2026-11-27T08:30:00Z"},
        {"client_id": "northwind", "severity": "critical"},
    ],
)
async def test_filtered_pages_walk_every_match_once_in_order(tied: Any, sort: str, filters: dict[str, Any]) -> None:
    api, rows = tied
    everything = await _walk(api, sort=sort, limit=200)
    matching = {e["id"] for e in (await _list(api, **filters, limit=200))["items"]}

    walked = await _walk(api, **filters, sort=sort, limit=2)

    assert everything == _expected(rows, sort)
    assert walked == [i for i in everything if i in matching]
    assert matching


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_impact": -1}, "query.min_impact: Input should be greater than or equal to 0"),
        ({"min_impact": "NaN"}, "query.min_impact: Input should be a finite number"),
        ({"min_impact": "inf"}, "query.min_impact: Input should be a finite number"),
        ({"min_impact": "1e400"}, "query.min_impact: Input should be a finite number"),
        ({"min_impact": "lots"}, "query.min_impact: Input should be a valid number"),
        ({"sort": "oldest"}, "query.sort: Input should be 'newest', 'severity' or 'impact'"),
    ],
)
async def test_hostile_list_params_are_422_naming_them(api: Api, params: dict[str, Any], message: str) -> None:
    response = await api.http.get("/v1/exceptions", params=params, headers=api.auth("operator"))

    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(message)


@pytest.mark.parametrize("made_for", ["newest", "severity", "impact"])
@pytest.mark.parametrize("used_with", ["newest", "severity", "impact"])
async def test_a_cursor_continues_only_the_order_it_came_from(api: Api, made_for: str, used_with: str) -> None:
    for amount in (1, 2, 3):
        await api.create(impact=impact(amount))
    cursor = (await _list(api, sort=made_for, limit=1))["next_cursor"]

    response = await api.http.get(
        "/v1/exceptions", params={"sort": used_with, "cursor": cursor}, headers=api.auth("operator")
    )

    if made_for == used_with:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"cursor is from a list with sort={made_for}, not sort={used_with}: pass the same sort as the page it "
        "came from, or start again without a cursor"
    )


def _mutations(rng: random.Random) -> list[Any]:
    """Cursor keys as a forger would try them: right shapes with wrong values, and wrong shapes."""
    values: list[Any] = [
        None, True, 0, -1, 4, 5, 2**63, -(2**63), 1e308, -0.0, 0.5, "", "x" * 70, "exc\u0000", [], {},
        "2026-11-27T09:00:00+00:00", "9999-12-31T23:59:59-23:59", "2026-11-27T09:00:00", "exc-001",
    ]  # fmt: skip
    heads: list[Any] = ["severity", "impact", "newest", "oldest", None]
    keys = []
    for _ in range(60):
        size = rng.randint(0, 6)
        body = [rng.choice(values) for _ in range(size)]
        if rng.random() < 0.6 and size >= 2:
            body[0], body[1] = "2026-11-27T09:00:00+00:00", "exc-001"
        keys.append([rng.choice(heads), *body] if rng.random() < 0.7 else body)
    return keys


@pytest.mark.parametrize("sort", ["newest", "severity", "impact"])
async def test_forged_cursors_are_400_or_a_page_never_500(api: Api, sort: str) -> None:
    await api.create(impact=impact(5))
    await api.create()
    for keys in _mutations(random.Random(sort)):
        cursor = base64.urlsafe_b64encode(orjson.dumps(keys)).decode().rstrip("=")
        response = await api.http.get(
            "/v1/exceptions", params={"sort": sort, "cursor": cursor}, headers=api.auth("operator")
        )
        assert response.status_code in (200, 400), (keys, response.text)
