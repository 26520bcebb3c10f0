"""Bulk resolve, and SLAs per severity: a breach escalates the exception, once per SLA."""

from __future__ import annotations

import asyncio
import datetime as dt

from prometheus_client import REGISTRY

from loopgate.common.settings import Settings, Sla
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.sweeps.deadlines import escalate_sla_breaches
from loopgate_schemas.exceptions import Severity
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock


async def test_bulk_resolve_by_ids_resolves_each_and_reports_the_ones_it_could_not(api: Api) -> None:
    a, b = await api.create(), await api.create()
    done = await api.create()
    await api.act(done["id"], "resolve", {"decision": "confirmed"})

    response = await api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={
            "ids": [a["id"], b["id"], done["id"], "nope"],
            "decision": "dismissed",
            "reason": "test campaign",
        },
        headers=api.auth("operator"),
    )

    assert response.status_code == 200
    body = response.json()
    assert [e["id"] for e in body["resolved"]] == [a["id"], b["id"]]
    assert all(e["resolution"]["decision"] == "dismissed" for e in body["resolved"])
    assert [(f["id"], f["status_code"]) for f in body["failed"]] == [(done["id"], 409), ("nope", 404)]
    assert body["failed"][0]["detail"].startswith("cannot resolve: exception is resolved")
    async with api.services.db.read() as session:
        for exc in (a, b):
            assert len(await store.outbox_for(session=session, exception_id=exc["id"])) == 1


async def test_bulk_resolve_by_fingerprint_resolves_the_unresolved_exception_of_that_fingerprint(
    api: Api,
) -> None:
    old = await api.create(fingerprint="fp-bulk")
    await api.act(old["id"], "resolve", {"decision": "confirmed"})
    current = await api.create(fingerprint="fp-bulk")
    other = await api.create(fingerprint="fp-other")

    body = (
        await api.http.post(
            "/v1/exceptions/bulk-resolve",
            json={"fingerprint": "fp-bulk", "decision": "confirmed"},
            headers=api.auth("operator"),
        )
    ).json()

    assert [e["id"] for e in body["resolved"]] == [current["id"]]
    assert body["failed"] == []
    still = (await api.http.get(f"/v1/exceptions/{other['id']}", headers=api.auth("operator"))).json()
    assert still["status"] == "open"


async def test_bulk_resolve_needs_exactly_one_selector(api: Api) -> None:
    for selector in ({}, {"ids": ["a"], "fingerprint": "f"}):
        response = await api.http.post(
            "/v1/exceptions/bulk-resolve",
            json={**selector, "decision": "confirmed"},
            headers=api.auth("operator"),
        )
        assert response.status_code == 422
        assert response.json()["message"] == "body: give exactly one of fingerprint or ids"


async def test_bulk_resolve_checks_the_decision_like_resolve(api: Api) -> None:
    response = await api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={"ids": ["a"], "decision": "false_positive"},
        headers=api.auth("operator"),
    )

    assert response.status_code == 422
    assert response.json()["message"] == "body: decision 'false_positive' needs a reason"


def _breaches(severity: str, sla: str) -> float:
    value = REGISTRY.get_sample_value("loopgate_sla_breaches_total", {"severity": severity, "sla": sla})
    return value or 0.0


def _ago(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)).isoformat()


async def test_an_unclaimed_critical_exception_past_15_minutes_is_escalated_and_recorded(api: Api) -> None:
    late = await api.create(severity="critical", detected_at=_ago(16))
    fresh = await api.create(severity="critical", detected_at=_ago(5))
    before = _breaches("critical", "ack")

    escalated = await escalate_sla_breaches(db=api.services.db, slas=api.services.settings.slas)

    assert escalated == 1
    assert _breaches("critical", "ack") == before + 1
    body = (await api.http.get(f"/v1/exceptions/{late['id']}", headers=api.auth("operator"))).json()
    assert (body["status"], body["sla_breach"]) == ("escalated", "ack")
    assert (await api.http.get(f"/v1/exceptions/{fresh['id']}", headers=api.auth("operator"))).json()["status"] == (
        "open"
    )
    last = (await api.http.get(f"/v1/exceptions/{late['id']}/history", headers=api.auth("operator"))).json()["items"][
        -1
    ]
    assert (last["action"], last["actor"], last["from_status"], last["to_status"]) == (
        "sla_breach",
        "system:sla",
        "open",
        "escalated",
    )
    assert last["fields"]["sla"] == "ack"


