"""Bearer tokens: 401 without a valid one, 403 when the role may not, tokens managed by admins."""

from __future__ import annotations

from tests.fixtures.api import Api, record


async def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    response = await api.http.get("/v1/exceptions")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing bearer token: send 'Authorization: Bearer <token>'"}


async def test_an_unknown_token_is_401_invalid_token(api: Api) -> None:
    response = await api.http.get("/v1/exceptions", headers={"Authorization": "Bearer lg_nope"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {"detail": "invalid, expired or revoked bearer token"}


async def test_basic_auth_is_not_a_bearer_token(api: Api) -> None:
    response = await api.http.get("/v1/exceptions", headers={"Authorization": "Basic YTpi"})

    assert response.status_code == 401


async def test_the_service_role_may_create_but_not_read(api: Api) -> None:
    created = await api.http.post("/v1/exceptions", json=record(), headers=api.auth("service"))
    listed = await api.http.get("/v1/exceptions", headers=api.auth("service"))

    assert created.status_code == 201
    assert listed.status_code == 403
    assert listed.json() == {"detail": "role 'service' may not read exceptions"}


async def test_the_operator_role_may_not_create(api: Api) -> None:
    response = await api.http.post("/v1/exceptions", json=record(), headers=api.auth("operator"))

    assert response.status_code == 403
    assert response.json() == {"detail": "role 'operator' may not create exceptions"}


async def test_health_and_metrics_need_no_token(api: Api) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await api.http.get(path)).status_code == 200, path


async def test_an_admin_creates_a_token_that_works_and_is_shown_once(api: Api) -> None:
    created = await api.http.post(
        "/v1/tokens", json={"name": "dispatcher", "role": "service"}, headers=api.auth("admin")
    )

    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["role"], body["revoked_at"]) == ("dispatcher", "service", None)
    used = await api.http.post("/v1/exceptions", json=record(), headers={"Authorization": f"Bearer {body['token']}"})
    assert used.status_code == 201
    assert used.json()["id"]
    listed = (await api.http.get("/v1/tokens", headers=api.auth("admin"))).json()
    assert body["id"] in {t["id"] for t in listed["items"]}
    assert all("token" not in t and "token_hash" not in t for t in listed["items"])


async def test_a_revoked_token_is_refused(api: Api) -> None:
    body = (
        await api.http.post("/v1/tokens", json={"name": "temp", "role": "operator"}, headers=api.auth("admin"))
    ).json()

    revoked = await api.http.delete(f"/v1/tokens/{body['id']}", headers=api.auth("admin"))
    used = await api.http.get("/v1/exceptions", headers={"Authorization": f"Bearer {body['token']}"})

    assert revoked.status_code == 204
    assert used.status_code == 401
    listed = (await api.http.get("/v1/tokens", headers=api.auth("admin"))).json()
    assert next(t for t in listed["items"] if t["id"] == body["id"])["revoked_at"] is not None


async def test_revoking_an_unknown_token_is_404(api: Api) -> None:
    response = await api.http.delete("/v1/tokens/nope", headers=api.auth("admin"))

    assert response.status_code == 404
    assert response.json() == {"detail": "no token with id 'nope'"}


async def test_an_operator_may_not_manage_tokens(api: Api) -> None:
    response = await api.http.post("/v1/tokens", json={"name": "x", "role": "admin"}, headers=api.auth("operator"))

    assert response.status_code == 403
    assert response.json() == {"detail": "role 'operator' may not manage tokens"}


async def test_an_unknown_role_is_422(api: Api) -> None:
    response = await api.http.post("/v1/tokens", json={"name": "x", "role": "root"}, headers=api.auth("admin"))

    assert response.status_code == 422
    assert response.json()["message"] == (
        "body.role: Input should be 'service', 'operator', 'admin', 'reviewer' or 'analyst'"
    )
