"""Every route of the OpenAPI document and every console page, for each scoped principal, in
scope and out of scope, reading and changing (issue 25). Out of scope is always the same 404 as a
missing exception and never changes a row; a route added without a decision here fails
`test_every_route_has_a_scope_decision`."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import ROLE_PERMISSIONS, Permission, Role
from loopgate.resolution_api.app import create_app
from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow
from tests.fixtures.api import Api, ApiFactory, claim

IN_AN_HOUR = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()

# What each route does with a scope. "exception": names one exception (out of scope: 404);
# "collection": lists, counts or acts on many (out of scope: left out); "agency": agency-wide
# tokens only; "silence": a scoped token's own clients' silences; "review": one exception's second
# review (out of scope is the 404 of no review: review/flow.py reads through the scope); "self" and
# "create" need none (`/v1/oncall` is the schedules: people, not exceptions).
API_DECISIONS: dict[tuple[str, str], tuple[str, Permission | None, Any]] = {
    ("POST", "/v1/exceptions"): ("create", Permission.CREATE, None),
    ("POST", "/v1/exceptions/batch"): ("create", Permission.CREATE, None),
    ("GET", "/v1/exceptions"): ("collection", Permission.READ, None),
    ("GET", "/v1/approvals"): ("collection", Permission.READ, None),
    ("GET", "/v1/reviews"): ("collection", Permission.WORK, None),
    ("GET", "/v1/reviews/{exception_id}"): ("review", Permission.READ, None),
    ("POST", "/v1/reviews/{exception_id}/decision"): ("review", Permission.WORK, None),
    ("GET", "/v1/stats/agreement"): ("collection", Permission.READ, None),
    ("GET", "/v1/oncall"): ("self", Permission.SEE_ONCALL, None),
    ("POST", "/v1/exceptions/bulk-resolve"): ("collection", Permission.BULK_WORK, None),
    ("POST", "/v1/exceptions/bulk"): ("collection", Permission.BULK_WORK, None),
    ("GET", "/v1/stats/verdicts"): ("collection", Permission.READ, None),
    ("GET", "/v1/export/training-data"): ("collection", Permission.READ, None),
    ("GET", "/v1/export/label-studio"): ("collection", Permission.READ, None),
    ("GET", "/v1/export/huggingface"): ("collection", Permission.READ, None),
    ("GET", "/v1/export/label-studio/config"): ("self", Permission.READ, None),  # a fixed text: no rows
    ("GET", "/v1/exceptions/{exception_id}"): ("exception", Permission.READ, None),
    ("GET", "/v1/exceptions/{exception_id}/history"): ("exception", Permission.READ, None),
    ("POST", "/v1/exceptions/{exception_id}/claim"): ("exception", Permission.WORK, {}),
    ("POST", "/v1/exceptions/{exception_id}/unclaim"): ("exception", Permission.WORK, None),
    ("POST", "/v1/exceptions/{exception_id}/resolve"): (
        "exception",
        Permission.WORK,
        {"decision": "confirmed", "reason": "r"},
    ),
    ("POST", "/v1/exceptions/{exception_id}/escalate"): ("exception", Permission.WORK, {"reason": "r"}),
    ("POST", "/v1/exceptions/{exception_id}/snooze"): ("exception", Permission.WORK, {"until": IN_AN_HOUR}),
    ("POST", "/v1/exceptions/{exception_id}/reopen"): ("exception", Permission.REOPEN, {"reason": "r"}),
    ("POST", "/v1/tokens"): ("agency", Permission.MANAGE_TOKENS, None),
    ("GET", "/v1/tokens"): ("agency", Permission.MANAGE_TOKENS, None),
    ("POST", "/v1/tokens/{token_id}/rotate"): ("agency", Permission.MANAGE_TOKENS, None),
    ("DELETE", "/v1/tokens/{token_id}"): ("agency", Permission.MANAGE_TOKENS, None),
    ("GET", "/v1/audit"): ("agency", Permission.MANAGE_TOKENS, None),
    ("GET", "/v1/whoami"): ("self", None, None),
    ("GET", "/v1/silences"): ("silence", Permission.SILENCE, None),
    ("POST", "/v1/silences"): ("silence", Permission.SILENCE, None),
    ("GET", "/v1/silences/{silence_id}"): ("silence", Permission.SILENCE, None),
    ("POST", "/v1/silences/{silence_id}/expire"): ("silence", Permission.SILENCE, None),
    ("GET", "/v1/silences/{silence_id}/history"): ("silence", Permission.SILENCE, None),
    ("GET", "/v1/admin/notifications/set-aside"): ("agency", Permission.SEE_UNDELIVERED, None),
    ("GET", "/v1/admin/notifications/set-aside-events"): ("agency", Permission.SEE_UNDELIVERED, None),
    ("GET", "/v1/admin/outcomes/set-aside"): ("agency", Permission.SEE_UNDELIVERED, None),
}
CONSOLE_DECISIONS: dict[tuple[str, str], str] = {
    ("GET", "/console"): "none",
    ("GET", "/console/"): "none",
    ("GET", "/console/sign-in"): "none",
    ("POST", "/console/sign-in"): "none",
    ("POST", "/console/sign-out"): "none",
    ("GET", "/console/queue"): "collection",
    ("GET", "/console/exceptions/{exception_id}"): "exception",
    ("GET", "/console/exceptions/{exception_id}/history"): "exception",
    ("POST", "/console/exceptions/{exception_id}/{action}"): "exception",
    ("POST", "/console/bulk"): "collection",
    ("GET", "/console/silences"): "silence",
    ("POST", "/console/silences"): "silence",
    ("POST", "/console/silences/{silence_id}/expire"): "silence",
    ("GET", "/console/sso/start"): "none",
    ("GET", "/console/sso/callback"): "none",
}
# The scoped principals: name, role, clients; `inside` is what each may see of the world below.
PRINCIPALS = [
    ("northwind-reviewer", Role.REVIEWER, ["northwind"]),
    ("contoso-operator", Role.OPERATOR, ["contoso"]),
    ("contoso-admin", Role.ADMIN, ["contoso"]),
    ("contoso-analyst", Role.ANALYST, ["contoso"]),
]


def test_every_route_has_a_scope_decision() -> None:
    app = create_app()
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path.startswith("/v1/")
    }
    console = {
        (method, route.path)
        for route in app.routes
        if getattr(route, "path", "").startswith("/console") and route.path != "/console/static"
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }
    assert documented == set(API_DECISIONS)
    assert console <= set(CONSOLE_DECISIONS), console - set(CONSOLE_DECISIONS)


@dataclass
class World:
    api: Api
    ids: dict[str, str]  # northwind_claim, contoso_claim, northwind_bid, contoso_bid
    tokens: dict[str, str]

    def inside(self, who: str) -> set[str]:
        return {
            "northwind-reviewer": {self.ids["northwind_claim"]},
            "contoso-operator": {self.ids["contoso_claim"], self.ids["contoso_bid"]},
            "contoso-admin": {self.ids["contoso_claim"], self.ids["contoso_bid"]},
            "contoso-analyst": {self.ids["contoso_claim"], self.ids["contoso_bid"]},
        }[who]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def world(api_factory: ApiFactory, api_settings: Settings) -> AsyncIterator[World]:
    async with api_factory(api_settings.model_copy(update={"console_secure_cookie": False})) as api:
        ids = {
            "northwind_claim": (await api.create(**claim("northwind")))["id"],
            "contoso_claim": (await api.create(**claim("contoso")))["id"],
            "northwind_bid": (await api.create(client_id="northwind"))["id"],
            "contoso_bid": (await api.create(client_id="contoso"))["id"],
        }
        tokens = {}
        for name, role, clients in PRINCIPALS:
            made = await api.http.post(
                "/v1/tokens", json={"name": name, "role": role.value, "clients": clients}, headers=api.auth("admin")
            )
            assert made.status_code == 201, made.text
            tokens[name] = made.json()["token"]
        yield World(api, ids, tokens)


async def snapshot(world: World) -> dict[str, tuple[str, int, int]]:
    """Every exception's status, version and number of history rows (read agency-wide)."""
    async with world.api.services.db.read() as session, session.begin():
        rows = (await session.execute(sa.select(ExceptionRow.id, ExceptionRow.status, ExceptionRow.version))).all()
        counts = dict(
            (
                await session.execute(
                    sa.select(ExceptionEventRow.exception_id, sa.func.count()).group_by(ExceptionEventRow.exception_id)
                )
            ).all()
        )
    return {i: (status, version, counts.get(i, 0)) for i, status, version in rows}


