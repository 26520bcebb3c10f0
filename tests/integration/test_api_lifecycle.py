"""Claim, escalate, snooze, reopen and optimistic concurrency (ETag / If-Match) through the API."""

from __future__ import annotations

import datetime as dt

from loopgate.common.settings import Settings
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.sweeps.deadlines import wake_due_snoozes
from loopgate_schemas.outcomes import outcome_id_for
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock


def _z(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _in(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


async def test_claim_assigns_the_exception_to_the_caller_by_default(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "claim")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["assignee"]) == ("claimed", "operator-tester")


async def test_claim_may_name_another_assignee(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "claim", {"assignee": "dana"})

    assert response.json()["assignee"] == "dana"


async def test_claiming_what_one_already_holds_changes_nothing(api: Api) -> None:
    exc = await api.create()
    first = await api.act(exc["id"], "claim")

    again = await api.act(exc["id"], "claim")

    assert again.status_code == 200
    assert again.json()["version"] == first.json()["version"]


async def test_open_claimed_resolved_is_the_full_lifecycle_in_the_history(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "claim", {"assignee": "dana"})
    await api.act(exc["id"], "resolve", {"decision": "confirmed"})

    history = (await api.http.get(f"/v1/exceptions/{exc['id']}/history", headers=api.auth("operator"))).json()

    assert [(e["action"], e["from_status"], e["to_status"]) for e in history["items"]] == [
        ("created", None, "open"),
        ("claim", "open", "claimed"),
        ("resolve", "claimed", "resolved"),
    ]
    assert history["items"][1]["fields"] == {"assignee": {"before": None, "after": "dana"}}


async def test_escalate_needs_a_reason_and_is_recorded(api: Api) -> None:
    exc = await api.create()

    missing = await api.act(exc["id"], "escalate", {})
    response = await api.act(exc["id"], "escalate", {"reason": "client is on the phone"})

    assert missing.status_code == 422
    assert missing.json()["message"] == "body.reason: Field required"
    assert response.json()["status"] == "escalated"
    history = (await api.http.get(f"/v1/exceptions/{exc['id']}/history", headers=api.auth("operator"))).json()
    assert history["items"][-1]["fields"] == {"reason": "client is on the phone"}


async def test_escalating_an_escalated_exception_is_409_naming_the_transition(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "escalate", {"reason": "first"})

    response = await api.act(exc["id"], "escalate", {"reason": "second"})

    assert response.status_code == 409
    assert response.json()["detail"] == "cannot escalate: exception is escalated (allowed from: claimed, open)"


async def test_snooze_hides_the_exception_until_the_time_then_it_is_open_again(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    clock = FakeClock()
    async with api_factory(api_settings, clock) as api:
        exc = await api.create()
        until = clock() + dt.timedelta(minutes=10)
        snoozed = await api.act(exc["id"], "snooze", {"until": until.isoformat(), "reason": "waiting for the client"})
        assert (snoozed.json()["status"], snoozed.json()["snoozed_until"]) == (
            "snoozed",
            until.isoformat().replace("+00:00", "Z"),
        )

        clock.advance(10 * 60 - 1)
        assert await wake_due_snoozes(db=api.services.db, clock=api.services.clock) == 0
        clock.advance(1)  # the snooze ends at `until` itself
        assert await wake_due_snoozes(db=api.services.db, clock=api.services.clock) == 1

        body = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
        assert (body["status"], body["snoozed_until"]) == ("open", None)
        history = (await api.http.get(f"/v1/exceptions/{exc['id']}/history", headers=api.auth("operator"))).json()
        assert [(e["action"], e["actor"], e["at"], e["to_status"]) for e in history["items"][-2:]] == [
            ("snooze", "operator-tester", _z(until - dt.timedelta(minutes=10)), "snoozed"),
            ("wake", "system", _z(until), "open"),
        ]


async def test_snoozing_into_the_past_is_422(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "snooze", {"until": _in(-1)})

    assert response.status_code == 422
    assert response.json()["message"] == "body: until must be in the future"


async def test_snoozing_needs_a_timezone(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "snooze", {"until": "2099-01-01T00:00:00"})

    assert response.status_code == 422
    assert response.json()["message"] == "body.until: Input should have timezone info"


async def test_claiming_a_snoozed_exception_ends_the_snooze(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "snooze", {"until": _in(60)})

    body = (await api.act(exc["id"], "claim")).json()

    assert (body["status"], body["snoozed_until"]) == ("claimed", None)


async def test_an_admin_reopens_a_resolved_exception_and_its_next_resolution_is_a_second_outcome(
    api: Api,
) -> None:
    exc = await api.create()
    await api.act(exc["id"], "resolve", {"decision": "confirmed"})

    reopened = await api.act(exc["id"], "reopen", {"reason": "customer complained again"}, role="admin")
    assert reopened.status_code == 200
    assert (reopened.json()["status"], reopened.json()["resolution"]) == ("open", None)

    again = await api.act(exc["id"], "resolve", {"decision": "dismissed", "reason": "known issue"})
    assert again.json()["resolution_count"] == 2
    async with api.services.db.read() as session:
        rows = await store.outbox_for(session=session, exception_id=exc["id"])
    assert [r.outcome_id for r in rows] == [outcome_id_for(exc["id"], 1), outcome_id_for(exc["id"], 2)]


async def test_an_operator_may_not_reopen(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "resolve", {"decision": "confirmed"})

    response = await api.act(exc["id"], "reopen", {"reason": "x"}, role="operator")

    assert response.status_code == 403
    assert response.json() == {"detail": "role 'operator' may not reopen exceptions"}


async def test_reopening_an_open_exception_is_409(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "reopen", {"reason": "x"}, role="admin")

    assert response.status_code == 409
    assert response.json()["detail"] == "cannot reopen: exception is open (allowed from: resolved)"


async def test_reopening_while_another_exception_with_that_fingerprint_is_open_is_409(api: Api) -> None:
    first = await api.create(fingerprint="fp-reopen")
    await api.act(first["id"], "resolve", {"decision": "confirmed"})
    await api.create(fingerprint="fp-reopen")

    response = await api.act(first["id"], "reopen", {"reason": "x"}, role="admin")

    assert response.status_code == 409
    assert "another exception with the fingerprint" in response.json()["detail"]


async def test_get_returns_the_version_as_etag(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "claim")

    response = await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))

    assert response.headers["ETag"] == '"2"'


