"""POST /v1/exceptions: idempotent on exception_id, grouped on fingerprint (contract). A create
answers with the id, the result and the version (test_api_create_answers.py); what it stored is
read back as an operator."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from loopgate.resolution_api.exceptions import store
from tests.fixtures.api import Api, record


async def read(api: Api, exception_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/exceptions/{exception_id}", headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def minutes_ago(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)).replace(microsecond=0).isoformat()


def utc(value: str) -> str:
    """How the API writes a time it was sent (UTC, with Z)."""
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


async def test_a_new_record_opens_an_exception_with_201(api: Api) -> None:
    sent = record()
    response = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert response.status_code == 201
    assert response.json() == {"id": sent["exception_id"], "result": "created", "version": 1}
    body = await read(api, sent["exception_id"])
    assert body["id"] == sent["exception_id"]
    assert body["status"] == "open"
    assert body["occurrences"] == 1
    assert body["version"] == 1
    assert body["observed"] == {"bid_cpm": 7.2}
    assert body["event_ref"] == {"topic": "bid-management.events", "partition": 0, "offset": 42}
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/exceptions/{sent['exception_id']}"
    assert response.headers["Loopgate-Result"] == "created"


async def test_the_same_record_again_is_200_with_the_same_exception_and_counts_once(api: Api) -> None:
    sent = record()
    first = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))
    again = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Loopgate-Result"] == "duplicate"
    assert again.json() == {**first.json(), "result": "duplicate"}
    assert (await read(api, sent["exception_id"]))["occurrences"] == 1


async def test_a_record_with_the_fingerprint_of_an_open_exception_becomes_an_occurrence(api: Api) -> None:
    opened, grouped = minutes_ago(10), minutes_ago(5)
    first = await api.create(fingerprint="bid_over_cap:li-1", detected_at=opened)
    second = record(fingerprint="bid_over_cap:li-1", occurrences=3, detected_at=grouped)

    response = await api.http.post("/v1/exceptions", json=second, headers=api.auth("service"))

    assert response.status_code == 200
    assert response.headers["Loopgate-Result"] == "grouped"
    assert response.json() == {"id": first["id"], "result": "grouped", "version": 1}  # a firing is no state change
    body = await read(api, first["id"])
    assert body["occurrences"] == 4
    assert body["first_seen"] == utc(opened)
    assert body["last_seen"] == utc(grouped)
    assert body["version"] == 1


async def test_a_redelivered_occurrence_never_counts_twice(api: Api) -> None:
    await api.create(fingerprint="fp-redelivered")
    occurrence = record(fingerprint="fp-redelivered", occurrences=2)
    for _ in range(3):
        response = await api.http.post("/v1/exceptions", json=occurrence, headers=api.auth("service"))
        assert response.status_code == 200

    assert (await read(api, response.json()["id"]))["occurrences"] == 3


async def test_an_occurrence_arriving_out_of_order_counts_but_never_moves_first_seen_back(api: Api) -> None:
    # SLAs and time to resolve run from first_seen: a late record must not breach them after the fact
    opened = minutes_ago(5)
    first = await api.create(fingerprint="fp-late", detected_at=opened)
    earlier = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=9)).astimezone(dt.timezone(dt.timedelta(hours=1)))
    late = record(fingerprint="fp-late", detected_at=earlier.isoformat())

    await api.http.post("/v1/exceptions", json=late, headers=api.auth("service"))

    body = await read(api, first["id"])
    assert (body["first_seen"], body["last_seen"], body["occurrences"]) == (utc(opened), utc(opened), 2)


async def test_after_resolution_the_next_record_with_that_fingerprint_opens_a_new_exception(api: Api) -> None:
    first = await api.create(fingerprint="fp-again")
    resolved = await api.act(first["id"], "resolve", {"decision": "confirmed"})
    assert resolved.status_code == 200

    response = await api.http.post("/v1/exceptions", json=record(fingerprint="fp-again"), headers=api.auth("service"))

    assert response.status_code == 201
    assert response.json()["id"] != first["id"]
    assert (await read(api, response.json()["id"]))["occurrences"] == 1


async def test_redelivering_the_record_of_a_resolved_exception_returns_it_and_does_not_reopen(
    api: Api,
) -> None:
    sent = record()
    await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))
    await api.act(sent["exception_id"], "resolve", {"decision": "confirmed"})

    again = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert again.status_code == 200
    assert again.headers["Loopgate-Result"] == "duplicate"
    assert (await read(api, sent["exception_id"]))["status"] == "resolved"


async def test_audit_samples_with_distinct_fingerprints_are_separate_exceptions(api: Api) -> None:
    a = await api.create(kind="audit_sample", severity="info", fingerprint="audit_sample:evt-1")
    b = await api.create(kind="audit_sample", severity="info", fingerprint="audit_sample:evt-2")

    assert a["id"] != b["id"]


async def test_concurrent_records_with_one_fingerprint_open_exactly_one_exception(api: Api) -> None:
    records = [record(fingerprint="fp-burst", occurrences=1) for _ in range(12)]

    responses = await asyncio.gather(
        *(api.http.post("/v1/exceptions", json=r, headers=api.auth("service")) for r in records)
    )

    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert {r.json()["id"] for r in responses} == {next(r for r in responses if r.status_code == 201).json()["id"]}
    async with api.services.db.read() as session:
        (only,) = [
            row
            for row in await store.list_exceptions(
                session=session, filters=store.ExceptionFilters(), after=None, limit=100
            )
            if row.fingerprint == "fp-burst"
        ]
    assert only.occurrences == 12


async def test_the_same_record_sent_concurrently_opens_one_exception(api: Api) -> None:
    sent = record()

    responses = await asyncio.gather(
        *(api.http.post("/v1/exceptions", json=sent, headers=api.auth("service")) for _ in range(6))
    )

    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert {r.json()["id"] for r in responses} == {sent["exception_id"]}
    assert (await read(api, sent["exception_id"]))["occurrences"] == 1


async def test_creation_and_grouping_are_recorded_in_the_history(api: Api) -> None:
    first = await api.create(fingerprint="fp-history")
    second = record(fingerprint="fp-history", occurrences=2)
    await api.http.post("/v1/exceptions", json=second, headers=api.auth("service"))

    history = (await api.http.get(f"/v1/exceptions/{first['id']}/history", headers=api.auth("operator"))).json()

    assert [(e["action"], e["actor"], e["from_status"], e["to_status"]) for e in history["items"]] == [
        ("created", "service-tester", None, "open"),
        ("grouped", "service-tester", "open", "open"),
    ]
    assert history["items"][1]["fields"] == {"record_id": second["exception_id"], "occurrences": 2}
    assert dt.datetime.fromisoformat(history["items"][0]["at"]).tzinfo is not None
