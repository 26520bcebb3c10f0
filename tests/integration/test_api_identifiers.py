"""A record's identifiers are checked at the door (README "Identifiers"): an exception_id that could
never be addressed, or that forges log lines, is refused with 422 naming it, alone in a batch; any
visible text in a subject or client_id is stored and fully usable. Both backends."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.fixtures.api import Api, record


async def stored(api: Api, exception_id: str) -> int:
    response = await api.http.get(f"/v1/exceptions/{quote(exception_id, safe='')}", headers=api.auth("operator"))
    return response.status_code


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("exception_id", "a/b"),  # stored as 201 once, never addressable
        ("exception_id", "..%2F..%2Fadmin"),
        ("exception_id", "exc-1\r\nINFO forged log line"),
        ("exception_id", "exc 1"),
        ("exception_id", "exc-ü"),
        ("exception_id", "x" * 65),
        ("exception_id", ""),
        ("rule_id", "bid_over_cap\n"),
        ("rule_id", "<!channel>"),
        ("rule_id", "x" * 65),
        ("fingerprint", "bid_over_cap:li-1\r\nforged"),
        ("fingerprint", "x" * 513),
        ("subject", "li-1\u202eevil"),
        ("subject", "\x1b[31mred"),
        ("subject", ""),
        ("client_id", "northwind\n"),
        ("client_id", "\u2028"),
        ("client_id", "x" * 256),
    ],
)
async def test_an_identifier_outside_its_charset_is_422_naming_it_and_stores_nothing(
    api: Api, field: str, value: str
) -> None:
    sent = record(**{field: value})

    response = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
    assert response.json()["message"].startswith(f"body.{field}: ")
    if field != "exception_id":
        assert await stored(api, sent["exception_id"]) == 404


async def test_in_a_batch_a_bad_identifier_fails_alone(api: Api) -> None:
    good = [record(), record()]
    slash = record(exception_id="a/b")

    response = await api.http.post(
        "/v1/exceptions/batch", json={"records": [good[0], slash, good[1]]}, headers=api.auth("service")
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422, 201]
    assert results[1]["body"]["detail"][0]["loc"] == ["body", "exception_id"]
    assert [await stored(api, r["exception_id"]) for r in good] == [200, 200]


@pytest.mark.parametrize(
    "value", ["Acme Corp", "Ünïcødé 製品 🚀", "a/b?c#d&e=f", "<!channel> <https://evil.example|sign in>", "x' OR 1=1"]
)
async def test_any_visible_text_in_a_subject_or_client_id_is_stored_and_usable(api: Api, value: str) -> None:
    sent = record(subject=value, client_id=value, fingerprint=f"bid_over_cap:{value}")

    created = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/v1/exceptions/{quote(sent['exception_id'], safe='')}"
    got = (await api.http.get(f"/v1/exceptions/{sent['exception_id']}", headers=api.auth("operator"))).json()
    assert (got["subject"], got["client_id"], got["fingerprint"]) == (value, value, f"bid_over_cap:{value}")
    listed = await api.http.get("/v1/exceptions", params={"client_id": value}, headers=api.auth("operator"))
    assert [e["id"] for e in listed.json()["items"]] == [sent["exception_id"]]


@pytest.mark.parametrize("exception_id", ["0b9ad2c4-5d1e-5c55-8a0a-3f1f7d2f5d11", "exc:1.2_3", "E" * 64])
async def test_an_exception_id_in_its_charset_is_addressable_as_it_is(api: Api, exception_id: str) -> None:
    sent: dict[str, Any] = record(exception_id=exception_id)
    assert (await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))).status_code == 201
    response = await api.http.get(f"/v1/exceptions/{exception_id}", headers=api.auth("operator"))
    assert response.status_code == 200 and response.json()["id"] == exception_id
