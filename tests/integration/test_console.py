"""The console's pages in-process (httpx through the ASGI app, no browser): sign-in and its cookie,
CSRF on every form, roles, escaping of hostile event strings, the stale-page conflict, the
correction editor and bulk actions with their confirmation. The browser tests are in tests/e2e."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.exceptions import reading
from tests.fixtures.api import UNREACHABLE_BOOTSTRAP, Api, ApiFactory

XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


async def sign_in(api: Api, role: Role = Role.OPERATOR) -> str:
    """Sign the client in with `role`'s token; the CSRF value of its forms."""
    page = await api.http.get("/console/sign-in")
    response = await api.http.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "token": api.tokens[role]}, follow_redirects=True
    )
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def content_record(**overrides: Any) -> dict[str, Any]:
    caption = overrides.pop("caption", "Glow all day. Clinically proven to cure dry skin in one night!")
    event = {
        "id": "evt-content-1",
        "type": "content.generated",
        "source": "content-pipeline",
        "data": {
            "content_id": "post-1",
            "client_id": "northwind",
            "platform": "instagram",
            "caption": caption,
            "model": "copywriter-v3",
            "brand_safety_score": 0.41,
            "product_claims": ["clinically proven"],
        },
    }
    return {
        "rule_id": "brand_safety",
        "kind": "policy",
        "severity": "high",
        "source": "content-pipeline.events",
        "event_type": "content.generated",
        "subject": "post-1",
        "summary": "Brand safety score 0.41 of post-1 is below 0.7",
        "observed": {"brand_safety_score": 0.41},
        "threshold": {"brand_safety_min": 0.7},
        "event": event,
        **overrides,
    }


async def test_the_queue_needs_a_session(console: Api) -> None:
    response = await console.http.get("/console/queue")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in"


async def test_sign_in_sets_an_http_only_same_site_cookie_and_shows_the_queue(console: Api) -> None:
    await console.create(summary="Bid 9.00 over the cap")
    page = await console.http.get("/console/sign-in")
    response = await console.http.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "token": console.tokens[Role.OPERATOR]}
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
    queue = await console.http.get("/console/queue")
    assert "Bid 9.00 over the cap" in queue.text
    assert "operator-tester" in queue.text


async def test_the_cookie_is_secure_by_default(api_factory: ApiFactory, tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}", kafka_bootstrap=UNREACHABLE_BOOTSTRAP)
    async with api_factory(settings) as api:
        page = await api.http.get("/console/sign-in")
        assert "secure" in page.headers["set-cookie"].lower()


@pytest.mark.parametrize("token", ["lg_not-a-token", "", "x" * 5000])
async def test_a_bad_token_is_refused(console: Api, token: str) -> None:
    page = await console.http.get("/console/sign-in")
    response = await console.http.post("/console/sign-in", data={"csrf": csrf_of(page.text), "token": token})
    assert response.status_code == 401
    assert "unknown or revoked" in response.text
    assert (await console.http.get("/console/queue")).status_code == 303


async def test_a_service_token_may_not_sign_in(console: Api) -> None:
    page = await console.http.get("/console/sign-in")
    response = await console.http.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "token": console.tokens[Role.SERVICE]}
    )
    assert response.status_code == 401
    assert "service token cannot sign in" in response.text


@pytest.mark.parametrize("csrf", [None, "", "wrong"])
async def test_sign_in_without_its_csrf_value_is_forbidden(console: Api, csrf: str | None) -> None:
    await console.http.get("/console/sign-in")
    data = {"token": console.tokens[Role.OPERATOR], **({"csrf": csrf} if csrf is not None else {})}
    response = await console.http.post("/console/sign-in", data=data)
    assert response.status_code == 403
    assert (await console.http.get("/console/queue")).status_code == 303


