"""The console's bulk actions are bound to what the operator confirmed (issue 23 item 5): the
confirmation seals the exact set it counted (ids and the versions they were counted at, signed for
the session), step two does that set alone, and a row a colleague changed meanwhile is reported for
that row while the rest go on. Tampered, forged, foreign and old confirmations change nothing.
Both backends."""

from __future__ import annotations

import base64
import html
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.console import confirmation
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

RESOLVE = {"action": "resolve", "decision": "false_positive", "reason": "ad server outage"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def console(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    settings = api_settings.model_copy(update={"console_secure_cookie": False, "bulk_max_rows": 5})
    async with api_factory(settings, clock) as api:
        yield api


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


async def sign_in(api: Api, role: Role = Role.OPERATOR) -> str:
    page = await api.http.get("/console/sign-in")
    response = await api.http.post(
        "/console/sign-in", data={"csrf": field(page.text, "csrf"), "token": api.tokens[role]}, follow_redirects=True
    )
    assert response.status_code == 200, response.text
    return field(response.text, "csrf")


async def status_of(api: Api, exception_id: str) -> tuple[str, str | None]:
    body = (await api.http.get(f"/v1/exceptions/{exception_id}", headers=api.auth("operator"))).json()
    return body["status"], body["assignee"]


async def counted(api: Api, form: dict[str, Any] | list[tuple[str, str]]) -> tuple[str, str]:
    """Step one: the confirmation page's count and its sealed set."""
    page = await api.http.post(
        "/console/bulk",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert page.status_code == 200, page.text
    found = re.search(r"<strong>(\d+)</strong>", page.text)
    assert found
    return found.group(1), field(page.text, "sealed")


async def confirm(api: Api, csrf: str, sealed: str) -> Any:
    return await api.http.post("/console/bulk", data={"csrf": csrf, "confirm": "yes", "sealed": sealed})


async def test_work_by_filter_does_the_set_it_counted_not_what_matches_later(console: Api) -> None:
    shown = [await console.create(client_id="acme") for _ in range(3)]
    csrf = await sign_in(console)
    count, sealed = await counted(console, {"csrf": csrf, "scope": "filter", "client_id": "acme", **RESOLVE})
    later = await console.create(client_id="acme")  # matches the filter, never counted

    done = await confirm(console, csrf, sealed)

    assert (count, done.status_code) == ("3", 303)
    assert "Resolved%203%20exception" in done.headers["location"]
    assert [(await status_of(console, e["id"]))[0] for e in shown] == ["resolved"] * 3
    assert await status_of(console, later["id"]) == ("open", None)


async def test_a_row_a_colleague_claimed_since_it_was_counted_is_reported_and_the_rest_go_on(console: Api) -> None:
    rows = [await console.create(client_id="acme") for _ in range(3)]
    csrf = await sign_in(console)
    queue = await console.http.get("/console/queue", params={"client_id": "acme"})
    picked = [("csrf", csrf), ("scope", "selected"), *RESOLVE.items()]
    picked += [("ids", e["id"]) for e in rows] + [(f"v.{e['id']}", field(queue.text, f"v.{e['id']}")) for e in rows]
    count, sealed = await counted(console, picked)
    assert (await console.act(rows[1]["id"], "claim", {"assignee": "bob"})).status_code == 200

    done = await confirm(console, csrf, sealed)

    assert count == "3"
    assert "Resolved%202%20exception" in done.headers["location"]
    assert "1%20changed%20by%20someone%20else" in done.headers["location"]
    assert [(await status_of(console, e["id"])) for e in rows] == [
        ("resolved", None),
        ("claimed", "bob"),
        ("resolved", None),
    ]


async def test_a_row_claimed_before_the_count_but_after_the_page_is_a_conflict_too(console: Api) -> None:
    row = await console.create(client_id="acme")
    csrf = await sign_in(console)
    queue = await console.http.get("/console/queue", params={"client_id": "acme"})
    assert (await console.act(row["id"], "claim", {"assignee": "bob"})).status_code == 200
    form = [("csrf", csrf), ("scope", "selected"), ("action", "claim"), ("ids", row["id"])]
    _, sealed = await counted(console, [*form, (f"v.{row['id']}", field(queue.text, f"v.{row['id']}"))])

    done = await confirm(console, csrf, sealed)

    assert "Claimed%200%20exception" in done.headers["location"]
    assert await status_of(console, row["id"]) == ("claimed", "bob")


async def test_a_filter_matching_more_than_the_cap_is_refused_at_the_count(console: Api) -> None:
    for _ in range(6):
        await console.create(client_id="acme")
    csrf = await sign_in(console)

    page = await console.http.post(
        "/console/bulk", data={"csrf": csrf, "scope": "filter", "client_id": "acme", **RESOLVE}
    )

    assert page.status_code == 400
    assert "matches 6 exceptions" in page.text and "LOOPGATE_BULK_MAX_ROWS=5" in page.text


async def test_a_status_only_filter_is_refused(console: Api) -> None:
    await console.create()
    csrf = await sign_in(console)

    page = await console.http.post("/console/bulk", data={"csrf": csrf, "scope": "filter", "status": "open", **RESOLVE})

    assert page.status_code == 400


def repacked(sealed: str, change: Any) -> str:
    """The sealed set decoded, changed by `change`, packed again under the same signature."""
    payload, _, signature = sealed.rpartition(".")
    body = orjson.loads(zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    change(body)
    packed = base64.urlsafe_b64encode(zlib.compress(orjson.dumps(body))).decode().rstrip("=")
    return f"{packed}.{signature}"


def add_an_id(body: list[Any]) -> None:
    body[4].append(["exc-not-counted", 1])


def change_the_action(body: list[Any]) -> None:
    body[0] = "claim"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda sealed, other: repacked(sealed, add_an_id),
        lambda sealed, other: repacked(sealed, change_the_action),
        lambda sealed, other: sealed.rpartition(".")[0] + "." + "0" * 64,
        lambda sealed, other: sealed.rpartition(".")[0],
        lambda sealed, other: "garbage",
        lambda sealed, other: "",
        lambda sealed, other: "." * 10_000,
        lambda sealed, other: other,
    ],
    ids=[
        "an id added",
        "the action changed",
        "a forged signature",
        "no signature",
        "garbage",
        "empty",
        "dots",
        "another session's",
    ],
)
async def test_a_tampered_or_foreign_confirmation_changes_nothing(console: Api, tamper: Any) -> None:
    rows = [await console.create(client_id="acme") for _ in range(2)]
    uncounted = await console.create(client_id="acme", exception_id="exc-not-counted")
    admin_csrf = await sign_in(console, Role.ADMIN)
    _, admins = await counted(console, {"csrf": admin_csrf, "scope": "filter", "client_id": "acme", **RESOLVE})
    csrf = await sign_in(console)
    _, sealed = await counted(
        console, [("csrf", csrf), ("scope", "selected"), *RESOLVE.items(), *(("ids", e["id"]) for e in rows)]
    )

    done = await confirm(console, csrf, tamper(sealed, admins))

    assert done.status_code == 400, done.text
    assert "Nothing was changed" in done.text
    assert [await status_of(console, e["id"]) for e in [*rows, uncounted]] == [("open", None)] * 3


async def test_an_old_confirmation_is_counted_again(console: Api, clock: FakeClock) -> None:
    row = await console.create(client_id="acme")
    csrf = await sign_in(console)
    _, sealed = await counted(console, [("csrf", csrf), ("scope", "selected"), ("action", "claim"), ("ids", row["id"])])
    clock.advance(confirmation.CONFIRM_SECONDS + 1)

    done = await confirm(console, csrf, sealed)

    assert done.status_code == 400 and "too old" in done.text
    assert await status_of(console, row["id"]) == ("open", None)


def test_a_seal_expanding_past_its_bound_is_refused_before_it_is_read() -> None:
    bomb = base64.urlsafe_b64encode(zlib.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")).rstrip(b"=")
    signature = confirmation._signature("key", bomb)

    with pytest.raises(confirmation.BadConfirmation, match="too large"):
        confirmation.unseal(f"{bomb.decode()}.{signature}", key="key", now=0)
