"""A templated route that cannot be filled (the record lacks the field, or its value makes no valid
queue name: a client_id with spaces, a slash-free name that is too long...) is never a silent
fallback: the record goes on to the next route or the default queue, and the routing says why,
naming the route and the field, for the history, the log and a metric."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loopgate.resolution_api.queues.routing import DEFAULT_ROUTES_PATH, RoutingTable, load_routes, route
from loopgate_schemas.exceptions import ExceptionRecord

PACKAGED = load_routes(DEFAULT_ROUTES_PATH)


def claim(client_id: str | None) -> ExceptionRecord:
    value: dict[str, Any] = {
        "exception_id": "exc-1",
        "fingerprint": "claim_verification:post-1",
        "kind": "policy",
        "rule_id": "claim_verification",
        "severity": "medium",
        "source": "content-pipeline.events",
        "subject": "post-1",
        "client_id": client_id,
        "summary": "a claim to verify",
        "detected_at": dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    }
    return ExceptionRecord.model_validate(value)


@pytest.mark.parametrize("client_id", ["northwind", "acme-eu.2", "a:b/c"])
def test_a_client_whose_id_makes_a_queue_name_goes_to_its_reviewers_without_a_note(client_id: str) -> None:
    routed = route(PACKAGED, claim(client_id))
    assert (routed.queue, routed.note) == (f"reviewers-{client_id}", None)


@pytest.mark.parametrize("client_id", ["Acme Corp", "ünïcode", "<b>", "x" * 250, "a\u00a0b", "a?b"])
def test_a_client_whose_id_makes_no_queue_name_goes_to_the_default_queue_saying_why(client_id: str) -> None:
    routed = route(PACKAGED, claim(client_id))

    assert routed.queue == "default"
    assert routed.note is not None
    assert "claims are fact-checked by the client's reviewers" in routed.note  # the route's name
    assert "client_id" in routed.note and "not a valid queue name" in routed.note
    assert "\n" not in routed.note and "\r" not in routed.note


def test_a_record_without_the_field_a_template_names_goes_on_saying_why() -> None:
    routed = route(PACKAGED, claim(None))
    assert routed.queue == "default"
    assert routed.note is not None and "client_id" in routed.note and "no client_id" in routed.note


def test_the_next_route_that_matches_still_wins_and_the_note_stays() -> None:
    table = RoutingTable.model_validate(
        {
            "default_queue": "triage",
            "routes": [
                {"rule": ["claim_verification"], "queue": "reviewers-{client_id}"},
                {"severity": ["medium"], "queue": "medium"},
            ],
        }
    )
    routed = route(table, claim("Acme Corp"))
    assert routed.queue == "medium"
    assert routed.note is not None and "route 1" in routed.note  # an unnamed route by its position


def test_a_note_quotes_the_value_it_could_not_use() -> None:
    routed = route(PACKAGED, claim("Acme Corp"))
    assert routed.note is not None and "'reviewers-Acme Corp'" in routed.note
