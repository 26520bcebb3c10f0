"""Database error text never reaches a client: it names tables, columns, constraints and values of
other rows. A value the database refuses is a 422 and an unreachable database a 503, each with a
generic message; the database's own text goes to the API's log. Single and batch create, both
backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import DataError, OperationalError

from loopgate.resolution_api.exceptions import store
from tests.fixtures.api import Api, record

SECRET = 'relation "exceptions" column "subject" violates secret_constraint_42 on row li-77'


def failing(kind: type[Exception]) -> Any:
    async def fail(**_: Any) -> Any:
        raise kind("INSERT INTO exceptions ...", {"subject": "li-77"}, Exception(SECRET))

    return fail


@pytest.mark.parametrize(("kind", "status"), [(DataError, 422), (OperationalError, 503)])
async def test_a_database_error_on_create_answers_a_generic_message_and_logs_the_text(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: type[Exception], status: int
) -> None:
    monkeypatch.setattr(store, "find_occurrences", failing(kind))

    response = await api.http.post("/v1/exceptions", json=record(), headers=api.auth("service"))

    assert response.status_code == status
    assert "secret_constraint_42" not in response.text and "li-77" not in response.text
    assert "INSERT" not in response.text and "relation" not in response.text
    assert "database" in response.text  # still says what went wrong, in general
    assert any("secret_constraint_42" in r.getMessage() for r in caplog.records)


async def test_a_database_error_for_one_record_of_a_batch_answers_it_generically(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(store, "find_occurrences", failing(DataError))

    response = await api.http.post(
        "/v1/exceptions/batch", json={"records": [record(), record()]}, headers=api.auth("service")
    )

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [422, 422]
    assert "secret_constraint_42" not in response.text and "li-77" not in response.text
    assert any("secret_constraint_42" in r.getMessage() for r in caplog.records)


async def test_a_database_error_on_a_read_answers_generically(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(**_: Any) -> Any:
        raise OperationalError("SELECT ...", {}, Exception(SECRET))

    monkeypatch.setattr(store, "list_exceptions", fail)

    response = await api.http.get("/v1/exceptions", headers=api.auth("operator"))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "secret_constraint_42" not in response.text
    assert any("secret_constraint_42" in r.getMessage() for r in caplog.records)
