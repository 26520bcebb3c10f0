"""Suggested decisions with evidence (issue 26 item 3): GET /v1/exceptions/{id} of an unresolved
exception carries `suggestion`, made from the latest judged verdicts on its rule and client (its
subject's own once there are enough), computed only from the verdicts the asker may see; the
console's exception page shows it; a suggestion resolves nothing. Time is the injected clock."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from loopgate.cli.ops import _suggestion
from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import ExceptionRow
from tests.fixtures.api import Api, ApiFactory, claim
from tests.fixtures.clock import FakeClock

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DAY = 86400


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def api(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    async with api_factory(api_settings.model_copy(update={"console_secure_cookie": False}), clock) as running:
        yield running


async def _decided(api: Api, clock: FakeClock, decision: str, **record: Any) -> str:
    exc = await api.create(detected_at=clock().isoformat(), **record)
    clock.advance(60)
    body: dict[str, Any] = {"decision": decision, "reason": "seen"}
    if decision == "corrected":
        body["correction"] = {"bid_cpm": {"before": 7.2, "after": 6.0}}
    response = await api.act(exc["id"], "resolve", body)
    assert response.status_code == 200, response.text
    return str(exc["id"])


async def _suggested(api: Api, exception_id: str, role: str = "operator") -> dict[str, Any] | None:
    response = await api.http.get(f"/v1/exceptions/{exception_id}", headers=api.auth(role))
    assert response.status_code == 200, response.text
    suggestion: dict[str, Any] | None = response.json()["suggestion"]
    return suggestion


async def test_nine_false_positives_of_ten_suggest_a_false_positive_with_its_evidence(
    api: Api, clock: FakeClock
) -> None:
    await _decided(api, clock, "confirmed", client_id="tailspin")
    for _ in range(9):
        await _decided(api, clock, "false_positive", client_id="tailspin")
    await _decided(api, clock, "false_positive", client_id="northwind")  # another client's: not evidence
    await _decided(api, clock, "confirmed", client_id="tailspin", rule_id="bid_jump")  # another rule's
    clock.advance(12 * DAY)
    open_one = await api.create(client_id="tailspin")

    suggestion = await _suggested(api, open_one["id"])

    assert suggestion == {
        "decision": "false_positive",
        "confidence": round(10 / 12, 4),
        "basis": "rule_and_client",
        "verdicts": 10,
        "flag_right": 1,
        "evidence": "9 of the last 10 bid_over_cap for tailspin were false positives; "
        "the last confirmed was 12 days ago",
    }
    after = await api.http.get(f"/v1/exceptions/{open_one['id']}", headers=api.auth("operator"))
    assert after.json()["status"] == "open" and after.json()["resolution"] is None  # advice only


async def test_few_or_mixed_verdicts_give_no_suggestion_and_say_why(api: Api, clock: FakeClock) -> None:
    for decision in ("confirmed", "false_positive", "dismissed", "escalated"):  # dismissed, escalated: not judged
        await _decided(api, clock, decision, client_id="acme")
    few = await api.create(client_id="acme")
    for decision in ("confirmed", "false_positive", "corrected", "false_positive"):
        await _decided(api, clock, decision, client_id="globex")
    mixed = await api.create(client_id="globex")

    assert await _suggested(api, few["id"]) == {
        "decision": None,
        "confidence": None,
        "basis": "rule_and_client",
        "verdicts": 2,
        "flag_right": 1,
        "evidence": "only 2 judged verdicts on bid_over_cap for acme yet: too few to suggest a decision",
    }
    assert (await _suggested(api, mixed["id"])) == {
        "decision": None,
        "confidence": None,
        "basis": "rule_and_client",
        "verdicts": 4,
        "flag_right": 2,
        "evidence": "2 of the 4 bid_over_cap for globex were confirmed and 2 false positives: too mixed to suggest",
    }


async def test_a_subject_with_enough_verdicts_of_its_own_is_the_evidence(api: Api, clock: FakeClock) -> None:
    for _ in range(6):
        await _decided(api, clock, "false_positive", client_id="tailspin")  # the client's other subjects
    for decision in ("false_positive", "corrected", "corrected", "corrected", "confirmed", "corrected"):
        await _decided(api, clock, decision, client_id="tailspin", subject="li-42")
    clock.advance(3 * 3600)
    open_one = await api.create(client_id="tailspin", subject="li-42")

    suggestion = await _suggested(api, open_one["id"])

    assert suggestion is not None
    assert suggestion["decision"] == "corrected" and suggestion["basis"] == "subject"
    assert suggestion["evidence"] == (
        "5 of the 6 bid_over_cap on li-42 for tailspin were confirmed (4 of them corrected); "
        "the last false positive was 3 hours ago"
    )


async def test_a_resolved_exception_has_no_suggestion_and_lists_carry_none(api: Api, clock: FakeClock) -> None:
    for _ in range(3):
        await _decided(api, clock, "false_positive")
    resolved = await _decided(api, clock, "confirmed")
    await api.create()
    clock.advance(1)

    assert await _suggested(api, resolved) is None
    listed = await api.http.get("/v1/exceptions?status=open", headers=api.auth("operator"))
    assert [item["suggestion"] for item in listed.json()["items"]] == [None]


async def test_the_suggestion_is_made_only_from_verdicts_the_asker_may_see(api: Api, clock: FakeClock) -> None:
    """Four confirmed claim checks of northwind's were worked in the agency's default queue (the
    routes moved them), three false positives in reviewers-northwind. The agency-wide operator sees
    all seven (mixed); northwind's reviewer sees its own queue's three."""
    outside = [await _decided(api, clock, "confirmed", **claim("northwind")) for _ in range(4)]
    for _ in range(3):
        await _decided(api, clock, "false_positive", **claim("northwind"))
    async with api.services.db.write() as session, session.begin():
        await session.execute(sa.update(ExceptionRow).where(ExceptionRow.id.in_(outside)).values(queue="default"))
    open_one = await api.create(**claim("northwind"))

    operator = await _suggested(api, open_one["id"], "operator")
    reviewer = await _suggested(api, open_one["id"], "reviewer")

    assert operator is not None and (operator["decision"], operator["verdicts"]) == (None, 7)
    assert reviewer is not None and (reviewer["decision"], reviewer["verdicts"]) == ("false_positive", 3)
    assert reviewer["evidence"] == (
        "3 of the 3 claim_verification for northwind were false positives; none was confirmed"
    )


async def test_the_console_page_shows_the_suggestion_and_its_evidence(api: Api, clock: FakeClock) -> None:
    for _ in range(4):
        await _decided(api, clock, "confirmed", client_id="tailspin")
    open_one = await api.create(client_id="tailspin")
    page = await api.http.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    signed = await api.http.post("/console/sign-in", data={"csrf": csrf.group(1), "token": api.tokens["operator"]})
    assert signed.status_code == 303

    shown = await api.http.get(f"/console/exceptions/{open_one['id']}")

    assert shown.status_code == 200
    found = re.search(r'<p id="suggestion">(.*?)</p>', shown.text, re.S)
    assert found, shown.text
    text = re.sub(r"<[^>]+>", "", found.group(1))
    assert text == (
        "confirmed (83% from 4 verdicts): 4 of the 4 bid_over_cap for tailspin were confirmed; "
        "none was a false positive."
    )


def test_ops_show_prints_the_suggestion_or_why_there_is_none() -> None:
    made = {"decision": "false_positive", "confidence": 0.8333, "evidence": "9 of the last 10 ..."}

    assert _suggestion(made) == "false_positive (83%): 9 of the last 10 ..."
    assert _suggestion({"decision": None, "confidence": None, "evidence": "only 2"}) == "none: only 2"
    assert _suggestion(None) == ""
