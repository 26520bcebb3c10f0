"""The API defends itself at the door: a body limit (413) before the body is read, parsed or
authenticated; a JSON depth limit (422); bounds on `correction`, on snooze length and on every
time parameter; If-Match, cursors and time filters are 4xx when wrong, never a 500."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopgate.common.settings import Settings
from loopgate.resolution_api.http.limits import MAX_JSON_DEPTH
from loopgate.resolution_api.schemas import MAX_CORRECTION_BYTES
from tests.fixtures.api import Api, ApiFactory, record


def _nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"x": value}
    return value


def _in(**delta: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(**delta)).isoformat()


# --- body size -------------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_before_authentication(api: Api) -> None:
    limit = api.services.settings.api_max_body_bytes
    body = orjson.dumps(record(summary="x", observed={"pad": "y" * limit}))

    response = await api.http.post("/v1/exceptions", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413  # no token was sent: the size is judged first
    assert response.json() == {"detail": f"request body over the limit of {limit} bytes (LOOPGATE_API_MAX_BODY_BYTES)"}


async def test_a_streamed_body_without_a_length_is_counted_and_refused_past_the_limit(api: Api) -> None:
    limit = api.services.settings.api_max_body_bytes
    chunks_read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(limit // 65536 + 10):
            chunks_read += 1
            yield b" " * 65536

    response = await api.http.post(
        "/v1/exceptions", content=chunks(), headers={**api.auth("service"), "content-type": "application/json"}
    )

    assert response.status_code == 413
    assert "LOOPGATE_API_MAX_BODY_BYTES" in response.json()["detail"]


async def test_a_content_length_that_is_not_a_number_is_400(api: Api) -> None:
    response = await api.http.post(
        "/v1/exceptions", content=b"{}", headers={**api.auth("service"), "content-length": "12abc"}
    )

    assert (response.status_code, response.json()) == (400, {"detail": "Content-Length must be a non-negative integer"})


async def test_a_512_kib_record_fits_under_the_default_limit(api: Api) -> None:
    # The detector's record budget is 512 KiB of JSON, sent by the dispatcher as the bytes it read.
    text = "\u00e9\u00df\u20ac\U0001f600\u200f\u0007" * (500 * 1024 // 20)  # 20 bytes of JSON per repetition
    sent = orjson.dumps(record(event={"id": "evt-big", "data": {"caption": text}}, summary="big"))
    assert 500 * 1024 < len(sent) <= 512 * 1024

    response = await api.http.post(
        "/v1/exceptions", content=sent, headers={**api.auth("service"), "content-type": "application/json"}
    )

    assert response.status_code == 201, response.text[:300]


@pytest.mark.parametrize("value", ["0", "100", "-1", "1e6", "ten", "99999999999999999999999"])
def test_a_body_limit_setting_that_makes_no_sense_is_refused_at_start(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPGATE_API_MAX_BODY_BYTES", value)
    with pytest.raises(ValueError, match="api_max_body_bytes"):
        Settings()


async def test_the_body_limit_comes_from_settings(api_factory: ApiFactory, api_settings: Settings) -> None:
    async with api_factory(api_settings.model_copy(update={"api_max_body_bytes": 4096})) as api:
        small = await api.http.post("/v1/exceptions", json=record(), headers=api.auth("service"))
        big = await api.http.post(
            "/v1/exceptions", json=record(observed={"pad": "y" * 5000}), headers=api.auth("service")
        )

    assert (small.status_code, big.status_code) == (201, 413)


# --- depth -----------------------------------------------------------------------------------


async def test_an_event_nested_hundreds_of_levels_deep_is_refused_at_the_door_naming_the_depth(api: Api) -> None:
    sent = record(event=_nested(300))

    response = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert response.status_code == 422
    assert response.json()["message"] == (
        f"body: JSON nested 301 levels deep; at most {MAX_JSON_DEPTH} levels are accepted"
    )
    listed = await api.http.get("/v1/exceptions", headers=api.auth("operator"))
    assert listed.status_code == 200  # nothing unanswerable was stored


async def test_nesting_up_to_the_limit_is_stored_and_answered(api: Api) -> None:
    sent = record(event=_nested(MAX_JSON_DEPTH - 1))  # the record itself is the first level

    created = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))
    listed = await api.http.get("/v1/exceptions", headers=api.auth("operator"))

    assert created.status_code == 201, created.text[:300]
    assert listed.status_code == 200
    assert listed.json()["items"][0]["event"] == sent["event"]


async def test_brackets_inside_strings_do_not_count_as_depth(api: Api) -> None:
    sent = record(summary="[[[[{{{{" * 20, event={"text": '"[' * 100 + "\\"})

    response = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert response.status_code == 201, response.text[:300]


async def test_a_deep_body_is_refused_on_every_route(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "escalate", _nested(40, "reason"))

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_too_deep"


# --- correction ------------------------------------------------------------------------------


async def test_a_correction_over_its_size_bound_is_422_naming_it(api: Api) -> None:
    exc = await api.create()
    correction = {"caption": {"before": "a", "after": "b" * (MAX_CORRECTION_BYTES + 1)}}

    response = await api.act(exc["id"], "resolve", {"decision": "corrected", "correction": correction})

    assert response.status_code == 422
    assert f"correction: at most {MAX_CORRECTION_BYTES} bytes of JSON" in response.json()["message"]
    assert (await api.http.get(f"/v1/exceptions/{exc['id']}", headers=api.auth("operator"))).json()["status"] == "open"


async def test_a_correction_nested_too_deep_is_422_naming_the_field(api: Api) -> None:
    exc = await api.create()
    correction = {"targeting": {"before": None, "after": _nested(12)}}

    response = await api.act(exc["id"], "resolve", {"decision": "corrected", "correction": correction})

    assert response.status_code == 422
    assert "correction.targeting.after: nested deeper than 8 levels" in response.json()["message"]


async def test_too_many_corrected_fields_are_422(api: Api) -> None:
    exc = await api.create()
    correction = {f"f{i}": {"before": i, "after": i + 1} for i in range(101)}

    response = await api.act(exc["id"], "resolve", {"decision": "corrected", "correction": correction})

    assert response.status_code == 422
    assert "correction: at most 100 fields (got 101)" in response.json()["message"]


async def test_bulk_resolve_bounds_the_correction_too(api: Api) -> None:
    exc = await api.create()
    body = {
        "ids": [exc["id"]],
        "decision": "corrected",
        "correction": {"x": {"before": 1, "after": "z" * (MAX_CORRECTION_BYTES + 1)}},
    }

    response = await api.http.post("/v1/exceptions/bulk-resolve", json=body, headers=api.auth("operator"))

    assert response.status_code == 422
    assert "correction: at most" in response.json()["message"]


# --- snooze ----------------------------------------------------------------------------------


async def test_a_snooze_longer_than_the_bound_is_422_naming_the_setting(api: Api) -> None:
    exc = await api.create()

    too_long = await api.act(exc["id"], "snooze", {"until": _in(days=31)})
    fine = await api.act(exc["id"], "snooze", {"until": _in(days=29)})

    assert too_long.status_code == 422
    assert too_long.json()["message"].startswith(
        "body.until: at most 2.592e+06 seconds ahead (LOOPGATE_MAX_SNOOZE_SECONDS)"
    )
    assert fine.status_code == 200


async def test_the_snooze_bound_comes_from_settings(api_factory: ApiFactory, api_settings: Settings) -> None:
    async with api_factory(api_settings.model_copy(update={"max_snooze_seconds": 3600})) as api:
        exc = await api.create()
        response = await api.act(exc["id"], "snooze", {"until": _in(hours=2)})

    assert response.status_code == 422
    assert "LOOPGATE_MAX_SNOOZE_SECONDS" in response.json()["message"]


@pytest.mark.parametrize(
    "until",
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "2026-11-24T09:00:00",
        "1e400",
        "99999999999999999999",
        "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0664T09:00:00Z",
        "2026-11-24T09:00:00\u202eZ",
        "",
    ],
)
async def test_an_absurd_naive_or_overflowing_snooze_time_is_422(api: Api, until: str) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "snooze", {"until": until})

    assert response.status_code == 422, response.text[:300]
    assert response.json()["message"].startswith("body.until")


@pytest.mark.parametrize("value", ["0", "-5", "1e30", "forever"])
def test_a_snooze_bound_that_makes_no_sense_is_refused_at_start(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPGATE_MAX_SNOOZE_SECONDS", value)
    with pytest.raises(ValueError, match="max_snooze_seconds"):
        Settings()


@pytest.mark.parametrize("value", ["0", "-1", "1e9", "soon"])
def test_a_shutdown_bound_that_makes_no_sense_is_refused_at_start(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPGATE_API_SHUTDOWN_SECONDS", value)
    with pytest.raises(ValueError, match="api_shutdown_seconds"):
        Settings()


# --- time filters, cursors, If-Match: 4xx, never 500 ------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "0001-01-01T00:00:00Z",
        "2026-11-24T09:00:00",
        "2026-11-24",
        "1732438601",
        "2026-13-45T25:61:61Z",
        "2026-11-24T09:00:00.1234567890123Z",
        "\uff19\uff19\uff19\uff19-12-31T00:00:00Z",
        "2026-11-24T09:00:00+99:99",
        "x" * 5000,
    ],
)
async def test_an_absurd_time_filter_is_422_naming_it(api: Api, value: str) -> None:
    response = await api.http.get("/v1/exceptions", params={"detected_after": value}, headers=api.auth("operator"))

    assert response.status_code == 422, response.text[:300]
    assert response.json()["message"].startswith("query.detected_after")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _b64(b'["9999-12-31T23:59:59-23:59", "exc-1"]'),
        _b64(b'["0001-01-01T00:00:00+23:59", "exc-1"]'),
        _b64(b'["2026-11-24T09:00:00+00:00", "exc\\u0000"]'),
        _b64(b'["2026-11-24T09:00:00+00:00", "' + b"x" * 500 + b'"]'),
        _b64(b'["2026-11-24T09:00:00+00:00", "\\ud800"]'),
        _b64(b'["2026-11-24T09:00:00+00:00", 12]'),
        _b64(b'["2026-11-24T09:00:00", "exc-1"]'),
        _b64(b"[[[[[[[[[[[[]]]]]]]]]]]]"),
        _b64(b"\xff\xfe\x00garbage"),
        "\u00e9\u00e9\U0001f600",
        "====",
    ],
)
async def test_a_forged_or_garbage_cursor_is_400(api: Api, cursor: str) -> None:
    response = await api.http.get("/v1/exceptions", params={"cursor": cursor}, headers=api.auth("operator"))

    assert response.status_code == 400, response.text[:300]
    assert "pass next_cursor from a previous page" in response.json()["detail"]


@pytest.mark.parametrize(
    "if_match",
    [
        '"' + "9" * 5000 + '"',
        '"\u00b2"',
        '"\u0661"',
        '"-1"',
        '"1e3"',
        ",".join(['"1"'] * 500),
        'W/"1"',
        '"\U0001f600"',
        "",
    ],
)
async def test_a_garbage_if_match_is_412_never_a_500(api: Api, if_match: str) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "claim", headers={"If-Match": if_match.encode()})

    assert response.status_code == 412, response.text[:300]


_text = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60).map(_b64),
    st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", fullmatch=True),
    st.text(alphabet='0123456789"W/, *', max_size=40),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(cursor=_text, after=_text, before=_text, if_match=_text)
def test_fuzzed_cursors_time_filters_and_if_match_never_give_a_500(
    fuzz_api: tuple[Any, Api, str], cursor: str, after: str, before: str, if_match: str
) -> None:
    portal, api, exception_id = fuzz_api

    async def probe() -> list[int]:
        listed = await api.http.get(
            "/v1/exceptions",
            params={"cursor": cursor, "detected_after": after, "detected_before": before},
            headers=api.auth("operator"),
        )
        header = if_match.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
        claimed = await api.act(exception_id, "snooze", {"until": _in(minutes=5)}, headers={"If-Match": header})
        return [listed.status_code, claimed.status_code]

    statuses = portal.call(probe)

    assert all(code < 500 for code in statuses), statuses


@pytest.fixture
def fuzz_api(api_factory: ApiFactory, api_settings: Settings) -> Iterator[tuple[Any, Api, str]]:
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as portal:
        context = api_factory(api_settings)
        api = portal.call(context.__aenter__)
        exception_id = portal.call(api.create)["id"]
        try:
            yield portal, api, exception_id
        finally:
            portal.call(context.__aexit__, None, None, None)
