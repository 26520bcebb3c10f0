"""Single sign-on for the console (issue 25 item 5), through a real OpenID provider: Keycloak,
started once per session (tests/fixtures/keycloak.py). The console runs in-process; the browser is
httpx: it opens the authorization URL at Keycloak, posts Keycloak's login form and brings the
redirect back to the callback. A reviewer signed in through the provider sees its client's reviewer
queue and nothing else; every hostile callback (forged, expired or foreign ID token, replayed,
unknown or missing state, a bad code) is a 4xx page and opens no session."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import RSAKey

from loopgate.common.settings import Settings
from loopgate.resolution_api.access import tokens as api_tokens
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.app import create_app
from loopgate.resolution_api.console.sso import STATE_COOKIE
from loopgate.resolution_api.db.models import ConsoleSessionRow, SsoSignInRow
from loopgate.resolution_api.http.deps import Services
from tests.fixtures.api import UNREACHABLE_BOOTSTRAP, claim, record
from tests.fixtures.clock import FakeClock
from tests.fixtures.keycloak import Keycloak, KeycloakBrowser

pytestmark = pytest.mark.timeout(600)  # the first test waits for Keycloak to start

CONSOLE = "http://loopgate.test"  # the redirect URI registered in the realm is CONSOLE + /console/sso/callback

Tamper = Callable[[str], str]  # what a hostile token endpoint makes of the real ID token


class TamperingTransport(httpx.AsyncBaseTransport):
    """The real network to Keycloak, except that the token endpoint's ID token is replaced by
    `tamper(real_id_token)` when a test sets one (a forged or foreign token reaching the callback)."""

    def __init__(self) -> None:
        self.network = httpx.AsyncHTTPTransport()
        self.tamper: Tamper | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.network.handle_async_request(request)
        if self.tamper is None or not request.url.path.endswith("/protocol/openid-connect/token"):
            return response
        body = json.loads(await response.aread())
        if "id_token" in body:
            body["id_token"] = self.tamper(body["id_token"])
        return httpx.Response(response.status_code, json=body)

    async def aclose(self) -> None:
        await self.network.aclose()


@dataclass
class Console:
    http: httpx.AsyncClient  # the browser at the console (its own cookie jar)
    services: Services
    clock: FakeClock
    transport: TamperingTransport
    service_token: str
    browser: KeycloakBrowser
    created: dict[str, str] = field(default_factory=dict)

    async def create(self, name: str, **overrides: Any) -> str:
        response = await self.http.post(
            "/v1/exceptions", json=record(**overrides), headers={"Authorization": f"Bearer {self.service_token}"}
        )
        assert response.status_code == 201, response.text
        self.created[name] = response.json()["id"]
        return self.created[name]

    async def start(self, next_page: str | None = None) -> str:
        """/console/sso/start (with `next`, if given): where it sends the browser (Keycloak's
        authorization URL)."""
        response = await self.http.get("/console/sso/start", params={"next": next_page} if next_page else None)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(self.services.settings.sso_issuer)
        return location

    async def callback(self, url: str) -> httpx.Response:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == CONSOLE, url
        return await self.http.get(f"{parts.path}?{parts.query}")

    async def sign_in(self, username: str, next_page: str | None = None) -> httpx.Response:
        """The whole flow for `username`: the callback's response."""
        return await self.callback(await self.browser.log_in(await self.start(next_page), username))

    async def sessions(self) -> int:
        async with self.services.db.read() as db, db.begin():
            return int((await db.execute(sa.select(sa.func.count()).select_from(ConsoleSessionRow))).scalar_one())


def sso_settings(keycloak: Keycloak, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'console.db'}",
        "kafka_bootstrap": UNREACHABLE_BOOTSTRAP,
        "sweep_interval_seconds": 3600,
        "console_secure_cookie": False,  # plain http between the test's browser and the console
        **keycloak.console_settings(tmp_path, CONSOLE),
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running_console(settings: Settings, keycloak: Keycloak) -> AsyncIterator[Console]:
    clock, transport = FakeClock(), TamperingTransport()
    app = create_app(settings, clock=clock, monotonic=clock.monotonic, sso_transport=transport)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        async with services.db.write() as session, session.begin():
            _, service_token = await api_tokens.create_token(
                session=session, name="dispatcher", role=Role.SERVICE, now=clock()
            )
        browser = KeycloakBrowser(keycloak)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONSOLE) as http:
                yield Console(http, services, clock, transport, service_token, browser)
        finally:
            await browser.aclose()
            await transport.aclose()


@pytest.fixture
async def console(keycloak: Keycloak, tmp_path: Path, database_url: str) -> AsyncIterator[Console]:
    """On both stores (a sign-in is taken with DELETE ... RETURNING): SQLite and PostgreSQL."""
    async with running_console(sso_settings(keycloak, tmp_path, database_url=database_url), keycloak) as running:
        yield running


def refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text[:800]
    assert "Sign-in refused" in response.text
    assert words in response.text, response.text[:800]
    assert "loopgate_console=" not in response.headers.get("set-cookie", "")


