"""GET /v1/stats/verdicts: counts per decision, precision ((confirmed + corrected) / judged, judged =
confirmed + corrected + false_positive) and nearest-rank median and p90 time to resolve, per rule
and per rule x client, platform or model, over a window of resolution times; and the Prometheus
counters bumped at each resolution."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from loopgate.common.settings import Settings
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock

START = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
ZERO = {"confirmed": 0, "corrected": 0, "false_positive": 0, "dismissed": 0, "escalated": 0}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def api(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    async with api_factory(api_settings, clock) as running:
        yield running


def _event(**data: Any) -> dict[str, Any]:
    return {"id": f"evt-{uuid.uuid4().hex[:8]}", "type": "content.generated", "data": data}


async def _decided(api: Api, clock: FakeClock, after_seconds: float, decision: str, **record: Any) -> str:
    """An exception detected now, resolved `after_seconds` later (the clock moves back after)."""
    exc = await api.create(detected_at=clock().isoformat(), **record)
    clock.advance(after_seconds)
    body: dict[str, Any] = {"decision": decision, "reason": "checked"}
    if decision == "corrected":
        body["correction"] = {"bid_cpm": {"before": 7.2, "after": 6.0}}
    response = await api.act(exc["id"], "resolve", body)
    assert response.status_code == 200, response.text
    clock.advance(-after_seconds)
    return str(exc["id"])


async def _stats(api: Api, **params: str) -> dict[str, Any]:
    response = await api.http.get("/v1/stats/verdicts", params=params, headers=api.auth("operator"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_per_rule_counts_precision_over_judged_and_nearest_rank_times(api: Api, clock: FakeClock) -> None:
    for seconds, decision in [(60, "confirmed"), (120, "corrected"), (180, "false_positive"), (240, "dismissed")]:
        await _decided(api, clock, seconds, decision)
    await _decided(api, clock, 300, "escalated")
    await _decided(api, clock, 30, "false_positive", rule_id="brand_voice")
    await _decided(api, clock, 90, "dismissed", rule_id="pacing_off")
    await api.create(rule_id="bid_over_cap")  # open: not a verdict
    clock.advance(3600)

    body = await _stats(api)

    assert (body["since"], body["until"]) == ("2026-10-21T01:00:00Z", "2026-11-20T01:00:00Z")
    assert body["groups"] == [
        {
            "rule_id": "bid_over_cap",
            "by": {},
            "counts": {"confirmed": 1, "corrected": 1, "false_positive": 1, "dismissed": 1, "escalated": 1},
            "resolved": 5,
            "judged": 3,
            "precision": pytest.approx(2 / 3),
            "time_to_resolve_seconds": {"median": 180.0, "p90": 300.0},
        },
        {
            "rule_id": "brand_voice",
            "by": {},
            "counts": {**ZERO, "false_positive": 1},
            "resolved": 1,
            "judged": 1,
            "precision": 0.0,
            "time_to_resolve_seconds": {"median": 30.0, "p90": 30.0},
        },
        {
            "rule_id": "pacing_off",
            "by": {},
            "counts": {**ZERO, "dismissed": 1},
            "resolved": 1,
            "judged": 0,
            "precision": None,
            "time_to_resolve_seconds": {"median": 90.0, "p90": 90.0},
        },
    ]


async def test_grouped_by_client_one_group_per_rule_and_client(api: Api, clock: FakeClock) -> None:
    await _decided(api, clock, 10, "confirmed", client_id="northwind")
    await _decided(api, clock, 20, "false_positive", client_id="northwind")
    await _decided(api, clock, 40, "false_positive", client_id="acme")
    clock.advance(60)

    body = await _stats(api, group_by="client", rule_id="bid_over_cap")

    summary = [(g["by"], g["resolved"], g["precision"], g["time_to_resolve_seconds"]) for g in body["groups"]]
    assert summary == [
        ({"client": "acme"}, 1, 0.0, {"median": 40.0, "p90": 40.0}),
        ({"client": "northwind"}, 2, 0.5, {"median": 10.0, "p90": 20.0}),
    ]


@pytest.mark.parametrize(("group_by", "field"), [("platform", "platform"), ("model", "model")])
async def test_grouped_by_platform_or_model_read_from_the_event(
    api: Api, clock: FakeClock, group_by: str, field: str
) -> None:
    values = {"platform": ("instagram", "x"), "model": ("copywriter-v3", "copywriter-v4")}[field]
    await _decided(api, clock, 10, "confirmed", rule_id="brand_safety", event=_event(**{field: values[0]}))
    await _decided(api, clock, 20, "corrected", rule_id="brand_safety", event=_event(**{field: values[1]}))
    await _decided(api, clock, 30, "false_positive", rule_id="brand_safety", event=_event(**{field: values[1]}))
    await _decided(api, clock, 40, "confirmed", rule_id="brand_safety", event=_event())
    clock.advance(60)

    body = await _stats(api, group_by=group_by)

    summary = [(g["by"], g["counts"], g["precision"]) for g in body["groups"]]
    assert summary == [
        ({group_by: values[0]}, {**ZERO, "confirmed": 1}, 1.0),
        ({group_by: values[1]}, {**ZERO, "corrected": 1, "false_positive": 1}, 0.5),
        ({group_by: None}, {**ZERO, "confirmed": 1}, 1.0),
    ]


async def test_only_resolutions_inside_the_window_count(api: Api, clock: FakeClock) -> None:
    await _decided(api, clock, 10, "confirmed")
    clock.advance(86400)
    await _decided(api, clock, 10, "false_positive")
    clock.advance(86400)

    first_day = await _stats(api, since="2026-11-20T00:00:00Z", until="2026-11-21T00:00:00Z")
    second_day = await _stats(api, since="2026-11-21T00:00:00Z", until="2026-11-22T00:00:00Z")
    before = await _stats(api, since="2026-11-19T00:00:00Z", until="2026-11-20T00:00:00Z")

    assert [g["counts"] for g in first_day["groups"]] == [{**ZERO, "confirmed": 1}]
    assert [g["counts"] for g in second_day["groups"]] == [{**ZERO, "false_positive": 1}]
    assert before["groups"] == []


async def test_a_reopened_exception_counts_once_with_its_latest_verdict(api: Api, clock: FakeClock) -> None:
    exception_id = await _decided(api, clock, 10, "confirmed")
    assert (await api.act(exception_id, "reopen", {"reason": "wrong call"}, role="admin")).status_code == 200
    assert (await api.act(exception_id, "resolve", {"decision": "dismissed", "reason": "test"})).status_code == 200
    clock.advance(60)

    body = await _stats(api)

    assert [g["counts"] for g in body["groups"]] == [{**ZERO, "dismissed": 1}]


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"group_by": "campaign"}, 422, "group_by"),
        ({"group_by": "client; DROP TABLE exceptions"}, 422, "group_by"),
        ({"rule_id": "x' OR '1'='1"}, 422, "rule_id"),
        ({"rule_id": "r" * 65}, 422, "rule_id"),
        ({"since": "yesterday"}, 422, "since"),
        ({"since": "1700000000"}, 422, "since"),
        ({"until": "2026-11-20T00:00:00"}, 422, "until"),
        ({"until": "9999-12-31T23:59:59Z"}, 422, "until"),
        ({"since": "2026-11-20T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, 400, "since"),
        ({"since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, 400, "since"),
        ({"since": "1970-01-01T00:00:00Z", "until": "2199-01-01T00:00:00Z"}, 400, "366 days"),
        ({"rule_id": "bid\x00cap"}, 422, "rule_id"),
    ],
)
async def test_hostile_parameters_are_refused_naming_the_problem(
    api: Api, params: dict[str, str], status: int, named: str
) -> None:
    response = await api.http.get("/v1/stats/verdicts", params=params, headers=api.auth("operator"))

    assert response.status_code == status, response.text
    assert named in response.text


async def test_the_dispatcher_token_may_not_read_verdicts(api: Api) -> None:
    response = await api.http.get("/v1/stats/verdicts", headers=api.auth("service"))

    assert response.status_code == 403


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_each_resolution_bumps_the_bounded_prometheus_verdict_series(api: Api, clock: FakeClock) -> None:
    rule = "pacing_off"  # a rule of the detector's: any other rule_id is counted as `other` (test_metric_labels.py)
    series = [
        ("loopgate_resolutions_total", {"decision": "false_positive", "rule": rule}),
        ("loopgate_resolutions_total", {"decision": "confirmed", "rule": rule}),
        ("loopgate_rule_time_to_resolve_seconds_count", {"rule": rule}),
        ("loopgate_rule_time_to_resolve_seconds_sum", {"rule": rule}),
    ]
    before = [_sample(name, **labels) for name, labels in series]
    await _decided(api, clock, 120, "false_positive", rule_id=rule)
    await _decided(api, clock, 600, "confirmed", rule_id=rule)

    after = [_sample(name, **labels) for name, labels in series]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 2, 720]
