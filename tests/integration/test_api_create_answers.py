"""The create answers (single and batch; created, grouped, duplicate) carry the exception's id, the
result and its version, nothing an operator wrote: the service role may create but not read, so a
guessed fingerprint or a replayed record never shows an assignee, a resolution, its reason or
correction, nor the event. The same lean answer for an admin: one shape, and the Location to read
the rest. Both backends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.api import Api, record

LEAN = {"id", "result", "version"}
SECRET = "the client asked us to keep this between us"


async def worked_on(api: Api) -> dict[str, Any]:
    """An exception an operator claimed, then resolved with a reason and a correction; its record."""
    sent = record()
    assert (await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))).status_code == 201
    claimed = await api.act(sent["exception_id"], "claim", {"assignee": "alice"})
    assert claimed.status_code == 200, claimed.text
    return sent


async def resolve(api: Api, exception_id: str) -> None:
    resolved = await api.act(
        exception_id,
        "resolve",
        {"decision": "corrected", "reason": SECRET, "correction": {"bid_cpm": {"before": 7.2, "after": 6.0}}},
    )
    assert resolved.status_code == 200, resolved.text


def assert_lean(body: dict[str, Any], exception_id: str, result: str, version: int) -> None:
    assert body == {"id": exception_id, "result": result, "version": version}
    assert SECRET not in str(body) and "alice" not in str(body)


@pytest.mark.parametrize("role", ["service", "admin"])
async def test_a_create_answers_with_the_id_the_result_and_the_version_only(api: Api, role: str) -> None:
    sent = record()

    created = await api.http.post("/v1/exceptions", json=sent, headers=api.auth(role))
    again = await api.http.post("/v1/exceptions", json=sent, headers=api.auth(role))

    assert (created.status_code, again.status_code) == (201, 200)
    assert_lean(created.json(), sent["exception_id"], "created", 1)
    assert_lean(again.json(), sent["exception_id"], "duplicate", 1)
    assert created.headers["ETag"] == '"1"' and created.headers["Loopgate-Result"] == "created"
    assert created.headers["Location"] == f"/v1/exceptions/{sent['exception_id']}"


async def test_a_grouped_create_never_shows_the_assignee_nor_the_event(api: Api) -> None:
    sent = await worked_on(api)
    guessed = record(fingerprint=sent["fingerprint"])

    grouped = await api.http.post("/v1/exceptions", json=guessed, headers=api.auth("service"))

    assert grouped.status_code == 200
    assert_lean(grouped.json(), sent["exception_id"], "grouped", 2)  # claimed: version 2


async def test_a_replayed_record_of_a_resolved_exception_never_shows_its_resolution(api: Api) -> None:
    sent = await worked_on(api)
    await resolve(api, sent["exception_id"])

    replayed = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert replayed.status_code == 200
    assert_lean(replayed.json(), sent["exception_id"], "duplicate", 3)
    stored = (await api.http.get(f"/v1/exceptions/{sent['exception_id']}", headers=api.auth("operator"))).json()
    assert stored["status"] == "resolved" and stored["resolution"]["reason"] == SECRET  # still there to read


async def test_each_answer_of_a_batch_is_as_lean_as_a_single_creates(api: Api) -> None:
    sent = await worked_on(api)
    fresh = record()
    grouped = record(fingerprint=sent["fingerprint"])

    response = await api.http.post(
        "/v1/exceptions/batch", json={"records": [fresh, sent, grouped]}, headers=api.auth("service")
    )

    results = response.json()["results"]
    assert [(r["status"], r["result"]) for r in results] == [(201, "created"), (200, "duplicate"), (200, "grouped")]
    assert_lean(results[0]["body"], fresh["exception_id"], "created", 1)
    assert_lean(results[1]["body"], sent["exception_id"], "duplicate", 2)
    assert_lean(results[2]["body"], sent["exception_id"], "grouped", 2)


async def test_the_lean_answer_is_what_openapi_documents(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    create = spec["paths"]["/v1/exceptions"]["post"]["responses"]
    for code in ("200", "201"):
        assert create[code]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ExceptionCreated"
        }
    created = spec["components"]["schemas"]["ExceptionCreated"]
    assert set(created["properties"]) == LEAN and set(created["required"]) == LEAN
    body = spec["components"]["schemas"]["BatchItemResult"]["properties"]["body"]
    assert {"$ref": "#/components/schemas/ExceptionCreated"} in body["anyOf"]
    assert {"$ref": "#/components/schemas/ExceptionRead"} not in body["anyOf"]
