"""Every bad request is a 4xx whose message names the problem, never a 500."""

from __future__ import annotations

import json

from tests.fixtures.api import Api, record


async def test_malformed_json_is_422_saying_so(api: Api) -> None:
    response = await api.http.post(
        "/v1/exceptions",
        content=b'{"exception_id": ',
        headers={**api.auth("service"), "content-type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["message"].startswith("body is not valid JSON: ")


async def test_a_json_array_instead_of_an_object_is_422(api: Api) -> None:
    response = await api.http.post("/v1/exceptions", json=[1, 2], headers=api.auth("service"))

    assert response.status_code == 422
    assert "body" in response.json()["message"]


async def test_a_missing_field_is_422_naming_it(api: Api) -> None:
    sent = record()
    del sent["fingerprint"]

    response = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert response.status_code == 422
    assert response.json()["message"] == "body.fingerprint: Field required"


async def test_a_wrong_type_is_422_naming_the_field(api: Api) -> None:
    response = await api.http.post("/v1/exceptions", json=record(occurrences="many"), headers=api.auth("service"))

    assert response.status_code == 422
    assert response.json()["message"] == (
        "body.occurrences: Input should be a valid integer, unable to parse string as an integer"
    )


async def test_an_unknown_severity_is_422(api: Api) -> None:
    response = await api.http.post("/v1/exceptions", json=record(severity="urgent"), headers=api.auth("service"))

    assert response.status_code == 422
    assert response.json()["message"].startswith("body.severity: Input should be 'info', ")


async def test_a_naive_detected_at_is_422(api: Api) -> None:
    sent = record(detected_at="2026-11-24T09:00:00")

    response = await api.http.post("/v1/exceptions", json=sent, headers=api.auth("service"))

    assert response.status_code == 422
    assert response.json()["message"] == (
        "body.detected_at: must be an RFC 3339 date-time with an offset, e.g. 2026-11-24T09:16:41Z"
    )


async def test_the_422_body_keeps_fastapis_detail_list(api: Api) -> None:
    response = await api.http.post("/v1/exceptions", json={}, headers=api.auth("service"))

    detail = response.json()["detail"]
    assert {"loc": ["body", "exception_id"], "msg": "Field required", "type": "missing"} in detail


async def test_an_unknown_field_in_an_action_body_is_422(api: Api) -> None:
    exc = await api.create()

    response = await api.act(exc["id"], "claim", {"asignee": "dana"})

    assert response.status_code == 422
    assert response.json()["message"] == "body.asignee: Extra inputs are not permitted"


async def test_an_unknown_exception_is_404(api: Api) -> None:
    response = await api.http.get("/v1/exceptions/nope", headers=api.auth("operator"))

    assert response.status_code == 404
    assert response.json() == {"detail": "no exception with id 'nope'"}


async def test_the_history_of_an_unknown_exception_is_404(api: Api) -> None:
    response = await api.http.get("/v1/exceptions/nope/history", headers=api.auth("operator"))

    assert response.status_code == 404


async def test_an_unknown_path_is_404_and_a_wrong_method_405(api: Api) -> None:
    assert (await api.http.get("/v2/nothing")).status_code == 404
    assert (await api.http.put("/v1/exceptions", headers=api.auth("admin"))).status_code == 405


async def test_a_non_finite_number_in_observed_is_stored_as_null(api: Api) -> None:
    content = json.dumps(record(observed={"x": "NOT_A_NUMBER"})).replace('"NOT_A_NUMBER"', "NaN")

    response = await api.http.post(
        "/v1/exceptions", content=content, headers={**api.auth("service"), "content-type": "application/json"}
    )

    assert response.status_code == 201, response.text
    stored = await api.http.get(response.headers["Location"], headers=api.auth("operator"))
    assert stored.json()["observed"] == {"x": None}


async def test_a_nul_character_in_a_query_value_is_422_on_every_database(api: Api) -> None:
    response = await api.http.get("/v1/exceptions", params={"client_id": "a\x00b"}, headers=api.auth("operator"))

    assert response.status_code == 422
    assert response.json()["message"] == "query.client_id: NUL characters (\\u0000) are not allowed"


async def test_a_nul_character_in_an_id_is_422(api: Api) -> None:
    response = await api.http.get("/v1/exceptions/a%00b", headers=api.auth("operator"))

    assert response.status_code == 422
    assert response.json()["message"] == "path.exception_id: NUL characters (\\u0000) are not allowed"


async def test_a_nul_character_in_a_record_is_422_naming_the_field(api: Api) -> None:
    response = await api.http.post(
        "/v1/exceptions", json=record(observed={"note": "a\x00b"}), headers=api.auth("service")
    )

    assert response.status_code == 422
    assert response.json()["message"] == "body: observed.note: NUL characters (\\u0000) are not allowed"


async def test_a_body_that_is_not_utf8_is_400_saying_so(api: Api) -> None:
    exc = await api.create()

    response = await api.http.post(
        f"/v1/exceptions/{exc['id']}/claim",
        content=b"\xff\xfe{",
        headers={**api.auth("operator"), "content-type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "the body could not be read as JSON: it must be UTF-8 encoded JSON"}


async def test_a_detected_at_that_overflows_in_utc_is_422(api: Api) -> None:
    response = await api.http.post(
        "/v1/exceptions", json=record(detected_at="0001-01-01T00:00:00+01:00"), headers=api.auth("service")
    )

    assert response.status_code == 422
    assert response.json()["message"] == (
        "body.detected_at: must be between 1970-01-01T00:00:00+00:00 and 2200-01-01T00:00:00+00:00"
    )


async def test_integers_beyond_64_bits_in_observed_are_kept(api: Api) -> None:
    body = await api.create(observed={"impressions": 2**70, "ratio": 0.5})

    stored = (await api.http.get(f"/v1/exceptions/{body['id']}", headers=api.auth("operator"))).json()

    assert stored["observed"] == {"impressions": 2**70, "ratio": 0.5}