async def test_a_stale_if_match_is_412_and_changes_nothing(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "claim", {"assignee": "dana"})

    response = await api.act(exc["id"], "resolve", {"decision": "confirmed"}, headers={"If-Match": '"1"'})

    assert response.status_code == 412
    assert response.json()["detail"] == (
        f"If-Match does not match the current version (ETag \"2\") of exception '{exc['id']}'; re-read it and retry"
    )
    current = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    assert current["status"] == "claimed"


async def test_a_current_if_match_lets_the_change_through(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "resolve", {"decision": "confirmed"}, headers={"If-Match": '"1"'})

    assert response.status_code == 200


async def test_the_conditional_update_refuses_a_write_based_on_a_stale_version(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "claim", {"assignee": "first"})  # version 1 -> 2

    async with api.services.db.write() as session, session.begin():
        applied = await store.update_if_version(
            session=session, exception_id=exc["id"], version=1, values={"assignee": "late"}
        )

    assert applied is False
    body = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    assert (body["assignee"], body["version"]) == ("first", 2)


async def test_the_assignee_unclaims_and_history_records_who_had_it(api: Api) -> None:
    exc = await api.create()
    claimed = await api.act(exc["id"], "claim")

    response = await api.act(exc["id"], "unclaim", headers={"If-Match": claimed.headers["ETag"]})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["assignee"], body["version"]) == ("open", None, claimed.json()["version"] + 1)
    history = (await api.http.get(f"/v1/exceptions/{exc['id']}/history", headers=api.auth("operator"))).json()
    last = history["items"][-1]
    assert (last["action"], last["actor"], last["from_status"], last["to_status"]) == (
        "unclaim",
        "operator-tester",
        "claimed",
        "open",
    )
    assert last["fields"] == {"assignee": {"before": "operator-tester", "after": None}}


async def test_someone_elses_claim_is_refused_for_an_operator_and_allowed_for_an_admin(api: Api) -> None:
    exc = await api.create()
    await api.act(exc["id"], "claim", {"assignee": "dana"})

    refused = await api.act(exc["id"], "unclaim")
    unchanged = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    by_admin = await api.act(exc["id"], "unclaim", role="admin")

    assert refused.status_code == 403 and "claimed by 'dana'" in refused.json()["detail"]
    assert (unchanged["status"], unchanged["assignee"]) == ("claimed", "dana")
    assert by_admin.status_code == 200 and by_admin.json()["assignee"] is None


async def test_unclaim_needs_a_claimed_exception_and_the_current_version(api: Api) -> None:
    exc = await api.create()
    assert (await api.act(exc["id"], "unclaim")).status_code == 409
    claimed = await api.act(exc["id"], "claim")
    stale = await api.act(exc["id"], "unclaim", headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert (await api.act("no-such-exception", "unclaim")).status_code == 404
    assert (await api.act(exc["id"], "unclaim", role="analyst")).status_code == 403
    now = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    assert now["version"] == claimed.json()["version"] and now["status"] == "claimed"
