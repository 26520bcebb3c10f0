"""A record's detected_at must lie in a window around the API's clock (LOOPGATE_RECORD_MAX_AGE_SECONDS
back, LOOPGATE_RECORD_MAX_AHEAD_SECONDS ahead): outside it, a single create and each record of a
batch answer 422 naming detected_at (the dispatcher dead-letters such a record with that answer),
and nothing is stored. Grouping derives first_seen and last_seen from such times and keeps them
in the window too: first_seen never moves backwards, last_seen never past now. Both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from loopgate.common.settings import Settings
from tests.fixtures.api import Api, ApiFactory, record
from tests.fixtures.clock import FakeClock

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
BATCH = "/v1/exceptions/batch"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def api(api_factory: ApiFactory, api_settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    async with api_factory(api_settings, clock) as running:
        yield running


def at(**delta: float) -> str:
    return (NOW + dt.timedelta(**delta)).isoformat()


async def post(api: Api, sent: dict[str, Any]) -> Any:
    return await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))


async def stored(api: Api, exception_id: str) -> dict[str, Any] | None:
    response = await api.http.get(f"/v1/exceptions/{exception_id}", headers=api.auth("operator"))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


OUTSIDE = [
    "9999-12-31T23:59:00Z",  # overflowed date arithmetic in notifications and the console
    "9999-12-31T23:59:59.999999-14:00",
    "0001-01-01T00:00:00Z",  # breached every SLA at once
    "0001-01-01T00:00:00+01:00",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2200-01-01T00:00:00Z",
    at(minutes=5, seconds=1),  # just past the 5 minutes ahead
    at(days=1),
    at(days=-30, seconds=-1),  # just before the 30 days back
    at(days=-365),
]


@pytest.mark.parametrize("detected_at", OUTSIDE)
async def test_a_detected_at_outside_the_window_is_422_naming_it_and_stores_nothing(api: Api, detected_at: str) -> None:
    sent = record(detected_at=detected_at)

    response = await post(api, sent)

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "detected_at"]
    assert response.json()["message"].startswith("body.detected_at: ")
    assert await stored(api, sent["exception_id"]) is None


@pytest.mark.parametrize(
    ("detected_at", "why"),
    [
        ("2026-11-24T12:00:00", "offset"),  # no offset
        ("2026-11-24", "RFC 3339"),  # a bare date
        ("2026-11-24T12:00:00 +0000", "RFC 3339"),
        ("24/11/2026 12:00", "RFC 3339"),
        ("", "RFC 3339"),
        ("now", "RFC 3339"),
        (1795953600, "RFC 3339"),  # a Unix time, even one inside the window
        (1e300, "RFC 3339"),
        (None, ""),
        ("2026-11-24T12:00:00Z\r\nforged: log line", "RFC 3339"),
        ("\uff12\uff10\uff12\uff16-11-24T12:00:00Z", "RFC 3339"),  # full-width digits
    ],
)
async def test_a_detected_at_that_is_not_an_rfc3339_time_with_an_offset_is_422_naming_it(
    api: Api, detected_at: Any, why: str
) -> None:
    response = await post(api, record(detected_at=detected_at))

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "detected_at"]]
    assert why in response.json()["message"]


@pytest.mark.parametrize("detected_at", [at(days=-29, hours=-23), at(minutes=-1), at(), at(minutes=4, seconds=59)])
async def test_a_detected_at_inside_the_window_is_accepted(api: Api, detected_at: str) -> None:
    response = await post(api, record(detected_at=detected_at))
    assert response.status_code == 201, response.text


async def test_the_window_follows_the_settings_and_the_answer_names_them(
    api_factory: ApiFactory, api_settings: Settings, clock: FakeClock
) -> None:
    narrow = api_settings.model_copy(update={"record_max_age_seconds": 3600, "record_max_ahead_seconds": 0})
    async with api_factory(narrow, clock) as api:
        old = await post(api, record(detected_at=at(hours=-2)))
        ahead = await post(api, record(detected_at=at(seconds=1)))
        fine = await post(api, record(detected_at=at(minutes=-59)))

    assert (old.status_code, ahead.status_code, fine.status_code) == (422, 422, 201)
    assert "LOOPGATE_RECORD_MAX_AGE_SECONDS" in old.json()["message"]
    assert "LOOPGATE_RECORD_MAX_AHEAD_SECONDS" in ahead.json()["message"]


async def test_the_window_moves_with_the_clock(api: Api, clock: FakeClock) -> None:
    sent = record(detected_at=at(minutes=10))
    assert (await post(api, sent)).status_code == 422
    clock.advance(6 * 60)
    assert (await post(api, sent)).status_code == 201


async def test_in_a_batch_each_record_outside_the_window_fails_alone_naming_detected_at(api: Api) -> None:
    good = [record(detected_at=at(minutes=-1)), record(detected_at=at())]
    far_future = record(detected_at="9999-12-31T23:59:00Z")
    year_one = record(detected_at="0001-01-01T00:00:00Z", fingerprint=good[0]["fingerprint"])

    response = await api.http.post(
        BATCH, json={"records": [good[0], far_future, year_one, good[1]]}, headers=api.auth("service")
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 422, 201]
    for bad in results[1:3]:
        assert bad["result"] is None
        assert [e["loc"] for e in bad["body"]["detail"]] == [["body", "detected_at"]]
    assert await stored(api, far_future["exception_id"]) is None
    first = await stored(api, good[0]["exception_id"])
    assert first is not None and first["first_seen"] == at(minutes=-1).replace("+00:00", "Z")
    assert first["occurrences"] == 1


# --- what grouping derives ----------------------------------------------------------------------


async def test_grouping_never_moves_first_seen_backwards(api: Api) -> None:
    opened = record(detected_at=at(minutes=-5))
    earlier = record(fingerprint=opened["fingerprint"], detected_at=at(days=-29))
    assert (await post(api, opened)).status_code == 201

    grouped = await post(api, earlier)

    assert grouped.headers["Loopgate-Result"] == "grouped"
    body = await stored(api, opened["exception_id"])
    assert body is not None
    assert body["first_seen"] == at(minutes=-5).replace("+00:00", "Z")
    assert body["last_seen"] == at(minutes=-5).replace("+00:00", "Z")
    assert body["occurrences"] == 2


async def test_grouping_moves_last_seen_forward_but_never_past_now(api: Api) -> None:
    opened = record(detected_at=at(minutes=-5))
    later = record(fingerprint=opened["fingerprint"], detected_at=at(minutes=-1))
    ahead = record(fingerprint=opened["fingerprint"], detected_at=at(minutes=4))  # a detector clock ahead
    await post(api, opened)

    await post(api, later)
    after_later = await stored(api, opened["exception_id"])
    await post(api, ahead)
    after_ahead = await stored(api, opened["exception_id"])

    assert after_later is not None and after_later["last_seen"] == at(minutes=-1).replace("+00:00", "Z")
    assert after_ahead is not None and after_ahead["last_seen"] == at().replace("+00:00", "Z")
    assert after_ahead["first_seen"] == at(minutes=-5).replace("+00:00", "Z")


async def test_an_exception_opened_by_a_record_from_ahead_is_first_seen_now(api: Api) -> None:
    ahead = record(detected_at=at(minutes=4))

    await post(api, ahead)

    body = await stored(api, ahead["exception_id"])
    assert body is not None
    assert (body["first_seen"], body["last_seen"]) == (at().replace("+00:00", "Z"), at().replace("+00:00", "Z"))


async def test_a_batch_groups_its_own_records_within_the_window_as_one_by_one_would(api: Api) -> None:
    first = record(detected_at=at(minutes=-3))
    rest = [
        record(fingerprint=first["fingerprint"], detected_at=when)
        for when in (at(minutes=-10), at(minutes=3), at(minutes=-1))
    ]

    response = await api.http.post(BATCH, json={"records": [first, *rest]}, headers=api.auth("service"))

    assert [r["result"] for r in response.json()["results"]] == ["created", "grouped", "grouped", "grouped"]
    body = await stored(api, first["exception_id"])
    assert body is not None
    assert (body["first_seen"], body["last_seen"], body["occurrences"]) == (
        at(minutes=-3).replace("+00:00", "Z"),
        at().replace("+00:00", "Z"),
        4,
    )