@pytest.mark.parametrize("csrf", [None, "", "0" * 64])
@pytest.mark.parametrize("action", ["claim", "resolve", "escalate", "snooze"])
async def test_every_action_without_the_csrf_value_is_forbidden(console: Api, csrf: str | None, action: str) -> None:
    exc = await console.create()
    await sign_in(console)
    data = {"version": "1", "decision": "confirmed", "reason": "x", "hours": "1"}
    if csrf is not None:
        data["csrf"] = csrf
    response = await console.http.post(f"/console/exceptions/{exc['id']}/{action}", data=data)
    assert response.status_code == 403
    row = await reading.get(db=console.services.db, exception_id=exc["id"])
    assert row.version == 1 and row.status == "open"


async def test_bulk_and_sign_out_without_the_csrf_value_are_forbidden(console: Api) -> None:
    exc = await console.create()
    await sign_in(console)
    bulk = await console.http.post(
        "/console/bulk",
        data={"scope": "selected", "ids": exc["id"], "action": "claim", "confirm": "yes", "csrf": "nope"},
    )
    assert bulk.status_code == 403
    assert (await console.http.post("/console/sign-out", data={})).status_code == 403
    assert (await console.http.get("/console/queue")).status_code == 200


async def test_a_csrf_value_of_another_session_is_forbidden(console: Api) -> None:
    exc = await console.create()
    admin_csrf = await sign_in(console, Role.ADMIN)
    await sign_in(console, Role.OPERATOR)
    response = await console.http.post(
        f"/console/exceptions/{exc['id']}/claim", data={"csrf": admin_csrf, "version": "1"}
    )
    assert response.status_code == 403


