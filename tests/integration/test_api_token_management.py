"""Tokens as credentials people manage (issue 25): a scope, expiry, last use, rotation with a grace
period, unique names, the reserved `system:` prefix, and the audit log of every change."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
async def api(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    async with api_factory(api_settings.model_copy(update={"token_cache_seconds": 5.0}), clock) as running:
        yield running


async def create(api: Api, **body: object) -> dict[str, object]:
    response = await api.http.post("/v1/tokens", json=body, headers=api.auth(Role.ADMIN))
    assert response.status_code == 201, response.text
    return dict(response.json())


def bearer(secret: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_reviewer_token_carries_its_clients_and_says_so(api: Api) -> None:
    token = await create(api, name="dana (northwind)", role="reviewer", clients=["northwind", "northwind"])

    me = await api.http.get("/v1/whoami", headers=bearer(token["token"]))

    assert token["clients"] == ["northwind"]
    assert me.json() == {
        "name": "dana (northwind)",
        "role": "reviewer",
        "scope": "clients northwind (queues reviewers-northwind)",
        "clients": ["northwind"],
        "queues": ["reviewers-northwind"],
        "expires_at": None,
    }


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"name": "dana", "role": "reviewer"}, "clients: a reviewer token must name the clients it serves"),
        ({"name": "system:sla", "role": "operator"}, "name: the prefix 'system:' is reserved"),
        ({"name": "eve\r\nforged", "role": "operator"}, "name: control characters are not allowed"),
        ({"name": "x", "role": "reviewer", "clients": ["a b"]}, "clients: 'a b' is not a client id"),
        ({"name": "x", "role": "operator", "expires_at": "2026-12-07T08:00:00Z"}, "expires_at: must lie in the future"),
    ],
)
async def test_a_token_that_cannot_be_is_a_400_naming_the_field(api: Api, body: dict[str, object], detail: str) -> None:
    response = await api.http.post("/v1/tokens", json=body, headers=api.auth(Role.ADMIN))

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(detail)


async def test_two_active_tokens_never_share_a_name_but_a_revoked_ones_name_is_free(api: Api) -> None:
    first = await create(api, name="alice", role="operator")

    again = await api.http.post("/v1/tokens", json={"name": "alice", "role": "admin"}, headers=api.auth(Role.ADMIN))
    await api.http.delete(f"/v1/tokens/{first['id']}", headers=api.auth(Role.ADMIN))
    after_revoke = await create(api, name="alice", role="operator")

    assert again.status_code == 409
    assert again.json()["detail"] == "an active token is named 'alice' already: pick another name, or revoke that one"
    assert after_revoke["name"] == "alice"


async def test_an_expired_token_is_refused_even_from_the_cache(api: Api, clock: FakeClock) -> None:
    token = await create(api, name="temp", role="operator", expires_at="2026-12-07T09:00:03Z")
    assert (await api.http.get("/v1/whoami", headers=bearer(token["token"]))).status_code == 200  # now cached

    clock.advance(4)  # past its expiry, within the cache's 5 s
    refused = await api.http.get("/v1/whoami", headers=bearer(token["token"]))

    assert refused.status_code == 401


async def test_rotation_gives_a_new_secret_and_the_old_one_works_for_the_grace_period(
    api: Api, clock: FakeClock
) -> None:
    token = await create(api, name="dispatcher-2", role="operator")

    rotated = await api.http.post(
        f"/v1/tokens/{token['id']}/rotate", json={"grace_seconds": 60}, headers=api.auth(Role.ADMIN)
    )
    new = rotated.json()["token"]
    old_within_grace = await api.http.get("/v1/whoami", headers=bearer(token["token"]))
    clock.advance(61)
    old_after_grace = await api.http.get("/v1/whoami", headers=bearer(token["token"]))
    new_after_grace = await api.http.get("/v1/whoami", headers=bearer(new))

    assert rotated.status_code == 200 and new != token["token"]
    assert rotated.json()["previous_valid_until"] == "2026-12-07T09:01:00Z"
    assert (old_within_grace.status_code, old_after_grace.status_code, new_after_grace.status_code) == (200, 401, 200)


async def test_rotation_without_grace_ends_the_old_secret_at_once(api: Api) -> None:
    token = await create(api, name="rotated-now", role="operator")
    await api.http.get("/v1/whoami", headers=bearer(token["token"]))  # cached

    await api.http.post(f"/v1/tokens/{token['id']}/rotate", json={"grace_seconds": 0}, headers=api.auth(Role.ADMIN))

    assert (await api.http.get("/v1/whoami", headers=bearer(token["token"]))).status_code == 401


@pytest.mark.parametrize("grace", [-1, 30 * 86400 + 1, "soon", None])
async def test_an_odd_grace_is_a_422(api: Api, grace: object) -> None:
    token = await create(api, name="g", role="operator")

    response = await api.http.post(
        f"/v1/tokens/{token['id']}/rotate", json={"grace_seconds": grace}, headers=api.auth(Role.ADMIN)
    )

    assert response.status_code == 422


async def test_rotating_a_revoked_or_unknown_token_says_so(api: Api) -> None:
    token = await create(api, name="gone", role="operator")
    await api.http.delete(f"/v1/tokens/{token['id']}", headers=api.auth(Role.ADMIN))

    revoked = await api.http.post(f"/v1/tokens/{token['id']}/rotate", json={}, headers=api.auth(Role.ADMIN))
    unknown = await api.http.post("/v1/tokens/nope/rotate", json={}, headers=api.auth(Role.ADMIN))

    assert (revoked.status_code, unknown.status_code) == (409, 404)


async def test_last_use_is_recorded_at_most_once_a_minute(api: Api, clock: FakeClock) -> None:
    token = await create(api, name="busy", role="operator")

    def last_used(items: list[dict[str, object]]) -> object:
        return next(t["last_used_at"] for t in items if t["id"] == token["id"])

    await api.http.get("/v1/whoami", headers=bearer(token["token"]))
    clock.advance(30)
    api.services.tokens.cache.forget(str(token["id"]))
    await api.http.get("/v1/whoami", headers=bearer(token["token"]))
    first = last_used((await api.http.get("/v1/tokens", headers=api.auth(Role.ADMIN))).json()["items"])
    clock.advance(31)
    api.services.tokens.cache.forget(str(token["id"]))
    await api.http.get("/v1/whoami", headers=bearer(token["token"]))
    second = last_used((await api.http.get("/v1/tokens", headers=api.auth(Role.ADMIN))).json()["items"])

    assert (first, second) == ("2026-12-07T09:00:00Z", "2026-12-07T09:01:01Z")


async def test_every_change_to_a_token_is_in_the_audit_log_newest_first_and_paged(api: Api) -> None:
    token = await create(api, name="audited", role="analyst", clients=["tailspin"])
    await api.http.post(f"/v1/tokens/{token['id']}/rotate", json={"grace_seconds": 5}, headers=api.auth(Role.ADMIN))
    await api.http.delete(f"/v1/tokens/{token['id']}", headers=api.auth(Role.ADMIN))

    first = (await api.http.get("/v1/audit", params={"limit": 2}, headers=api.auth(Role.ADMIN))).json()
    rest = (
        await api.http.get("/v1/audit", params={"before": first["next_before"]}, headers=api.auth(Role.ADMIN))
    ).json()

    entries = [(e["actor"], e["action"], e["target"]) for e in first["items"] + rest["items"]]
    assert entries == [
        ("admin-tester", "token.revoked", token["id"]),
        ("admin-tester", "token.rotated", token["id"]),
        ("admin-tester", "token.created", token["id"]),
    ]
    assert first["items"][1]["detail"] == {"name": "audited", "grace_seconds": 5}
    assert rest["items"][0]["detail"] == {"name": "audited", "role": "analyst", "clients": ["tailspin"]}
    assert rest["next_before"] is None


async def test_an_audit_cursor_past_every_id_reads_from_the_newest(api: Api) -> None:
    await create(api, name="newest", role="operator")

    page = await api.http.get("/v1/audit", params={"before": "9" * 18}, headers=api.auth(Role.ADMIN))

    assert page.status_code == 200, page.text
    assert page.json()["items"][0]["detail"]["name"] == "newest"


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"before": 0}, {"before": "x"}, {"limit": -1}, {"before": "9" * 20}]
)
async def test_odd_audit_paging_is_a_422(api: Api, params: dict[str, object]) -> None:
    response = await api.http.get("/v1/audit", params=params, headers=api.auth(Role.ADMIN))

    assert response.status_code == 422


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.REVIEWER, Role.ANALYST, Role.SERVICE])
async def test_only_an_admin_reads_the_audit_log(api: Api, role: Role) -> None:
    response = await api.http.get("/v1/audit", headers=api.auth(role))

    assert response.status_code == 403
