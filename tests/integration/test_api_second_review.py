"""A second pair of eyes (issue 26): a chosen resolution is sealed from everyone but its resolver
(API answers, history, the console) until a second person decides; a disagreement becomes an
exception in the lead queue whose resolution is final; agreement (raw and Cohen's kappa) per rule
and per resolver, scoped like every read of exceptions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from loopgate.common import metrics
from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.review.config import ReviewConfigError, unit_hash
from tests.fixtures.api import Api, ApiFactory, claim

SECRET_REASON = "first-reviewer-reason-7f3a"
FIRST = "operator-tester"  # the fixture's operator token's name


@dataclass
class World:
    api: Api
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        if who in self.tokens:
            return {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.api.auth(who)

    async def resolve(self, exception_id: str, decision: str = "false_positive", who: str = "operator") -> None:
        response = await self.api.http.post(
            f"/v1/exceptions/{exception_id}/resolve",
            json={"decision": decision, "reason": SECRET_REASON},
            headers=self.auth(who),
        )
        assert response.status_code == 200, response.text

    async def decide(self, exception_id: str, decision: str, who: str = "second") -> Any:
        return await self.api.http.post(
            f"/v1/reviews/{exception_id}/decision",
            json={"decision": decision, "reason": "second look"},
            headers=self.auth(who),
        )

    async def read(self, exception_id: str, who: str) -> dict[str, Any]:
        response = await self.api.http.get(f"/v1/exceptions/{exception_id}", headers=self.auth(who))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def _review_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "review.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _world(api_factory: ApiFactory, settings: Settings) -> AsyncIterator[World]:
    async with api_factory(settings) as api:
        tokens = {}
        for name, role, clients in [
            ("second", "operator", None),
            ("lead", "operator", None),
            ("contoso-analyst", "analyst", ["contoso"]),
        ]:
            made = await api.http.post(
                "/v1/tokens", json={"name": name, "role": role, "clients": clients}, headers=api.auth(Role.ADMIN)
            )
            assert made.status_code == 201, made.text
            tokens[name] = made.json()["token"]
        yield World(api, tokens)


@pytest.fixture
async def world(api_factory: ApiFactory, api_settings: Settings, tmp_path: Path) -> AsyncIterator[World]:
    review = _review_file(tmp_path, 'lead_queue = "leads"\ndefault_share = 1.0\n')
    settings = api_settings.model_copy(update={"review_file": review, "console_secure_cookie": False})
    async for w in _world(api_factory, settings):
        yield w


async def test_a_chosen_resolution_is_sealed_from_everyone_but_its_resolver(world: World) -> None:
    exc = (await world.api.create())["id"]
    await world.resolve(exc)
    mine = await world.read(exc, "operator")
    assert mine["second_review"] == "pending"
    assert mine["resolution"]["reason"] == SECRET_REASON and mine["resolution"]["resolver"] == FIRST
    theirs = await world.read(exc, "second")
    assert theirs["status"] == "resolved" and theirs["second_review"] == "pending"
    assert theirs["resolution"] is None
    listed = await world.api.http.get("/v1/exceptions", params={"status": "resolved"}, headers=world.auth("second"))
    assert [e["resolution"] for e in listed.json()["items"] if e["id"] == exc] == [None]
    history = await world.api.http.get(f"/v1/exceptions/{exc}/history", headers=world.auth("second"))
    assert [e["action"] for e in history.json()["items"]] == ["created"]
    assert SECRET_REASON not in history.text and SECRET_REASON not in listed.text
    own_history = await world.api.http.get(f"/v1/exceptions/{exc}/history", headers=world.auth("operator"))
    assert [e["action"] for e in own_history.json()["items"]] == ["created", "resolve"]
    reviews = await world.api.http.get("/v1/reviews", headers=world.auth("second"))
    [item] = reviews.json()["items"]
    assert item["exception_id"] == exc and item["status"] == "pending" and item["chosen_by"] == "share"
    assert item["first_decision"] is None and item["first_resolver"] is None
    assert item["exception"]["resolution"] is None
    assert SECRET_REASON not in reviews.text and FIRST not in reviews.text
    # the resolver is not offered their own resolution to review, and may not review it
    assert (await world.api.http.get("/v1/reviews", headers=world.auth("operator"))).json()["items"] == []
    refused = await world.decide(exc, "confirmed", who="operator")
    assert refused.status_code == 403 and "another person" in refused.text


async def test_the_console_is_blind_until_the_second_reviewer_decides(world: World) -> None:
    exc = (await world.api.create())["id"]
    await world.resolve(exc)
    http = world.api.http
    page = await http.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    signed = await http.post(
        "/console/sign-in", data={"csrf": csrf.group(1), "token": world.tokens["second"]}, follow_redirects=True
    )
    assert signed.status_code == 200
    sealed = await http.get(f"/console/exceptions/{exc}")
    assert sealed.status_code == 200
    assert SECRET_REASON not in sealed.text and 'id="resolution"' not in sealed.text and FIRST not in sealed.text
    history = await http.get(f"/console/exceptions/{exc}/history")
    assert SECRET_REASON not in history.text
    decided = await world.decide(exc, "false_positive")
    assert decided.status_code == 200, decided.text
    opened = await http.get(f"/console/exceptions/{exc}")
    assert SECRET_REASON in opened.text and 'id="resolution"' in opened.text


async def test_agreement_reveals_the_first_decision(world: World) -> None:
    exc = (await world.api.create())["id"]
    await world.resolve(exc, "false_positive")
    decided = await world.decide(exc, "false_positive")
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["status"] == "agreed" and body["reviewer"] == "second" and body["lead_exception_id"] is None
    assert body["first_decision"] == "false_positive" and body["first_resolver"] == FIRST
    assert (await world.read(exc, "second"))["resolution"]["reason"] == SECRET_REASON
    again = await world.decide(exc, "confirmed")
    assert again.status_code == 409 and "decided already (agreed)" in again.text


async def test_a_disagreement_goes_to_the_lead_queue_whose_decision_is_final(world: World) -> None:
    exc = (await world.api.create())["id"]
    await world.resolve(exc, "false_positive")
    decided = (await world.decide(exc, "confirmed")).json()
    assert decided["status"] == "disagreed"
    lead_exc = decided["lead_exception_id"]
    lead = await world.read(lead_exc, "lead")
    assert lead["queue"] == "leads" and lead["rule_id"] == "second_review_disagreement"
    assert lead["subject"] == exc and lead["client_id"] == "northwind" and lead["status"] == "open"
    assert lead["observed"]["first"] == {"resolver": FIRST, "decision": "false_positive", "reason": SECRET_REASON}
    assert lead["observed"]["second"] == {"reviewer": "second", "decision": "confirmed", "reason": "second look"}
    # the same disagreement sent again (a retry) answers the same, with the same single lead exception
    retried = await world.decide(exc, "confirmed")
    assert retried.status_code == 200 and retried.json()["lead_exception_id"] == lead_exc
    leads = await world.api.http.get("/v1/exceptions", params={"queue": "leads"}, headers=world.auth("lead"))
    assert [e["id"] for e in leads.json()["items"]] == [lead_exc]
    assert (await world.decide(exc, "dismissed")).status_code == 409  # another decision is not a retry
    # the disagreement itself is never re-reviewed: the lead's decision is final
    resolved = await world.api.http.post(
        f"/v1/exceptions/{lead_exc}/resolve", json={"decision": "confirmed", "reason": ""}, headers=world.auth("lead")
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["second_review"] is None
    final = (await world.api.http.get(f"/v1/reviews/{exc}", headers=world.auth("operator"))).json()
    assert final["status"] == "adjudicated" and final["final_decision"] == "confirmed"
    assert final["adjudicated_by"] == "lead"
    assert (await world.read(exc, "second"))["second_review"] == "adjudicated"
    missing = await world.api.http.get(f"/v1/reviews/{lead_exc}", headers=world.auth("operator"))
    assert missing.status_code == 404


async def test_agreement_statistics_per_rule_and_resolver_match_the_hand_computed_kappa(world: World) -> None:
    # first (operator-tester) vs second: fp/fp x2, confirmed/confirmed x1, fp/confirmed x1:
    # p_o = 3/4; first fp 3, confirmed 1; second fp 2, confirmed 2: p_e = (3*2 + 1*2)/16 = 0.5; kappa = 0.5
    for first, second in [("false_positive",) * 2, ("false_positive",) * 2, ("confirmed",) * 2]:
        exc = (await world.api.create())["id"]
        await world.resolve(exc, first)
        assert (await world.decide(exc, second)).status_code == 200
    exc = (await world.api.create(**claim("contoso")))["id"]
    await world.resolve(exc, "false_positive")
    assert (await world.decide(exc, "confirmed")).status_code == 200
    response = await world.api.http.get("/v1/stats/agreement", headers=world.auth("lead"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["overall"]["pairs"] == 4 and body["overall"]["agreed"] == 3
    assert body["overall"]["raw_agreement"] == 0.75 and body["overall"]["kappa"] == pytest.approx(0.5)
    by_rule = {g["key"]: g for g in body["groups"]}
    assert set(by_rule) == {"bid_over_cap", "claim_verification"}
    assert by_rule["claim_verification"]["kappa"] == 0.0 and by_rule["claim_verification"]["raw_agreement"] == 0.0
    assert by_rule["bid_over_cap"]["kappa"] == pytest.approx(1.0)
    assert by_rule["bid_over_cap"]["table"] == [["confirmed", "confirmed", 1], ["false_positive", "false_positive", 2]]
    by_resolver = await world.api.http.get(
        "/v1/stats/agreement", params={"group_by": "resolver"}, headers=world.auth("lead")
    )
    [group] = by_resolver.json()["groups"]
    assert group["key"] == FIRST and group["kappa"] == pytest.approx(0.5)
    # the dashboard's gauges (30 days, per rule and overall) show the same figures
    assert metrics.SECOND_REVIEW_AGREEMENT.labels("all", "kappa")._value.get() == pytest.approx(0.5)
    assert metrics.SECOND_REVIEW_AGREEMENT.labels("all", "raw")._value.get() == 0.75
    assert metrics.SECOND_REVIEW_AGREEMENT.labels("claim_verification", "kappa")._value.get() == 0.0
    # scoped like every read of exceptions: a contoso token sees contoso's review alone
    scoped = (await world.api.http.get("/v1/stats/agreement", headers=world.auth("contoso-analyst"))).json()
    assert scoped["overall"]["pairs"] == 1 and [g["key"] for g in scoped["groups"]] == ["claim_verification"]
    empty = await world.api.http.get("/v1/stats/agreement", params={"rule_id": "nope"}, headers=world.auth("lead"))
    assert empty.json()["overall"] == {
        "key": "",
        "pairs": 0,
        "agreed": 0,
        "raw_agreement": None,
        "kappa": None,
        "table": [],
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"decision": "confirmed", "extra": 1}, "extra"),
        ({"decision": "maybe"}, "decision"),
        ({"decision": "corrected"}, "judges the decision, not the correction"),
        ({"decision": "false_positive"}, "needs a reason"),
        ({"decision": "confirmed", "reason": "x" * 4001}, "reason"),
        ({}, "decision"),
    ],
)
async def test_hostile_second_decisions_are_refused(world: World, body: dict[str, Any], says: str) -> None:
    exc = (await world.api.create())["id"]
    await world.resolve(exc)
    response = await world.api.http.post(f"/v1/reviews/{exc}/decision", json=body, headers=world.auth("second"))
    assert response.status_code == 422 and says in response.text
    assert (await world.api.http.get(f"/v1/reviews/{exc}", headers=world.auth("second"))).json()["status"] == "pending"


@pytest.mark.parametrize(
    ("params", "says"),
    [({"group_by": "client"}, "group_by"), ({"rule_id": "a b"}, "rule_id"), ({"since": "yesterday"}, "since")],
)
async def test_hostile_agreement_queries_are_refused(world: World, params: dict[str, str], says: str) -> None:
    response = await world.api.http.get("/v1/stats/agreement", params=params, headers=world.auth("lead"))
    assert response.status_code in (400, 422) and says in response.text


async def test_reviews_need_a_token_and_the_right_role(world: World) -> None:
    assert (await world.api.http.get("/v1/reviews")).status_code == 401
    assert (await world.api.http.get("/v1/reviews", headers=world.api.auth(Role.ANALYST))).status_code == 403
    assert (await world.api.http.get("/v1/reviews/nope", headers=world.auth("second"))).status_code == 404


async def test_every_resolution_of_an_operators_first_n_is_reviewed(
    api_factory: ApiFactory, api_settings: Settings, tmp_path: Path
) -> None:
    review = _review_file(tmp_path, "first_resolutions = 2\n")
    async for w in _world(api_factory, api_settings.model_copy(update={"review_file": review})):
        states = []
        for _ in range(3):
            exc = (await w.api.create())["id"]
            await w.resolve(exc)
            states.append((await w.read(exc, "operator"))["second_review"])
        assert states == ["pending", "pending", None]
        kappa = metrics.SECOND_REVIEW_AGREEMENT.labels("all", "kappa")._value.get()
        assert kappa != kappa  # NaN: nothing decided yet in this database (set at start)
        items = (await w.api.http.get("/v1/reviews", headers=w.auth("second"))).json()["items"]
        assert [i["chosen_by"] for i in items] == ["first_resolutions"] * 2


async def test_nothing_is_reviewed_by_default(api: Api) -> None:
    exc = (await api.create())["id"]
    resolved = await api.act(exc, "resolve", {"decision": "confirmed"})
    assert resolved.status_code == 200 and resolved.json()["second_review"] is None
    assert resolved.json()["resolution"]["decision"] == "confirmed"


async def test_a_bad_review_file_refuses_to_start_naming_the_key(
    api_factory: ApiFactory, api_settings: Settings, tmp_path: Path
) -> None:
    review = _review_file(tmp_path, "default_share = 2\n")
    with pytest.raises(ReviewConfigError, match="default_share: Input should be less than or equal to 1"):
        async with api_factory(api_settings.model_copy(update={"review_file": review})):
            pass


async def _training(world: World, who: str) -> dict[str, Any]:
    response = await world.api.http.get("/v1/export/training-data", headers=world.auth(who))
    assert response.status_code == 200, response.text
    return {r["exception_id"]: r for r in map(orjson.loads, response.text.splitlines())}


async def test_training_records_say_who_reviewed_and_whether_the_label_is_adjudicated(world: World) -> None:
    pending, agreed, adjudicated = [(await world.api.create())["id"] for _ in range(3)]
    for exc in (pending, agreed, adjudicated):
        await world.resolve(exc, "false_positive")
    # a pending review's decision is not in a second person's export (blind), only in its resolver's
    assert pending not in await _training(world, "second")
    assert (await _training(world, "operator"))[pending]["second_review"] == {
        "status": "pending",
        "reviewer": None,
        "second_decision": None,
        "adjudicated": False,
        "final_decision": None,
        "adjudicated_by": None,
    }
    assert (await world.decide(agreed, "false_positive")).status_code == 200
    lead_exc = (await world.decide(adjudicated, "confirmed")).json()["lead_exception_id"]
    await world.resolve(lead_exc, "confirmed", who="lead")
    records = await _training(world, "lead")
    assert records[agreed]["second_review"] == {
        "status": "agreed",
        "reviewer": "second",
        "second_decision": "false_positive",
        "adjudicated": False,
        "final_decision": "false_positive",
        "adjudicated_by": None,
    }
    assert records[adjudicated]["decision"] == "false_positive"
    assert records[adjudicated]["second_review"] == {
        "status": "adjudicated",
        "reviewer": "second",
        "second_decision": "confirmed",
        "adjudicated": True,
        "final_decision": "confirmed",
        "adjudicated_by": "lead",
    }
    assert records[lead_exc]["second_review"] is None


async def test_a_reopened_exception_resolved_again_carries_only_its_new_resolutions_review(
    api_factory: ApiFactory, api_settings: Settings, tmp_path: Path
) -> None:
    # an id chosen at its first resolution (hash < share) and not at its second
    exc_id = next(
        f"exc-second-{i}" for i in range(1000) if unit_hash(f"exc-second-{i}:1") < 0.5 <= unit_hash(f"exc-second-{i}:2")
    )
    review = _review_file(tmp_path, "default_share = 0.5\n")
    async for w in _world(api_factory, api_settings.model_copy(update={"review_file": review})):
        await w.api.create(exception_id=exc_id)
        await w.resolve(exc_id)
        assert (await w.decide(exc_id, "false_positive")).status_code == 200
        assert (await w.read(exc_id, "second"))["second_review"] == "agreed"
        reopened = await w.api.act(exc_id, "reopen", {"reason": "new facts"}, role="admin")
        assert reopened.status_code == 200, reopened.text
        await w.resolve(exc_id, "confirmed")
        again = await w.read(exc_id, "second")
        assert again["second_review"] is None and again["resolution"]["decision"] == "confirmed"
