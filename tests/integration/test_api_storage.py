"""What the detector produces is stored and answered exactly, on SQLite and PostgreSQL: any
Unicode it can carry (emoji, RTL marks, control characters, astral and noncharacters) within
the 512 KiB record budget, and its `trimmed` paths. What no database can store (NUL, lone
surrogates) is a 422 naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fixtures.api import Api, record

# Every kind of character the detector leaves in text: controls but NUL, format and bidi marks,
# line/paragraph separators, BOM, combining marks, noncharacters, astral emoji with modifiers.
HOSTILE_TEXT = (
    "".join(chr(c) for c in range(1, 32))
    + "\x7f\x80\x9f"
    + "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    + "\u2028\u2029\ufeff\ufffe\uffff\ufffd"
    + "e\u0301 \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u4e2d\u6587 "
    + "\u0928\u092e\u0938\u094d\u0924\u0947"
    + "\U0001f600\U0001f469\U0001f3fd\u200d\U0001f4bb\U0001f1eb\U0001f1f7\U0010fffd"
    + "\\ \" ' < > & %00 \\u0000 {} [] \t"
)


async def _post_raw(api: Api, body: bytes) -> Any:
    return await api.http.post(
        "/v1/exceptions", content=body, headers={**api.auth("service"), "content-type": "application/json"}
    )


async def test_any_text_the_detector_leaves_is_stored_and_answered_exactly(api: Api) -> None:
    sent = record(
        subject="li-\ufffd\U0001f600",  # the detector replaces controls and bidi marks in identifiers
        summary=HOSTILE_TEXT[:1000],
        client_id="\u05e9\u05dc\u05d5\u05dd",
        observed={HOSTILE_TEXT[:40]: HOSTILE_TEXT, "n": 1},
        event={"id": "evt-1", "data": {"caption": HOSTILE_TEXT * 3, HOSTILE_TEXT[:20]: [HOSTILE_TEXT]}},
        trimmed=["$.data.caption", "$.data['\u202e']"],
    )

    created = await _post_raw(api, orjson.dumps(sent))
    got = await api.http.get(f"/v1/exceptions/{sent['exception_id']}", headers=api.auth("operator"))
    listed = await api.http.get("/v1/exceptions", params={"client_id": sent["client_id"]}, headers=api.auth("operator"))

    assert created.status_code == 201, created.text[:300]
    body = got.json()
    for field in ("subject", "summary", "client_id", "observed", "event", "trimmed"):
        assert body[field] == sent[field], field
    assert [item["id"] for item in listed.json()["items"]] == [sent["exception_id"]]


async def test_a_record_at_the_512_kib_budget_full_of_multibyte_text_is_stored(api: Api) -> None:
    text = ("\U0001f600\u05e9\u200f\x01" * 40_000)[:136_000]
    sent = record(event={"id": "evt-big", "data": {"caption": text}}, trimmed=["$.data.caption"])
    body = orjson.dumps(sent)
    assert 450 * 1024 < len(body) <= 512 * 1024

    created = await _post_raw(api, body)
    got = await api.http.get(f"/v1/exceptions/{sent['exception_id']}", headers=api.auth("operator"))

    assert created.status_code == 201, created.text[:300]
    assert got.json()["event"]["data"]["caption"] == text


@pytest.mark.parametrize(
    ("raw_value", "path"),
    [
        (b'{"data": {"caption": "ok\\u0000"}}', "event.data.caption"),
        (b'{"data": {"caption": "\\ud800 alone"}}', "event.data.caption"),
        (b'{"data": {"tags": ["fine", "\\udfff"]}}', "event.data.tags.1"),
        (b'{"data": {"bad\\u0000key": 1}}', "event.data.bad\x00key (key)"),
    ],
)
async def test_text_no_database_can_store_is_422_naming_the_field(api: Api, raw_value: bytes, path: str) -> None:
    sent = orjson.dumps(record(event={"placeholder": True})).replace(b'{"placeholder":true}', raw_value)

    response = await _post_raw(api, sent)

    assert response.status_code == 422, response.text[:300]
    assert path.split(" ")[0].replace("\x00", "\\x00")[:10] in response.json()["message"].replace("\x00", "\\x00")


@pytest.mark.parametrize("field", ["summary", "subject", "client_id"])
async def test_a_lone_surrogate_in_a_text_field_is_422_naming_it(api: Api, field: str) -> None:
    sent = orjson.dumps(record(**{field: "PLACEHOLDER"})).replace(b"PLACEHOLDER", b"x\\ud83d")

    response = await _post_raw(api, sent)

    assert response.status_code == 422, response.text[:300]
    assert field in response.json()["message"]


async def test_a_nul_in_trimmed_is_422_naming_it(api: Api) -> None:
    response = await _post_raw(api, orjson.dumps(record(trimmed=["$.data.a\x00"])))

    assert response.status_code == 422
    assert response.json()["message"].startswith("body: trimmed.0: NUL characters")
