"""The console shows who you are and your scope on every page, and hides what your role cannot do
(issue 25 item 6): exact markup present or absent per role, and the hidden action refused when its
form is posted by hand. In-process, as tests/integration/test_console.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from loopgate.resolution_api.access.permissions import Role
from tests.fixtures.api import Api, claim
from tests.integration.test_console import sign_in

SILENCES_LINK = '<a href="/console/silences">Silences</a>'
ONCALL_LINK = '<a href="/console/oncall">On call</a>'
BULK = "<legend>Bulk action</legend>"
PICK = 'class="pick"'
CLAIM = 'id="claim"'
RESOLVE = 'id="resolve"'
SILENCE_FORM = 'id="silence"'


@dataclass(frozen=True)
class Expected:
    scope: str
    silences: bool
    bulk: bool
    work: bool
    oncall: bool = False


EXPECTED = {
    Role.OPERATOR: Expected("every client", silences=True, bulk=True, work=True, oncall=True),
    Role.ADMIN: Expected("every client", silences=True, bulk=True, work=True, oncall=True),
    Role.REVIEWER: Expected("clients northwind (queues reviewers-northwind)", silences=False, bulk=False, work=True),
    Role.ANALYST: Expected("every client", silences=False, bulk=False, work=False),
}


def header(page: str) -> str:
    found = re.search(r'<span class="who" id="who">.*?</span></span>', page, re.S)
    assert found, page[:800]
    return found.group(0)


@pytest.mark.parametrize("role", list(EXPECTED))
async def test_every_page_names_the_person_its_role_and_scope_and_offers_only_what_the_role_may(
    console: Api,
    role: Role,
) -> None:
    exc = await console.create(**claim("northwind"))
    assert exc["queue"] == "reviewers-northwind"
    await sign_in(console, role)
    expected = EXPECTED[role]
    pages = {
        "queue": await console.http.get("/console/queue"),
        "exception": await console.http.get(f"/console/exceptions/{exc['id']}"),
        "history": await console.http.get(f"/console/exceptions/{exc['id']}/history"),
        "missing": await console.http.get("/console/exceptions/no-such-exception"),
    }
    assert [p.status_code for p in pages.values()] == [200, 200, 200, 404]
    want = (
        f'<span class="who" id="who"><span id="who-name">{role.value}-tester</span> '
        f'<span class="role" id="who-role">({role.value})</span> '
        f'<span class="scope" id="who-scope">{expected.scope}</span></span>'
    )
    for name, page in pages.items():
        assert header(page.text) == want, name
        assert (SILENCES_LINK in page.text) is expected.silences, name
        assert (ONCALL_LINK in page.text) is expected.oncall, name
    queue, exception = pages["queue"].text, pages["exception"].text
    assert exc["id"] in queue
    assert (BULK in queue, PICK in queue) == (expected.bulk, expected.bulk)
    assert (CLAIM in exception, RESOLVE in exception) == (expected.work, expected.work)
    assert 'name="after.product_claims"' not in exception or expected.work
    assert (SILENCE_FORM in exception) is expected.silences


async def test_a_reviewer_posting_the_hidden_bulk_form_is_refused_and_nothing_changes(
    console: Api,
) -> None:
    exc = await console.create(**claim("northwind"))
    csrf = await sign_in(console, Role.REVIEWER)
    for form in (
        {"csrf": csrf, "scope": "selected", "ids": exc["id"], "action": "claim", "decision": "confirmed"},
        {
            "csrf": csrf,
            "scope": "selected",
            "ids": exc["id"],
            "action": "resolve",
            "decision": "confirmed",
            "reason": "all fine",
            "confirm": "1",
            "sealed": "x",
        },
    ):
        response = await console.http.post("/console/bulk", data=form)
        assert response.status_code == 403, response.text[:300]
        assert "A reviewer works one exception at a time: no bulk actions." in response.text
    after = await console.http.get(f"/v1/exceptions/{exc['id']}", headers=console.auth("operator"))
    assert (after.json()["status"], after.json()["version"]) == ("open", exc["version"])
    silences = await console.http.get("/console/silences")
    assert silences.status_code == 403
    assert SILENCES_LINK not in silences.text
    assert (await console.http.get("/console/oncall")).status_code == 403


async def test_an_operator_still_reaches_the_bulk_confirmation(console: Api) -> None:
    exc = await console.create(**claim("northwind"))
    csrf = await sign_in(console, Role.OPERATOR)
    response = await console.http.post(
        "/console/bulk",
        data={"csrf": csrf, "scope": "selected", "ids": exc["id"], "action": "claim", "decision": "confirmed"},
    )
    assert response.status_code == 200, response.text[:300]
    assert "Confirm: claim 1 exception</h1>" in response.text