async def test_hostile_event_strings_are_escaped_everywhere(console: Api) -> None:
    exc = await console.http.post(
        "/v1/exceptions",
        json={
            **__import__("tests.fixtures.api", fromlist=["record"]).record(),
            **content_record(summary=XSS, subject=XSS, client_id=XSS, caption=f"Nice {XSS} post"),
        },
        headers=console.auth("service"),
    )
    assert exc.status_code == 201, exc.text
    await sign_in(console)
    queue = await console.http.get("/console/queue")
    page = await console.http.get(f"/console/exceptions/{exc.json()['id']}")
    for html in (queue.text, page.text):
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(" in html
    assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_hostile_filters_are_a_400_not_an_error(console: Api) -> None:
    await sign_in(console)
    for query in ("status=nope", "severity=%00", "sort=drop", "cursor=garbage", f"rule_id={'x' * 300}"):
        response = await console.http.get(f"/console/queue?{query}")
        assert response.status_code == 400, query
    reflected = await console.http.get("/console/queue", params={"client_id": XSS})
    assert reflected.status_code == 200
    assert "<script>alert" not in reflected.text


async def test_resolving_with_a_correction_records_each_changed_field(console: Api) -> None:
    created = await console.http.post(
        "/v1/exceptions",
        json={**__import__("tests.fixtures.api", fromlist=["record"]).record(), **content_record()},
        headers=console.auth("service"),
    )
    exc = created.json()
    csrf = await sign_in(console)
    page = await console.http.get(f"/console/exceptions/{exc['id']}")
    assert '<mark class="claim"' in page.text
    response = await console.http.post(
        f"/console/exceptions/{exc['id']}/resolve",
        data={
            "csrf": csrf,
            "version": "1",
            "decision": "corrected",
            "reason": "unverifiable claim removed",
            "after.caption": "Glow all day. Loved by dry skin.",
            "after.brand_safety_score": "0.41",
            "after.product_claims": "",
            "after.platform": "instagram",
        },
    )
    assert response.status_code == 303, response.text
    row = await reading.get(db=console.services.db, exception_id=exc["id"])
    assert row.status == "resolved" and row.decision == "corrected"
    assert row.correction == {
        "caption": {
            "before": "Glow all day. Clinically proven to cure dry skin in one night!",
            "after": "Glow all day. Loved by dry skin.",
        },
        "product_claims": {"before": ["clinically proven"], "after": []},
    }
    assert row.resolver == "operator-tester"


async def test_corrected_without_a_change_is_refused_with_the_reason(console: Api) -> None:
    exc = await console.create()
    csrf = await sign_in(console)
    response = await console.http.post(
        f"/console/exceptions/{exc['id']}/resolve", data={"csrf": csrf, "version": "1", "decision": "corrected"}
    )
    assert response.status_code == 400
    assert "needs a non-empty correction" in response.text


async def test_a_stale_page_gets_changed_by_someone_else_not_an_overwrite(console: Api) -> None:
    exc = await console.create()
    csrf = await sign_in(console)
    other = await console.act(exc["id"], "claim", {"assignee": "someone-else"}, role="admin")
    assert other.status_code == 200
    response = await console.http.post(
        f"/console/exceptions/{exc['id']}/resolve",
        data={"csrf": csrf, "version": "1", "decision": "confirmed"},
    )
    assert response.status_code == 409
    assert "changed by someone else" in response.text
    row = await reading.get(db=console.services.db, exception_id=exc["id"])
    assert row.status == "claimed" and row.assignee == "someone-else"


async def test_claim_escalate_and_snooze_from_the_page(console: Api) -> None:
    exc = await console.create()
    csrf = await sign_in(console)
    url = f"/console/exceptions/{exc['id']}"
    assert (await console.http.post(f"{url}/claim", data={"csrf": csrf, "version": "1"})).status_code == 303
    assert (
        await console.http.post(f"{url}/snooze", data={"csrf": csrf, "version": "2", "hours": "4"})
    ).status_code == 303
    row = await reading.get(db=console.services.db, exception_id=exc["id"])
    assert row.status == "snoozed"
    bad = await console.http.post(f"{url}/snooze", data={"csrf": csrf, "version": "3", "hours": "9999"})
    assert bad.status_code == 400
    exc2 = await console.create()
    done = await console.http.post(
        f"/console/exceptions/{exc2['id']}/escalate", data={"csrf": csrf, "version": "1", "reason": "needs finance"}
    )
    assert done.status_code == 303
    assert (await reading.get(db=console.services.db, exception_id=exc2["id"])).status == "escalated"


async def test_bulk_resolve_by_filter_asks_to_confirm_the_count_first(console: Api) -> None:
    for _ in range(3):
        await console.create(client_id="acme")
    await console.create(client_id="other")
    csrf = await sign_in(console)
    form = {"csrf": csrf, "scope": "filter", "action": "resolve", "decision": "false_positive", "reason": "cap raised"}
    confirm = await console.http.post("/console/bulk", data={**form, "client_id": "acme"})
    assert confirm.status_code == 200
    assert re.search(r"<strong>3</strong> exceptions match the filter", confirm.text)
    sealed = re.search(r'name="sealed" value="([^"]+)"', confirm.text)
    assert sealed
    done = await console.http.post("/console/bulk", data={"csrf": csrf, "confirm": "yes", "sealed": sealed.group(1)})
    assert done.status_code == 303
    assert "Resolved%203" in done.headers["location"]
    unfiltered = await console.http.post("/console/bulk", data=form)
    assert unfiltered.status_code == 400
    unsealed = await console.http.post("/console/bulk", data={**form, "client_id": "acme", "confirm": "yes"})
    assert unsealed.status_code == 400


async def test_an_http_client_without_a_session_cannot_post(console: Api) -> None:
    exc = await console.create()
    fresh = httpx.AsyncClient(transport=console.http._transport, base_url="http://loopgate.test")
    async with fresh:
        response = await fresh.post(f"/console/exceptions/{exc['id']}/claim", data={"csrf": "x", "version": "1"})
    assert response.status_code == 403


async def test_silence_forms_need_the_csrf_value(console: Api) -> None:
    exc = await console.create()
    csrf = await sign_in(console)
    form = {"rule_id": exc["rule_id"], "client_id": "northwind", "hours": "4", "comment": "noisy"}
    assert (await console.http.post("/console/silences", data=form)).status_code == 403
    assert (await console.http.post("/console/silences", data={**form, "csrf": "x"})).status_code == 403
    made = await console.http.post("/console/silences", data={**form, "csrf": csrf})
    assert made.status_code == 303
    page = await console.http.get("/console/silences")
    assert "noisy" in page.text
    silence_id = re.search(r'/console/silences/([^/"]+)/expire', page.text)
    assert silence_id
    assert (await console.http.post(f"/console/silences/{silence_id.group(1)}/expire", data={})).status_code == 403
    expired = await console.http.post(f"/console/silences/{silence_id.group(1)}/expire", data={"csrf": csrf})
    assert expired.status_code == 303


async def test_a_notification_link_signs_in_and_returns_to_the_exception(console: Api) -> None:
    """A link from a notification (/console/exceptions/<id>) opens sign-in, which comes back there."""
    exception_id = (await console.create())["id"]
    page_path = f"/console/exceptions/{quote(exception_id, safe='')}"
    first = await console.http.get(page_path)
    assert first.status_code == 303
    assert first.headers["location"] == f"/console/sign-in?next={quote(page_path, safe='')}"
    page = await console.http.get(first.headers["location"])
    assert f'name="next" value="{page_path}"' in page.text
    signed = await console.http.post(
        "/console/sign-in",
        data={"csrf": csrf_of(page.text), "token": console.tokens[Role.OPERATOR], "next": page_path},
    )
    assert signed.status_code == 303 and signed.headers["location"] == page_path
    shown = await console.http.get(page_path)
    assert shown.status_code == 200 and exception_id in shown.text


@pytest.mark.parametrize(
    "hostile", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/console/x%0d%0aSet-Cookie:a=b"]
)
async def test_sign_in_never_returns_to_a_hostile_next(console: Api, hostile: str) -> None:
    page = await console.http.get("/console/sign-in", params={"next": hostile})
    assert 'name="next"' not in page.text
    signed = await console.http.post(
        "/console/sign-in", data={"csrf": csrf_of(page.text), "token": console.tokens[Role.OPERATOR], "next": hostile}
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/console/queue"


async def test_unclaim_from_the_page_by_the_assignee_not_by_another_operator(console: Api) -> None:
    mine = await console.create()
    theirs = await console.create()
    assert (await console.act(theirs["id"], "claim", {"assignee": "dana"})).status_code == 200
    csrf = await sign_in(console)
    url = f"/console/exceptions/{mine['id']}"
    assert (await console.http.post(f"{url}/claim", data={"csrf": csrf, "version": "1"})).status_code == 303
    page = await console.http.get(url)
    assert 'id="unclaim"' in page.text
    done = await console.http.post(f"{url}/unclaim", data={"csrf": csrf, "version": "2"})
    assert done.status_code == 303
    row = await reading.get(db=console.services.db, exception_id=mine["id"])
    assert (row.status, row.assignee) == ("open", None)

    other = f"/console/exceptions/{theirs['id']}"
    assert 'id="unclaim"' not in (await console.http.get(other)).text
    refused = await console.http.post(f"{other}/unclaim", data={"csrf": csrf, "version": "2"})
    assert refused.status_code == 403
    assert "claimed by &#39;dana&#39;" in refused.text
    assert (await reading.get(db=console.services.db, exception_id=theirs["id"])).assignee == "dana"


async def test_an_admin_sees_and_uses_unclaim_on_anyones_claim(console: Api) -> None:
    exc = await console.create()
    await console.act(exc["id"], "claim", {"assignee": "dana"})
    csrf = await sign_in(console, Role.ADMIN)
    url = f"/console/exceptions/{exc['id']}"
    assert 'id="unclaim"' in (await console.http.get(url)).text
    assert (await console.http.post(f"{url}/unclaim", data={"csrf": csrf, "version": "2"})).status_code == 303
    assert (await reading.get(db=console.services.db, exception_id=exc["id"])).assignee is None
