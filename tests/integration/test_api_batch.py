"""The batched create (POST /v1/exceptions/batch) answers each record, and stores it, exactly as
creating the records one by one, in the same order, would: storms with redeliveries, records out
of order in time, bad records mixed in, and resolutions between the batches. Both backends."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow, OccurrenceRow, OutboxRow
from tests.fixtures.api import Api, ApiFactory, record
from tests.fixtures.clock import FakeClock
from tests.fixtures.postgres import PostgresServer

BATCH = "/v1/exceptions/batch"


def bad_record(rng: random.Random, n: int) -> Any:
    """A record the API refuses, each in its own way."""
    good = record(exception_id=f"bad-{n}")
    kind = rng.randrange(6)
    if kind == 0:
        return {**good, "severity": "catastrophic"}
    if kind == 1:
        return {k: v for k, v in good.items() if k != "fingerprint"}
    if kind == 2:
        return {**good, "summary": "nul \x00 inside"}
    if kind == 3:
        return [good]
    if kind == 4:
        deep: Any = 1
        for _ in range(40):
            deep = [deep]
        return {**good, "observed": {"deep": deep}}
    return {**good, "occurrences": -3}


def storm(seed: int, size: int = 150) -> list[list[Any]]:
    """Batches of a storm: few fingerprints, redeliveries (within and across batches), records out
    of order in time, bad records mixed in."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 24, 9, tzinfo=dt.UTC)
    sent: list[Any] = []
    for n in range(size):
        roll = rng.random()
        if sent and roll < 0.2:
            sent.append(rng.choice(sent))  # redelivered
        elif roll < 0.3:
            sent.append(bad_record(rng, n))
        else:
            sent.append(
                record(
                    exception_id=f"rec-{seed}-{n}",
                    fingerprint=f"bid_over_cap:li-{rng.randrange(5)}",
                    occurrences=rng.randrange(1, 4),
                    detected_at=(start + dt.timedelta(minutes=rng.randrange(90))).isoformat(),
                )
            )
    batches, i = [], 0
    while i < len(sent):
        step = rng.randrange(1, 40)
        batches.append(sent[i : i + step])
        i += step
    return batches


async def one_by_one(api: Api, records: list[Any]) -> list[dict[str, Any]]:
    answers = []
    for r in records:
        response = await api.http.post("/v1/exceptions", json=r, headers=api.auth("service"))
        answers.append(
            {"status": response.status_code, "result": response.headers.get("Loopgate-Result"), "body": response.json()}
        )
    return answers


async def batched(api: Api, records: list[Any]) -> list[dict[str, Any]]:
    response = await api.http.post(BATCH, json={"records": records}, headers=api.auth("service"))
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def resolve_one_fingerprint(api: Api, fingerprint: str) -> None:
    response = await api.http.post(
        "/v1/exceptions/bulk-resolve",
        json={"fingerprint": fingerprint, "decision": "confirmed"},
        headers=api.auth("operator"),
    )
    assert response.status_code == 200, response.text


async def stored_rows(api: Api) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, tuple[Any, sa.ColumnElement[Any]]] = {
        "exceptions": (ExceptionRow, ExceptionRow.id),
        "occurrences": (OccurrenceRow, OccurrenceRow.record_id),
        "history": (ExceptionEventRow, ExceptionEventRow.id),
        "outbox": (OutboxRow, OutboxRow.id),
    }
    found = {}
    async with api.services.db.read() as session:
        for name, (model, order) in tables.items():
            # Not the ids history and outbox rows get, nor the relay's attempts to reach Kafka (none here)
            skip = {"exceptions": ()}.get(name, ("id", "attempts", "last_error"))
            columns = [c for c in model.__table__.columns if c.name not in skip]
            rows = (await session.execute(sa.select(*columns).order_by(order))).all()
            found[name] = [tuple(row) for row in rows]
    return found


@pytest.fixture
async def other_database_url(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url(await server.create_database())


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_answers_and_stores_as_one_by_one_would(
    api_factory: ApiFactory, api_settings: Settings, other_database_url: str, seed: int
) -> None:
    clock = FakeClock(dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC))
    other = api_settings.model_copy(update={"database_url": other_database_url})
    async with api_factory(api_settings, clock) as single, api_factory(other, clock) as batch:
        for n, records in enumerate(storm(seed)):
            assert await batched(batch, records) == await one_by_one(single, records)
            clock.advance(7)
            if n % 4 == 3:  # a resolution between batches: the next record of it opens a new one
                fingerprint = f"bid_over_cap:li-{n % 5}"
                await resolve_one_fingerprint(single, fingerprint)
                await resolve_one_fingerprint(batch, fingerprint)
        assert await stored_rows(batch) == await stored_rows(single)


async def test_one_bad_record_fails_alone(api: Api) -> None:
    good = [record(), record()]
    results = await batched(api, [good[0], {**record(), "severity": "catastrophic"}, good[1]])
    assert [r["status"] for r in results] == [201, 422, 201]
    assert results[1]["body"]["detail"][0]["loc"] == ["body", "severity"]
    for r in good:
        response = await api.http.get(f"/v1/exceptions/{r['exception_id']}", headers=api.auth("operator"))
        assert response.status_code == 200


async def test_more_records_than_the_limit_are_refused_whole(api_factory: ApiFactory, api_settings: Settings) -> None:
    async with api_factory(api_settings.model_copy(update={"batch_max_records": 3})) as api:
        response = await api.http.post(
            BATCH, json={"records": [record() for _ in range(4)]}, headers=api.auth("service")
        )
        assert response.status_code == 422
        assert "LOOPGATE_BATCH_MAX_RECORDS" in response.json()["message"]
        assert (await api.http.get("/v1/exceptions", headers=api.auth("operator"))).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"not json", 422), (b'{"records": {}}', 422), (b"[]", 422), (b'{"records": [], "more": 1}', 422)],
)
async def test_a_body_that_is_not_a_batch_is_refused_whole(api: Api, body: bytes, status: int) -> None:
    response = await api.http.post(
        BATCH, content=body, headers={**api.auth("service"), "content-type": "application/json"}
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize("role", ["operator", None])
async def test_the_batch_needs_the_service_role(api: Api, role: str | None) -> None:
    headers = api.auth(role) if role else {}
    response = await api.http.post(BATCH, json={"records": [record()]}, headers=headers)
    assert response.status_code == (403 if role else 401)


async def test_the_batch_is_documented(api: Api) -> None:
    document = (await api.http.get("/openapi.json")).json()
    body = document["paths"][BATCH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ExceptionBatch"}
    assert "records" in document["components"]["schemas"]["ExceptionBatch"]["properties"]