EXCEPTION_ROUTES = [(m, p, perm, body) for (m, p), (kind, perm, body) in API_DECISIONS.items() if kind == "exception"]
CASES = [(who, role, m, p, perm, body) for who, role, _ in PRINCIPALS for m, p, perm, body in EXCEPTION_ROUTES]


@pytest.mark.parametrize(
    ("who", "role", "method", "path", "permission", "body"), CASES, ids=[f"{c[0]} {c[2]} {c[3]}" for c in CASES]
)
async def test_out_of_scope_is_404_and_changes_nothing_in_scope_is_served(
    world: World, who: str, role: Role, method: str, path: str, permission: Permission, body: Any
) -> None:
    allowed = permission in ROLE_PERMISSIONS[role]
    outside = next(i for i in world.ids.values() if i not in world.inside(who))
    inside = sorted(world.inside(who))[0]
    before = await snapshot(world)

    out = await world.api.http.request(method, path.format(exception_id=outside), json=body, headers=world.auth(who))
    after_out = await snapshot(world)
    served = await world.api.http.request(method, path.format(exception_id=inside), json=body, headers=world.auth(who))

    assert out.status_code == (404 if allowed else 403), out.text
    assert after_out == before
    if allowed:
        assert served.status_code not in (404, 500), served.text
    else:
        assert served.status_code == 403


