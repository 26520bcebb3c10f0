"""Console sessions kept on the server (issue 25): the cookie is a random session id, never the
token; sign-out, idling, age and the token's revocation each end a session at once, on every API
replica (two apps on one database here); a CSRF value belongs to its session alone."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.console.session import SESSION_COOKIE
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

MAX = 12 * 3600


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC))


@pytest.fixture
async def replicas(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[Api, Api]]:
    """Two API processes' apps on one PostgreSQL database, as behind a load balancer; on SQLite,
    which takes one API process, the one app twice."""
    settings = api_settings.model_copy(update={"console_secure_cookie": False, "token_cache_seconds": 0.0})
    if settings.database_url.startswith("sqlite"):
        async with api_factory(settings, clock) as only:
            yield only, only
        return
    async with api_factory(settings, clock) as first, api_factory(settings, clock) as second:
        yield first, second


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


async def sign_in(api: Api, token: str) -> tuple[str, str]:
    """Sign in through the form; the session cookie and the CSRF value of the session's forms."""
    page = await api.http.get("/console/sign-in")
    response = await api.http.post("/console/sign-in", data={"csrf": csrf_of(page.text), "token": token})
    assert response.status_code == 303, response.text
    cookie = api.http.cookies[SESSION_COOKIE]
    queue = await api.http.get("/console/queue")
    return cookie, csrf_of(queue.text)


def carry(api: Api, cookie: str) -> None:
    """The browser now holds this session cookie, and nothing else."""
    api.http.cookies.clear()
    api.http.cookies.set(SESSION_COOKIE, cookie)


async def queue_status(api: Api, cookie: str) -> int:
    carry(api, cookie)
    return (await api.http.get("/console/queue")).status_code


async def test_the_cookie_is_a_session_id_not_the_token(replicas: tuple[Api, Api]) -> None:
    api, _ = replicas
    token = api.tokens[Role.OPERATOR]

    cookie, _ = await sign_in(api, token)

    assert cookie != token and token not in cookie
    assert await queue_status(api, cookie) == 200
    assert await queue_status(api, token) == 303  # the token itself is no session


async def test_a_session_opened_on_one_replica_works_on_the_other(replicas: tuple[Api, Api]) -> None:
    first, second = replicas
    cookie, _ = await sign_in(first, first.tokens[Role.OPERATOR])

    assert await queue_status(second, cookie) == 200


async def test_sign_out_ends_the_session_on_every_replica(replicas: tuple[Api, Api]) -> None:
    first, second = replicas
    cookie, csrf = await sign_in(first, first.tokens[Role.OPERATOR])

    carry(first, cookie)
    out = await first.http.post("/console/sign-out", data={"csrf": csrf})

    assert out.status_code == 303
    assert await queue_status(first, cookie) == 303  # a copied cookie is worth nothing after sign-out
    assert await queue_status(second, cookie) == 303


async def test_an_idle_session_ends_and_a_used_one_lives_until_its_maximum_age(
    replicas: tuple[Api, Api], clock: FakeClock
) -> None:
    first, second = replicas
    idle, _ = await sign_in(first, first.tokens[Role.OPERATOR])
    used, _ = await sign_in(first, first.tokens[Role.ADMIN])

    for _ in range(7):  # used every 100 minutes: never idle for 2 hours
        clock.advance(100 * 60)
        assert await queue_status(second, used) == 200
    idle_status = await queue_status(second, idle)  # unused for 700 minutes
    clock.advance(MAX - 7 * 100 * 60 - 60)
    just_before = await queue_status(first, used)
    clock.advance(61)
    after = await queue_status(first, used)

    assert (idle_status, just_before, after) == (303, 200, 303)


async def test_revoking_the_token_ends_its_sessions_at_once_on_every_replica(replicas: tuple[Api, Api]) -> None:
    first, second = replicas
    created = await first.http.post(
        "/v1/tokens", json={"name": "carol", "role": "operator"}, headers=first.auth(Role.ADMIN)
    )
    cookie, _ = await sign_in(first, created.json()["token"])
    assert await queue_status(second, cookie) == 200

    await second.http.delete(f"/v1/tokens/{created.json()['id']}", headers=second.auth(Role.ADMIN))

    assert await queue_status(first, cookie) == 303
    assert await queue_status(second, cookie) == 303


async def test_a_csrf_value_from_another_session_is_refused(replicas: tuple[Api, Api]) -> None:
    first, second = replicas
    exc = await first.create()
    _, stolen = await sign_in(first, first.tokens[Role.ADMIN])
    mine, own = await sign_in(second, second.tokens[Role.OPERATOR])

    carry(second, mine)
    form = {"version": str(exc["version"])}
    forged = await second.http.post(f"/console/exceptions/{exc['id']}/claim", data={**form, "csrf": stolen})
    honest = await second.http.post(f"/console/exceptions/{exc['id']}/claim", data={**form, "csrf": own})

    assert stolen != own
    assert forged.status_code == 403 and "no valid CSRF token" in forged.text
    assert honest.status_code == 303, honest.text


async def test_each_sign_in_is_a_new_session_with_its_own_csrf_value(replicas: tuple[Api, Api]) -> None:
    api, _ = replicas
    first_cookie, first_csrf = await sign_in(api, api.tokens[Role.OPERATOR])
    api.http.cookies.clear()
    second_cookie, second_csrf = await sign_in(api, api.tokens[Role.OPERATOR])

    assert first_cookie != second_cookie and first_csrf != second_csrf


@pytest.mark.parametrize("cookie", ["", "x" * 5000, "é\u202e", "' OR 1=1 --", "\x00"])
async def test_odd_cookies_are_no_session(replicas: tuple[Api, Api], cookie: str) -> None:
    api, _ = replicas
    api.http.cookies.clear()

    try:
        response = await api.http.get("/console/queue", headers={"cookie": f"{SESSION_COOKIE}={cookie}"})
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return  # not even sendable as a header

    assert response.status_code == 303
