"""What a token may be, and the scope it gives, as pure functions (tokens.py, permissions.py)."""

from __future__ import annotations

import datetime as dt

import pytest
import typer

from loopgate.cli.api import parse_duration
from loopgate.resolution_api.access.permissions import AGENCY_WIDE, NOTHING, Role, Scope, scope_for
from loopgate.resolution_api.access.tokens import check_token_request


def test_a_reviewer_sees_only_its_clients_reviewer_queues() -> None:
    scope = scope_for(Role.REVIEWER, ["northwind", "contoso"])

    assert scope == Scope(
        clients=frozenset({"northwind", "contoso"}),
        queues=frozenset({"reviewers-northwind", "reviewers-contoso"}),
    )
    assert scope.covers(client_id="northwind", queue="reviewers-northwind")
    assert not scope.covers(client_id="northwind", queue="default")
    assert not scope.covers(client_id="tailspin", queue="reviewers-northwind")
    assert scope.describe() == "clients contoso, northwind (queues reviewers-contoso, reviewers-northwind)"


def test_a_reviewer_naming_no_client_sees_nothing_and_others_are_agency_wide() -> None:
    assert scope_for(Role.REVIEWER, None) == NOTHING
    assert not NOTHING.covers(client_id="northwind", queue="reviewers-northwind")
    assert scope_for(Role.OPERATOR, None) == AGENCY_WIDE
    assert AGENCY_WIDE.describe() == "every client"


def test_an_operator_scoped_to_a_client_sees_every_queue_of_that_client() -> None:
    scope = scope_for(Role.ANALYST, ["tailspin"])

    assert scope.covers(client_id="tailspin", queue="default")
    assert not scope.covers(client_id="northwind", queue="default")


@pytest.mark.parametrize(
    ("name", "role", "clients", "problem"),
    [
        ("", Role.OPERATOR, None, "name: must be non-empty, without leading or trailing spaces"),
        (" alice", Role.OPERATOR, None, "name: must be non-empty, without leading or trailing spaces"),
        ("a" * 65, Role.OPERATOR, None, "name: at most 64 characters"),
        ("alice\nadmin", Role.OPERATOR, None, "name: control characters are not allowed"),
        ("bob\x1b[31m", Role.OPERATOR, None, "name: control characters are not allowed"),
        ("system:sla", Role.OPERATOR, None, "name: the prefix 'system:' is reserved for Loopgate's own actors"),
        ("SYSTEM:x", Role.ADMIN, None, "name: the prefix 'system:' is reserved for Loopgate's own actors"),
        ("nw", Role.REVIEWER, None, "clients: a reviewer token must name the clients it serves"),
        ("nw", Role.REVIEWER, [], "clients: name at least one client, or leave it out for an agency-wide token"),
        ("nw", Role.REVIEWER, ["north wind"], "clients: 'north wind' is not a client id"),
        ("nw", Role.REVIEWER, ["../x"], "clients: '../x' is not a client id"),
        ("nw", Role.REVIEWER, ["c"] * 101, "clients: at most 100"),
        ("d", Role.SERVICE, ["c"], "clients: a service token creates exceptions for every client and takes no scope"),
    ],
)
def test_a_token_that_cannot_be_is_refused_naming_the_field(
    name: str, role: Role, clients: list[str] | None, problem: str
) -> None:
    found = check_token_request(name=name, role=role, clients=clients)

    assert found is not None and found.startswith(problem), found


def test_a_good_token_request_passes() -> None:
    assert check_token_request(name="Dana Reviewer (northwind)", role=Role.REVIEWER, clients=["northwind"]) is None
    assert check_token_request(name="ops-bot", role=Role.OPERATOR, clients=None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", dt.timedelta(minutes=30)), ("12h", dt.timedelta(hours=12)), ("90d", dt.timedelta(days=90))],
)
def test_durations_read_as_people_write_them(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text, "--expires-in") == expected


@pytest.mark.parametrize("text", ["", "0d", "-1d", "1.5h", "10", "d", "1w", "99999999d", "3651d", "1h30m"])
def test_odd_durations_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text, "--expires-in")