# --- who signs in --------------------------------------------------------------------------


async def test_sign_in_page_offers_the_provider_and_keeps_the_token_form(console: Console) -> None:
    page = await console.http.get("/console/sign-in")
    assert page.status_code == 200
    assert "Sign in with Keycloak" in page.text
    assert 'href="/console/sso/start"' in page.text
    assert 'name="token"' in page.text


async def test_start_asks_for_the_code_with_pkce_s256_a_state_and_a_nonce(console: Console) -> None:
    query = parse_qs(urlsplit(await console.start()).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["loopgate-console"]
    assert query["redirect_uri"] == [f"{CONSOLE}/console/sso/callback"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256, unpadded
    assert query["state"][0] == console.http.cookies[STATE_COOKIE]
    assert len(query["nonce"][0]) >= 32
    assert "openid" in query["scope"][0].split()


async def test_a_northwind_reviewer_sees_only_northwinds_reviewer_queue(console: Console) -> None:
    northwind = await console.create("northwind claim", **claim("northwind"))
    contoso = await console.create("contoso claim", **claim("contoso"))
    bid = await console.create("northwind bid", client_id="northwind")

    response = await console.sign_in("nora")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/queue"
    queue = await console.http.get("/console/queue")
    assert queue.status_code == 200
    assert "nora" in queue.text and "(reviewer)" in queue.text
    assert northwind in queue.text
    assert contoso not in queue.text and bid not in queue.text
    assert (await console.http.get(f"/console/exceptions/{northwind}")).status_code == 200
    assert (await console.http.get(f"/console/exceptions/{contoso}")).status_code == 404
    assert (await console.http.get(f"/console/exceptions/{bid}")).status_code == 404


async def test_a_sign_in_through_the_provider_returns_to_the_page_that_sent_it(console: Console) -> None:
    northwind = await console.create("northwind claim", **claim("northwind"))
    page = f"/console/exceptions/{quote(northwind, safe='')}"
    signed_out = await console.http.get(page)
    assert signed_out.status_code == 303
    sign_in = await console.http.get(signed_out.headers["location"])
    assert f'href="/console/sso/start?next={quote(page, safe="/")}"' in sign_in.text

    response = await console.sign_in("nora", next_page=page)

    assert response.status_code == 303, response.text
    assert response.headers["location"] == page
    assert "loopgate_sso_next=" in response.headers.get("set-cookie", "")  # deleted with the state
    assert (await console.http.get(page)).status_code == 200


@pytest.mark.parametrize("hostile", ["//evil.example/console", "https://evil.example/console", "/console/%0d%0aX"])
async def test_a_hostile_next_through_the_provider_returns_to_the_queue(console: Console, hostile: str) -> None:
    response = await console.sign_in("nora", next_page=hostile)

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/queue"


async def test_the_agency_operator_group_signs_in_as_an_agency_wide_operator(console: Console) -> None:
    northwind = await console.create("northwind claim", **claim("northwind"))
    contoso = await console.create("contoso claim", **claim("contoso"))

    response = await console.sign_in("otto")

    assert response.status_code == 303, response.text
    queue = await console.http.get("/console/queue", params={"queue": "reviewers-contoso"})
    assert "otto" in queue.text and "(operator)" in queue.text
    assert contoso in queue.text
    assert (await console.http.get(f"/console/exceptions/{northwind}")).status_code == 200


async def test_a_person_in_no_mapped_group_is_refused_with_a_page(console: Console) -> None:
    response = await console.sign_in("milo")

    refused(response, 403, "none of your groups gives access")
    assert "milo" in response.text
    assert await console.sessions() == 0
    assert (await console.http.get("/console/queue")).status_code == 303  # to the sign-in page


# --- hostile callbacks ---------------------------------------------------------------------


def _claims_of(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _header_of(id_token: str) -> dict[str, Any]:
    header = id_token.split(".")[0]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return value


async def test_an_id_token_signed_by_another_key_is_refused(console: Console) -> None:
    attacker = RSAKey.generate_key(2048)

    def forge(real: str) -> str:  # the real claims, the provider's key id, another key's signature
        return jwt.encode({"alg": "RS256", "kid": _header_of(real)["kid"]}, _claims_of(real), attacker)

    console.transport.tamper = forge
    refused(await console.sign_in("nora"), 401, "is not signed by the provider")
    assert await console.sessions() == 0


async def test_an_id_token_with_a_key_the_provider_does_not_have_is_refused(console: Console) -> None:
    attacker = RSAKey.generate_key(2048)
    console.transport.tamper = lambda real: jwt.encode({"alg": "RS256", "kid": "mine"}, _claims_of(real), attacker)
    refused(await console.sign_in("nora"), 401, "is not signed by the provider")


async def test_an_unsigned_id_token_is_refused(console: Console) -> None:
    def unsigned(real: str) -> str:
        header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
        return f"{header}.{real.split('.')[1]}."

    console.transport.tamper = unsigned
    refused(await console.sign_in("nora"), 401, "is not a JWT")


async def test_an_expired_id_token_is_refused(console: Console) -> None:
    authorization_url = await console.start()
    redirect = await console.browser.log_in(authorization_url, "nora")
    console.clock.advance(5 * 60)  # the realm's ID tokens live 60 s; the sign-in itself may take 10 min

    refused(await console.callback(redirect), 401, "has expired")
    assert await console.sessions() == 0


async def test_an_id_token_for_another_application_is_refused(console: Console, keycloak: Keycloak) -> None:
    foreign = await keycloak.id_token_for_other_client("nora")
    assert _claims_of(foreign)["aud"] == "another-app"
    console.transport.tamper = lambda real: foreign

    refused(await console.sign_in("nora"), 401, "was issued for another application")


async def test_a_replayed_state_is_refused(console: Console) -> None:
    redirect = await console.browser.log_in(await console.start(), "nora")
    assert (await console.callback(redirect)).status_code == 303
    console.http.cookies.set(STATE_COOKIE, parse_qs(urlsplit(redirect).query)["state"][0], path="/console/sso")

    refused(await console.callback(redirect), 400, "already used or has expired")
    assert await console.sessions() == 1  # the first sign-in's alone


async def test_a_state_older_than_the_sign_in_time_is_refused(console: Console) -> None:
    redirect = await console.browser.log_in(await console.start(), "nora")
    console.clock.advance(console.services.settings.sso_sign_in_seconds + 1)

    refused(await console.callback(redirect), 400, "already used or has expired")


async def test_an_unknown_state_is_refused(console: Console) -> None:
    console.http.cookies.set(STATE_COOKIE, "made-up-state", path="/console/sso")
    refused(await console.http.get("/console/sso/callback?state=made-up-state&code=abc"), 400, "already used")


async def test_a_callback_without_state_is_refused(console: Console) -> None:
    await console.start()
    refused(await console.http.get("/console/sso/callback?code=abc"), 400, "has no state")


async def test_a_state_from_another_browser_is_refused(console: Console) -> None:
    redirect = await console.browser.log_in(await console.start(), "nora")
    console.http.cookies.clear()  # the victim's browser, handed the attacker's callback link

    refused(await console.callback(redirect), 400, "not started in this browser")
    assert await console.sessions() == 0


@pytest.mark.parametrize("code", ["", "x" * 5000], ids=["empty", "oversized"])
async def test_a_missing_code_is_refused(console: Console, code: str) -> None:
    state = parse_qs(urlsplit(await console.start()).query)["state"][0]
    response = await console.http.get("/console/sso/callback", params={"state": state, "code": code})

    refused(response, 400, "sent no sign-in code")


async def test_a_garbage_code_is_refused_by_the_provider_and_then_by_the_console(console: Console) -> None:
    state = parse_qs(urlsplit(await console.start()).query)["state"][0]
    response = await console.http.get("/console/sso/callback", params={"state": state, "code": "garbage"})

    refused(response, 400, "did not accept this sign-in")
    assert await console.sessions() == 0


async def test_a_provider_error_is_refused_with_its_code(console: Console) -> None:
    state = parse_qs(urlsplit(await console.start()).query)["state"][0]
    response = await console.http.get("/console/sso/callback", params={"state": state, "error": "access_denied"})

    refused(response, 401, "access_denied")


async def test_a_provider_error_that_is_not_a_code_is_not_shown(console: Console) -> None:
    state = parse_qs(urlsplit(await console.start()).query)["state"][0]
    phishing = "Your account is locked: call +1 555 0100"
    response = await console.http.get("/console/sso/callback", params={"state": state, "error": phishing})

    refused(response, 401, "no reason given")
    assert "555" not in response.text


async def test_a_sign_in_under_way_is_kept_hashed_and_taken_by_its_callback(console: Console) -> None:
    state = parse_qs(urlsplit(await console.start()).query)["state"][0]
    async with console.services.db.read() as db, db.begin():
        ids = (await db.execute(sa.select(SsoSignInRow.id))).scalars().all()
    assert len(ids) == 1 and state not in ids[0]

    await console.http.get("/console/sso/callback", params={"state": state, "code": "garbage"})

    async with console.services.db.read() as db, db.begin():
        assert (await db.execute(sa.select(sa.func.count()).select_from(SsoSignInRow))).scalar_one() == 0


async def test_without_single_sign_on_the_routes_answer_404_and_the_page_has_no_button(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}", kafka_bootstrap=UNREACHABLE_BOOTSTRAP
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=CONSOLE) as http:
            assert (await http.get("/console/sso/start")).status_code == 404
            assert (await http.get("/console/sso/callback?state=a&code=b")).status_code == 404
            assert "Sign in with" not in (await http.get("/console/sign-in")).text


async def test_a_provider_that_does_not_answer_is_a_503_page(keycloak: Keycloak, tmp_path: Path) -> None:
    settings = sso_settings(keycloak, tmp_path, sso_issuer="http://127.0.0.1:9/realms/nowhere")
    async with running_console(settings, keycloak) as running:
        response = await running.http.get("/console/sso/start")
    refused(response, 503, "does not answer")