async def test_a_claimed_exception_past_its_resolve_sla_is_escalated_once(api: Api) -> None:
    exc = await api.create(severity="high", detected_at=_ago(9 * 60))
    await api.act(exc["id"], "claim")

    first = await escalate_sla_breaches(db=api.services.db, slas=api.services.settings.slas)
    await api.act(exc["id"], "claim")  # someone takes the escalated exception
    second = await escalate_sla_breaches(db=api.services.db, slas=api.services.settings.slas)

    assert (first, second) == (1, 0)
    body = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    assert (body["status"], body["sla_breach"]) == ("claimed", "resolve")


async def test_resolved_exceptions_and_snoozes_within_the_resolve_sla_are_not_escalated(api: Api) -> None:
    snoozed = await api.create(severity="critical", detected_at=_ago(60))  # ack SLA passed, resolve not
    await api.act(snoozed["id"], "snooze", {"until": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()})
    resolved = await api.create(severity="critical", detected_at=_ago(300))
    await api.act(resolved["id"], "resolve", {"decision": "confirmed"})

    assert await escalate_sla_breaches(db=api.services.db, slas=api.services.settings.slas) == 0


async def test_a_snooze_cannot_hide_a_resolve_sla_breach(api: Api) -> None:
    exc = await api.create(severity="critical", detected_at=_ago(60))
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=20)).isoformat()
    assert (await api.act(exc["id"], "snooze", {"until": until})).status_code == 200
    clock = FakeClock()
    clock.advance(65 * 60)  # past the 2 h resolve SLA

    escalated = await escalate_sla_breaches(db=api.services.db, slas=api.services.settings.slas, clock=clock)

    assert escalated == 1
    body = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    assert (body["status"], body["sla_breach"], body["snoozed_until"]) == ("escalated", "resolve", None)
    history = (await api.http.get(f"/v1/exceptions/{exc['id']}/history", headers=api.auth("operator"))).json()
    last = history["items"][-1]
    assert (last["action"], last["from_status"], last["to_status"]) == ("sla_breach", "snoozed", "escalated")


async def test_slas_come_from_settings(api: Api) -> None:
    exc = await api.create(severity="low", detected_at=_ago(2))
    tight = {**api.services.settings.slas, Severity.LOW: Sla(ack_seconds=60, resolve_seconds=3600)}

    assert await escalate_sla_breaches(db=api.services.db, slas=api.services.settings.slas) == 0
    assert await escalate_sla_breaches(db=api.services.db, slas=tight) == 1
    body = (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()
    assert body["status"] == "escalated"


async def test_the_sweeper_wakes_snoozes_and_escalates_breaches_on_its_own(
    api_factory: ApiFactory, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(
        update={
            "sweep_interval_seconds": 0.05,
            "slas": {**api_settings.slas, Severity.MEDIUM: Sla(ack_seconds=60, resolve_seconds=3600)},
        }
    )
    clock = FakeClock()
    async with api_factory(settings, clock) as api:
        breaching = await api.create(severity="medium", detected_at=clock().isoformat())
        snoozed = await api.create(severity="low", detected_at=clock().isoformat())
        until = clock() + dt.timedelta(seconds=30)
        await api.act(snoozed["id"], "snooze", {"until": until.isoformat()})

        async def statuses() -> tuple[str, str]:
            found = []
            for exc in (breaching, snoozed):
                response = await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))
                found.append(str(response.json()["status"]))
            return found[0], found[1]

        async def after_two_sweeps() -> tuple[str, str]:
            async with asyncio.timeout(10):  # passes come every 50 ms of real time
                await api.services.sweeper.next_pass()  # may have read the clock before it moved
                await api.services.sweeper.next_pass()  # read it after
            return await statuses()

        assert await after_two_sweeps() == ("open", "snoozed")  # no time has passed for the app
        clock.advance(61)  # past the snooze and the medium ack SLA
        assert await after_two_sweeps() == ("escalated", "open")
