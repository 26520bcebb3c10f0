"""Routing (contract v2): the routes file is loaded strictly, and the first matching route wins."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from loopgate.resolution_api.queues.routing import DEFAULT_ROUTES_PATH, RoutesError, RoutingTable, load_routes, route_of
from loopgate_schemas.exceptions import ExceptionRecord

TABLE = """
default_queue = "triage"

[[routes]]
rule = ["claim_verification"]
queue = "reviewers-{client_id}"

[[routes]]
min_severity = "high"
client = ["acme"]
queue = "acme-urgent"

[[routes]]
severity = ["low", "info"]
queue = "backlog"

[[routes]]
source = ["trafficking.events"]
kind = ["threshold_breach"]
queue = "trafficking"
"""


def record(**overrides: Any) -> ExceptionRecord:
    value: dict[str, Any] = {
        "exception_id": "exc-1",
        "fingerprint": "bid_over_cap:li-1",
        "kind": "threshold_breach",
        "rule_id": "bid_over_cap",
        "severity": "medium",
        "source": "bid-management.events",
        "event_type": "bid.adjusted",
        "subject": "li-1",
        "client_id": "northwind",
        "summary": "a summary",
        "observed": {},
        "detected_at": dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
    }
    value.update(overrides)
    return ExceptionRecord.model_validate(value)


def table_from(tmp_path: Path, text: str) -> RoutingTable:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    return load_routes(path)


@pytest.fixture
def table(tmp_path: Path) -> RoutingTable:
    return table_from(tmp_path, TABLE)


def test_no_route_matching_goes_to_the_default_queue(table: RoutingTable) -> None:
    assert route_of(table, record()) == "triage"


def test_claim_verification_goes_to_each_clients_reviewers(table: RoutingTable) -> None:
    assert route_of(table, record(rule_id="claim_verification", client_id="acme")) == "reviewers-acme"
    assert route_of(table, record(rule_id="claim_verification", client_id="globex")) == "reviewers-globex"


def test_a_templated_route_without_its_field_falls_through_to_the_next_routes(table: RoutingTable) -> None:
    assert route_of(table, record(rule_id="claim_verification", client_id=None)) == "triage"
    assert route_of(table, record(rule_id="claim_verification", client_id=None, severity="low")) == "backlog"


def test_a_minimum_severity_matches_that_severity_and_above(table: RoutingTable) -> None:
    assert route_of(table, record(client_id="acme", severity="high")) == "acme-urgent"
    assert route_of(table, record(client_id="acme", severity="critical")) == "acme-urgent"
    assert route_of(table, record(client_id="acme", severity="medium")) == "triage"


def test_every_matcher_of_a_route_must_hold(table: RoutingTable) -> None:
    assert route_of(table, record(source="trafficking.events")) == "trafficking"
    assert route_of(table, record(source="trafficking.events", kind="anomaly")) == "triage"


def test_the_first_matching_route_wins(table: RoutingTable) -> None:
    # acme-urgent and claim verification both match: the claim route comes first.
    assert route_of(table, record(rule_id="claim_verification", client_id="acme", severity="high")) == "reviewers-acme"
    # acme-urgent comes before backlog... but a low acme exception matches only backlog.
    assert route_of(table, record(client_id="acme", severity="low")) == "backlog"


def test_an_empty_table_routes_everything_to_default() -> None:
    assert route_of(RoutingTable(), record()) == "default"


def test_the_packaged_routes_file_loads_and_sends_claims_to_the_clients_reviewers() -> None:
    table = load_routes(DEFAULT_ROUTES_PATH)
    assert route_of(table, record(rule_id="claim_verification", client_id="northwind")) == "reviewers-northwind"
    assert route_of(table, record()) == "default"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('default_queue = "x"\ncolour = "red"', "colour"),
        ('[[routes]]\nqueue = "a"\nrules = ["x"]', "routes.0.rules"),
        ('[[routes]]\nqueue = ""', "routes.0.queue"),
        ('[[routes]]\nrule = ["x"]', "routes.0.queue"),
        ('default_queue = ""', "default_queue"),
        ('default_queue = "team-{client_id}"', "default_queue"),
        ('[[routes]]\nqueue = "team {client_id}"', "a queue name starts with"),
        ('[[routes]]\nqueue = "team-{client}"', "may only name"),
        ('[[routes]]\nqueue = "team-{client_id!r}"', "may only name"),
        ('[[routes]]\nqueue = "team-{client_id"', "malformed template"),
        ('[[routes]]\nqueue = "team-{0}"', "may only name"),
        ('[[routes]]\nqueue = "a"\nseverity = ["urgent"]', "routes.0.severity.0"),
        ('[[routes]]\nqueue = "a"\nmin_severity = "urgent"', "routes.0.min_severity"),
        ('[[routes]]\nqueue = "a"\nkind = ["weird"]', "routes.0.kind.0"),
        ('[[routes]]\nqueue = "a"\nrule = []', "an empty list matches nothing"),
        ('[[routes]]\nqueue = "a"\nclient = [""]', "routes.0.client.0"),
        ('[[routes]]\nqueue = "a"\nseverity = ["high"]\nmin_severity = "low"', "not both"),
        ('[[routes]]\nqueue = "a"\nrule = "claim_verification"', "routes.0.rule"),
        (f'[[routes]]\nqueue = "{"q" * 256}"', "routes.0.queue"),
        ('[[routes]]\nqueue = "a\\u0000b"', "a queue name starts with"),
        ("routes = [", "routes.toml"),
    ],
)
def test_a_hostile_routes_file_refuses_to_load_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(RoutesError, match=r"routes\.toml") as caught:
        table_from(tmp_path, text)
    assert named in str(caught.value)


def test_a_missing_routes_file_refuses_to_load(tmp_path: Path) -> None:
    with pytest.raises(RoutesError, match=r"missing\.toml"):
        load_routes(tmp_path / "missing.toml")
