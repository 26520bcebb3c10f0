"""GET /v1/export/training-data: decided exceptions as NDJSON training records, streamed in keyset
pages (a page of rows at a time, never the whole result), filtered by time, rule, client, source,
model and decision."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from loopgate.common.settings import Settings
from loopgate.resolution_api.outcomes import export
from loopgate_schemas.outcomes import outcome_id_for
from loopgate_schemas.training import TrainingRecord
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
PAGE_ROWS = 2


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def api(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    settings = api_settings.model_copy(update={"export_page_rows": PAGE_ROWS})
    async with api_factory(settings, clock) as running:
        yield running


def _content_event(model: str = "copywriter-v3", **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:8]}",
        "source": "content-pipeline",
        "type": "content.generated",
        "time": "2026-11-19T23:59:00Z",
        "subject": "post-1",
        "data": {"content_id": "post-1", "client_id": "northwind", "platform": "x", "caption": "Buy now",
                 "model": model, "model_confidence": 0.42, "brand_safety_score": 0.4, **data},
    }  # fmt: skip


async def _decided(api: Api, decision: str = "confirmed", **record: Any) -> str:
    exc = await api.create(detected_at=START.isoformat(), **record)
    body: dict[str, Any] = {"decision": decision, "reason": f"{decision} by test"}
    if decision == "corrected":
        body["correction"] = {"caption": {"before": "Buy now", "after": "Shop the sale"}}
    response = await api.act(exc["id"], "resolve", body)
    assert response.status_code == 200, response.text
    return str(exc["id"])


async def _export(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.http.get("/v1/export/training-data", params=params, headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    return [orjson.loads(line) for line in response.content.splitlines()]


async def test_a_decided_exception_exports_as_one_complete_training_record(api: Api, clock: FakeClock) -> None:
    event = _content_event()
    clock.advance(90)
    exception_id = await _decided(
        api,
        "corrected",
        rule_id="brand_safety",
        kind="policy",
        severity="critical",
        source="content-pipeline.events",
        event_type="content.generated",
        subject="post-1",
        fingerprint="brand_safety:post-1",
        observed={"brand_safety_score": 0.4},
        threshold={"brand_safety_score": 0.7},
        score=0.4,
        event=event,
    )
    await api.create()  # open: not exported
    clock.advance(10)

    (line,) = await _export(api)

    assert TrainingRecord.model_validate(line)
    assert line == {
        "outcome_id": outcome_id_for(exception_id, 1),
        "exception_id": exception_id,
        "rule_id": "brand_safety",
        "source": "content-pipeline.events",
        "decision": "corrected",
        "resolver": "operator-tester",
        "reason": "corrected by test",
        "correction": {"caption": {"before": "Buy now", "after": "Shop the sale"}},
        "resolved_at": "2026-11-20T00:01:30Z",
        "time_to_resolve_seconds": 90.0,
        "event_id": event["id"],
        "event_type": "content.generated",
        "subject": "post-1",
        "client_id": "northwind",
        "kind": "policy",
        "severity": "critical",
        "fingerprint": "brand_safety:post-1",
        "occurrences": 1,
        "observed": {"brand_safety_score": 0.4},
        "threshold": {"brand_safety_score": 0.7},
        "expected": None,
        "score": 0.4,
        "model": "copywriter-v3",
        "model_confidence": 0.42,
        "detected_at": "2026-11-20T00:00:00Z",
        "queue": "default",
        "platform": "x",
        "model_output": {"caption": "Buy now", "model": "copywriter-v3", "model_confidence": 0.42},
        "event": event,
        "trimmed": None,
        "second_review": None,  # not chosen for a second review (issue 26)
    }


async def test_the_export_reads_page_by_page_and_gives_every_row_once(api: Api, clock: FakeClock) -> None:
    """Five resolved at the same instant (ties broken by id), pages of two: three reads, each at
    most two rows, every exception exactly once, in (resolved_at, id) order."""
    ids = sorted([await _decided(api) for _ in range(5)])
    clock.advance(1)
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM exceptions" in statement:
            selects.append(statement)

    engine = api.services.db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        lines = await _export(api)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert [line["exception_id"] for line in lines] == ids
    assert len(selects) == 3 and all("LIMIT" in s.upper() for s in selects)
    filters = export.ExportFilters(until=clock())
    sizes = [len(page) async for page in export.pages(db=api.services.db, filters=filters, page_rows=PAGE_ROWS)]
    assert sizes == [2, 2, 1]


async def test_each_filter_narrows_the_export(api: Api, clock: FakeClock) -> None:
    confirmed = await _decided(api, "confirmed", client_id="acme")
    false_positive = await _decided(api, "false_positive", rule_id="bid_jump")
    content = await _decided(
        api, "dismissed", rule_id="brand_voice", source="content-pipeline.events", event=_content_event("writer-2")
    )
    clock.advance(3600)
    late = await _decided(api, "escalated")
    clock.advance(1)

    async def exported(**params: Any) -> list[str]:
        return [line["exception_id"] for line in await _export(api, **params)]

    assert await exported() == [*sorted([confirmed, false_positive, content]), late]
    assert await exported(client_id="acme") == [confirmed]
    assert await exported(rule_id="bid_jump") == [false_positive]
    assert await exported(source="content-pipeline.events") == [content]
    assert await exported(model="writer-2") == [content]
    assert await exported(decision=["false_positive", "escalated"]) == [false_positive, late]
    assert await exported(since="2026-11-20T00:30:00Z") == [late]
    assert await exported(until="2026-11-20T00:30:00Z") == sorted([confirmed, false_positive, content])
    assert await exported(client_id="nobody") == []


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"since": "last week"}, 422, "since"),
        ({"until": "2026-11-20"}, 422, "until"),
        ({"since": "0001-01-01T00:00:00Z"}, 422, "since"),
        ({"since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, 400, "since"),
        ({"decision": "approved"}, 422, "decision"),
        ({"rule_id": "bid_over_cap' OR 1=1 --"}, 422, "rule_id"),
        ({"source": "x; DROP TABLE exceptions"}, 422, "source"),
        ({"client_id": "c" * 256}, 422, "client_id"),
        ({"model": "gpt\x00"}, 422, "model"),
    ],
)
async def test_hostile_parameters_are_refused_naming_the_problem(
    api: Api, params: dict[str, str], status: int, named: str
) -> None:
    response = await api.http.get("/v1/export/training-data", params=params, headers=api.auth("operator"))

    assert response.status_code == status, response.text
    assert named in response.text


async def test_an_injection_in_a_free_text_filter_is_only_a_value_that_matches_nothing(
    api: Api, clock: FakeClock
) -> None:
    await _decided(api)
    clock.advance(1)

    assert await _export(api, client_id="x' OR '1'='1") == []
    assert await _export(api, model="') OR 1=1; DROP TABLE exceptions; --") == []
    assert len(await _export(api)) == 1


async def test_the_dispatcher_token_may_not_export(api: Api) -> None:
    response = await api.http.get("/v1/export/training-data", headers=api.auth("service"))

    assert response.status_code == 403
