"""Silences (contract v2): matching exceptions are stored and counted but held out of the default
queue while a silence lasts, and back when it ends or is expired; every action is audited; roles;
hostile inputs. Time is a FakeClock; the sweeper's pass is run by hand. Both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from loopgate.common.settings import Settings
from tests.fixtures.api import Api, ApiFactory, record
from tests.fixtures.clock import FakeClock

HOUR = 3600


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
async def api(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    async with api_factory(api_settings, clock) as running:
        yield running


def at(clock: FakeClock, seconds: float) -> str:
    return (clock() + dt.timedelta(seconds=seconds)).isoformat()


async def silence(api: Api, *, role: str = "operator", **body: Any) -> dict[str, Any]:
    response = await api.http.post("/v1/silences", json=body, headers=api.auth(role))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


UNRESOLVED = ("open", "claimed", "escalated", "snoozed")


async def queue_ids(api: Api, silenced: str | None = None, statuses: tuple[str, ...] = ()) -> list[str]:
    params = [("silenced", silenced)] if silenced else []
    params += [("status", status) for status in statuses]
    response = await api.http.get("/v1/exceptions", params=params, headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_a_new_matching_exception_is_stored_but_silenced_and_out_of_the_default_queue(
    api: Api, clock: FakeClock
) -> None:
    s = await silence(api, client_id="acme", ends_at=at(clock, HOUR), comment="acme load test")
    held = await api.create(client_id="acme")
    clock.advance(1)
    other = await api.create(client_id="globex")
    assert (held["silenced_by"], other["silenced_by"]) == (s["id"], None)
    assert await queue_ids(api) == [other["id"]]
    assert await queue_ids(api, "true") == [held["id"]]
    assert await queue_ids(api, "all") == [other["id"], held["id"]]
    got = await api.http.get(f"/v1/silences/{s['id']}", headers=api.auth("operator"))
    assert got.json()["silenced"] == 1


async def test_a_silence_holds_the_unresolved_exceptions_it_matches_when_it_is_made(api: Api, clock: FakeClock) -> None:
    open_one = await api.create(rule_id="bid_jump", severity="medium")
    resolved = await api.create(rule_id="bid_jump", severity="medium")
    await api.act(resolved["id"], "resolve", {"decision": "confirmed"})
    other_severity = await api.create(rule_id="bid_jump", severity="high")
    s = await silence(api, rule_id="bid_jump", severity="medium", ends_at=at(clock, HOUR), comment="noisy")
    assert s["silenced"] == 1 and s["state"] == "active"
    assert await queue_ids(api, "true") == [open_one["id"]]
    assert open_one["id"] not in await queue_ids(api)
    assert other_severity["id"] in await queue_ids(api)


async def test_every_matcher_must_hold(api: Api, clock: FakeClock) -> None:
    await silence(
        api,
        rule_id="bid_over_cap",
        client_id="acme",
        subject="li-1",
        source="bid-management.events",
        ends_at=at(clock, HOUR),
        comment="one line item",
    )
    held = await api.create(client_id="acme", subject="li-1")
    not_held = await api.create(client_id="acme", subject="li-2")
    assert (held["silenced_by"] is not None, not_held["silenced_by"]) == (True, None)


async def test_a_silence_that_ends_returns_its_unresolved_exceptions_to_the_queue(api: Api, clock: FakeClock) -> None:
    s = await silence(api, client_id="acme", ends_at=at(clock, HOUR), comment="maintenance")
    held = await api.create(client_id="acme")
    done = await api.create(client_id="acme")
    await api.act(done["id"], "resolve", {"decision": "dismissed", "reason": "maintenance"})
    clock.advance(HOUR - 1)
    await api.services.sweeper.sweep()
    assert held["id"] not in await queue_ids(api)
    clock.advance(1)
    await api.services.sweeper.sweep()
    assert await queue_ids(api, statuses=UNRESOLVED) == [held["id"]]
    assert await queue_ids(api, "true") == []
    listed = await api.http.get("/v1/silences", params={"state": "expired"}, headers=api.auth("operator"))
    (item,) = listed.json()["items"]
    assert (item["id"], item["state"], item["ends_in_seconds"], item["silenced"]) == (s["id"], "expired", None, 0)
    after = await api.create(client_id="acme")
    assert after["silenced_by"] is None


async def test_a_pending_silence_starts_holding_at_its_start(api: Api, clock: FakeClock) -> None:
    s = await silence(api, client_id="acme", starts_at=at(clock, 600), ends_at=at(clock, HOUR), comment="tonight")
    assert (s["state"], s["silenced"]) == ("pending", 0)
    early = await api.create(client_id="acme")
    assert early["silenced_by"] is None
    clock.advance(600)
    await api.services.sweeper.sweep()
    assert await queue_ids(api, "true") == [early["id"]]
    late = await api.create(client_id="acme")
    assert late["silenced_by"] == s["id"]


async def test_expiring_a_silence_early_returns_its_exceptions_at_once(api: Api, clock: FakeClock) -> None:
    s = await silence(api, client_id="acme", ends_at=at(clock, 10 * HOUR), comment="until fixed")
    held = await api.create(client_id="acme")
    clock.advance(60)
    expired = await api.http.post(f"/v1/silences/{s['id']}/expire", headers=api.auth("operator"))
    assert expired.status_code == 200, expired.text
    body = expired.json()
    assert (body["state"], body["ends_at"], body["expired_by"]) == (
        "expired",
        "2026-11-28T09:01:00Z",
        "operator-tester",
    )
    assert await queue_ids(api) == [held["id"]]
    again = await api.http.post(f"/v1/silences/{s['id']}/expire", headers=api.auth("operator"))
    assert again.status_code == 409


async def test_an_overlapping_silence_keeps_holding_when_the_first_is_expired(api: Api, clock: FakeClock) -> None:
    first = await silence(api, client_id="acme", ends_at=at(clock, HOUR), comment="first")
    clock.advance(1)  # the oldest active silence holds an exception
    second = await silence(api, rule_id="bid_over_cap", ends_at=at(clock, 2 * HOUR), comment="second")
    held = await api.create(client_id="acme")
    assert held["silenced_by"] == first["id"]
    await api.http.post(f"/v1/silences/{first['id']}/expire", headers=api.auth("operator"))
    fetched = await api.http.get(f"/v1/exceptions/{held['id']}", headers=api.auth("operator"))
    assert fetched.json()["silenced_by"] == second["id"]
    assert await queue_ids(api) == []


async def test_silenced_exceptions_still_group_and_count(api: Api, clock: FakeClock) -> None:
    await silence(api, client_id="acme", ends_at=at(clock, HOUR), comment="noisy")
    first = await api.create(client_id="acme")
    again = record(fingerprint=first["fingerprint"], client_id="acme", detected_at=clock().isoformat())
    response = await api.http.post("/v1/exceptions", json=again, headers=api.auth("service"))
    stored = await api.http.get(response.headers["Location"], headers=api.auth("operator"))
    assert (response.headers["Loopgate-Result"], stored.json()["occurrences"]) == ("grouped", 2)


async def test_the_list_shows_expiring_soon(api: Api, clock: FakeClock) -> None:
    soon = await silence(api, client_id="a", ends_at=at(clock, 1800), comment="soon")
    later = await silence(api, client_id="b", ends_at=at(clock, 5 * HOUR), comment="later")
    pending = await silence(api, client_id="c", starts_at=at(clock, 60), ends_at=at(clock, 120), comment="next")
    response = await api.http.get("/v1/silences", headers=api.auth("operator"))
    items = {i["id"]: (i["state"], i["ends_in_seconds"], i["expiring_soon"]) for i in response.json()["items"]}
    assert items == {
        soon["id"]: ("active", 1800.0, True),
        later["id"]: ("active", 5 * HOUR, False),
        pending["id"]: ("pending", 120.0, False),
    }
    assert [i["id"] for i in response.json()["items"]] == [pending["id"], soon["id"], later["id"]]


async def test_every_silence_action_is_in_its_audit_trail(api: Api, clock: FakeClock) -> None:
    s = await silence(api, client_id="acme", starts_at=at(clock, 60), ends_at=at(clock, HOUR), comment="why")
    await api.create(client_id="acme")
    clock.advance(60)
    await api.services.sweeper.sweep()
    clock.advance(60)
    await api.http.post(f"/v1/silences/{s['id']}/expire", headers=api.auth("admin"))
    response = await api.http.get(f"/v1/silences/{s['id']}/history", headers=api.auth("operator"))
    events = [(e["action"], e["actor"], e["at"]) for e in response.json()["events"]]
    assert events == [
        ("created", "operator-tester", "2026-11-28T09:00:00Z"),
        ("started", "system", "2026-11-28T09:01:00Z"),
        ("expired", "admin-tester", "2026-11-28T09:02:00Z"),
    ]
    created, started, expired = response.json()["events"]
    assert (created["fields"]["client_id"], created["fields"]["comment"]) == ("acme", "why")
    assert (started["fields"]["held"], expired["fields"]["released"]) == (1, 1)


@pytest.mark.parametrize(("role", "code"), [("operator", 201), ("admin", 201), ("service", 403)])
async def test_operators_and_admins_create_silences_the_service_may_not(
    api: Api, clock: FakeClock, role: str, code: int
) -> None:
    body = {"client_id": "acme", "ends_at": at(clock, HOUR), "comment": "x"}
    response = await api.http.post("/v1/silences", json=body, headers=api.auth(role))
    assert response.status_code == code
    if code == 201:
        assert response.json()["created_by"] == f"{role}-tester"


async def test_the_service_role_may_neither_expire_nor_read_silences(api: Api, clock: FakeClock) -> None:
    s = await silence(api, client_id="acme", ends_at=at(clock, HOUR), comment="x")
    assert (await api.http.post(f"/v1/silences/{s['id']}/expire", headers=api.auth("service"))).status_code == 403
    assert (await api.http.get("/v1/silences", headers=api.auth("service"))).status_code == 403
    assert (await api.http.get("/v1/silences")).status_code == 401


async def test_an_unknown_silence_is_404(api: Api) -> None:
    assert (await api.http.get("/v1/silences/nope", headers=api.auth("operator"))).status_code == 404
    assert (await api.http.post("/v1/silences/nope/expire", headers=api.auth("operator"))).status_code == 404


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"ends_at": "+1h", "comment": "x"}, "match_all: true"),
    ({"match_all": True, "client_id": "acme", "ends_at": "+1h", "comment": "x"}, "takes no matchers"),
    ({"client_id": "", "ends_at": "+1h", "comment": "x"}, "body.client_id"),
    ({"client_id": "a" * 256, "ends_at": "+1h", "comment": "x"}, "body.client_id"),
    ({"rule_id": "bad\u0000rule", "ends_at": "+1h", "comment": "x"}, "rule_id: NUL"),
    ({"client_id": "acme", "ends_at": "+1h", "comment": "x" * 4001}, "body.comment"),
    ({"client_id": "acme", "ends_at": "+1h", "comment": "   "}, "comment: must not be blank"),
    ({"client_id": "acme", "ends_at": "+1h"}, "body.comment"),
    ({"client_id": "acme", "comment": "x"}, "body.ends_at"),
    ({"client_id": "acme", "ends_at": "+1h", "comment": "x", "colour": "red"}, "body.colour"),
    ({"client_id": "acme", "severity": "urgent", "ends_at": "+1h", "comment": "x"}, "body.severity"),
    ({"client_id": "acme", "starts_at": "+2h", "ends_at": "+1h", "comment": "x"}, "ends_at: must be after starts_at"),
    ({"client_id": "acme", "ends_at": "-1h", "comment": "x"}, "body.ends_at: must be in the future"),
    ({"client_id": "acme", "ends_at": "+91d", "comment": "x"}, "body.ends_at: at most 7776000"),
    ({"client_id": "acme", "starts_at": "+91d", "ends_at": "+92d", "comment": "x"}, "body.starts_at: at most"),
    ({"client_id": "acme", "ends_at": "9999-01-01T00:00:00Z", "comment": "x"}, "body.ends_at"),
    ({"client_id": "acme", "ends_at": "tomorrow", "comment": "x"}, "body.ends_at"),
]


def _times(body: dict[str, Any], clock: FakeClock) -> dict[str, Any]:
    units = {"h": HOUR, "d": 24 * HOUR}
    out = dict(body)
    for key in ("starts_at", "ends_at"):
        value = out.get(key)
        if isinstance(value, str) and value[0] in "+-" and value[-1] in units:
            out[key] = at(clock, int(value[:-1]) * units[value[-1]])
    return out


@pytest.mark.parametrize(("body", "named"), HOSTILE)
async def test_a_hostile_silence_is_422_naming_the_field(
    api: Api, clock: FakeClock, body: dict[str, Any], named: str
) -> None:
    response = await api.http.post("/v1/silences", json=_times(body, clock), headers=api.auth("operator"))
    assert response.status_code == 422, response.text
    assert named in response.json()["message"]
    listed = await api.http.get("/v1/silences", params={"state": "expired"}, headers=api.auth("operator"))
    assert listed.json()["items"] == []


async def test_match_all_silences_everything_on_purpose(api: Api, clock: FakeClock) -> None:
    s = await silence(
        api, role="admin", match_all=True, ends_at=at(clock, HOUR), comment="incident: everything is noise"
    )
    held = await api.create()
    assert held["silenced_by"] == s["id"]
    assert await queue_ids(api) == []


async def test_a_bad_silenced_filter_is_422(api: Api) -> None:
    response = await api.http.get("/v1/exceptions", params={"silenced": "maybe"}, headers=api.auth("operator"))
    assert response.status_code == 422


async def test_a_match_all_silence_is_the_admins_alone(api: Api, clock: FakeClock) -> None:
    body = {"match_all": True, "ends_at": at(clock, 90 * 24 * HOUR), "comment": "mute everything"}

    refused = await api.http.post("/v1/silences", json=body, headers=api.auth("operator"))
    allowed = await api.http.post("/v1/silences", json=body, headers=api.auth("admin"))

    assert refused.status_code == 403, refused.text
    assert "admin" in refused.json()["detail"]
    assert allowed.status_code == 201, allowed.text


@pytest.mark.parametrize("max_silences", [1, 3])
async def test_silences_beyond_the_deployments_cap_are_refused_until_one_ends(
    api_factory: ApiFactory, api_settings: Settings, clock: FakeClock, max_silences: int
) -> None:
    settings = api_settings.model_copy(update={"max_silences": max_silences})
    async with api_factory(settings, clock) as api:
        made = [
            await silence(api, rule_id=f"rule-{i}", ends_at=at(clock, HOUR), comment="quiet")
            for i in range(max_silences)
        ]
        one_more = {"rule_id": "rule-x", "ends_at": at(clock, HOUR), "comment": "quiet"}

        refused = await api.http.post("/v1/silences", json=one_more, headers=api.auth("operator"))
        expired = await api.http.post(f"/v1/silences/{made[0]['id']}/expire", headers=api.auth("operator"))
        after_one_ended = await api.http.post("/v1/silences", json=one_more, headers=api.auth("operator"))

    assert refused.status_code == 409, refused.text
    assert "LOOPGATE_MAX_SILENCES" in refused.json()["detail"]
    assert expired.status_code == 200
    assert after_one_ended.status_code == 201, after_one_ended.text