@pytest.mark.parametrize("who", [p[0] for p in PRINCIPALS])
async def test_collections_hold_only_what_the_scope_covers(world: World, who: str) -> None:
    api, auth = world.api, world.auth(who)
    listed = await api.http.get("/v1/exceptions", params={"limit": 200}, headers=auth)
    export = await api.http.get("/v1/export/training-data", headers=auth)
    role = next(r for name, r, _ in PRINCIPALS if name == who)
    before = await snapshot(world)
    bulk = await api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={"ids": sorted(world.ids.values()), "decision": "dismissed", "reason": "matrix"},
        headers=auth,
    )
    after = await snapshot(world)

    assert {e["id"] for e in listed.json()["items"]} == world.inside(who)
    assert export.status_code == 200
    changed = {i for i in before if before[i] != after[i]}
    if Permission.BULK_WORK in ROLE_PERMISSIONS[role]:
        assert bulk.status_code == 200, bulk.text
        assert changed == world.inside(who)
    else:
        assert (bulk.status_code, changed) == (403, set())


@pytest.mark.parametrize("who", [p[0] for p in PRINCIPALS])
async def test_agency_wide_routes_refuse_a_scoped_token(world: World, who: str) -> None:
    for (method, path), (kind, _, _) in API_DECISIONS.items():
        if kind != "agency":
            continue
        response = await world.api.http.request(method, path.format(token_id="x"), headers=world.auth(who))
        assert response.status_code == 403, (method, path, response.text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:300]
    return found.group(1)


@pytest.mark.parametrize("who", [p[0] for p in PRINCIPALS])
async def test_console_pages_show_only_the_scope_and_out_of_scope_is_404(world: World, who: str) -> None:
    http = world.api.http
    http.cookies.clear()
    page = await http.get("/console/sign-in")
    signed = await http.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "token": world.tokens[who]}, follow_redirects=True
    )
    assert signed.status_code == 200, signed.text[:300]
    csrf = csrf_of(signed.text)
    outside = next(i for i in world.ids.values() if i not in world.inside(who))
    before = await snapshot(world)

    shown = {i for i in world.ids.values() if i in signed.text}
    pages = [
        await http.get(f"/console/exceptions/{outside}"),
        await http.get(f"/console/exceptions/{outside}/history"),
    ]
    acted = await http.post(f"/console/exceptions/{outside}/claim", data={"csrf": csrf, "version": "1"})

    assert shown == world.inside(who)
    assert [p.status_code for p in pages] == [404, 404]
    role = next(r for name, r, _ in PRINCIPALS if name == who)
    assert acted.status_code == (404 if Permission.WORK in ROLE_PERMISSIONS[role] else 403)
    assert await snapshot(world) == before
    inside_page = await http.get(f"/console/exceptions/{sorted(world.inside(who))[0]}")
    assert inside_page.status_code == 200
