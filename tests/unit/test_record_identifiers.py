"""A record's identifiers have a documented charset and length (README "Identifiers"): keys
(`exception_id`, `rule_id`) are ASCII and safe as they are in a URL path, a log line and a metric
label; text identifiers from upstream events (`subject`, `client_id`, `fingerprint`) take any
character but those that break a line or hide text. Whatever the detector builds passes: the
contract's examples, the simulator's streams and upstream events with odd identifiers."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector
from loopgate_schemas import topics
from loopgate_schemas.examples import CONTRACT_EXAMPLES, VALID_EXAMPLES
from loopgate_schemas.exceptions import RULE_IDS, ExceptionRecord, clean_text_id

CONFIG = load_detection_config()
NOW = dt.datetime(2026, 11, 24, 9, 16, 41, tzinfo=dt.UTC)
TOPIC_OF = {
    "bid.adjusted": topics.BIDS,
    "budget.pacing": topics.BIDS,
    "campaign.constraint_violated": topics.BIDS,
    "placement.trafficked": topics.TRAFFICKING,
    "delivery.report": topics.TRAFFICKING,
    "content.generated": topics.CONTENT,
}
# What breaks a log line, a Slack message or a terminal, or hides text from the person reading it.
INVISIBLE = [
    "\r",
    "\n",
    "\t",
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",  # NEL, a C1 line break
    "\u2028",
    "\u2029",
    "\u202e",  # right-to-left override
    "\u2066",  # bidi isolate
    "\u200b",  # zero-width space
    "\ufeff",
    "\u00ad",  # soft hyphen
]


def record(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "exception_id": "0b9ad2c4-5d1e-5c55-8a0a-3f1f7d2f5d11",
        "fingerprint": "bid_over_cap:li-88121",
        "kind": "threshold_breach",
        "rule_id": "bid_over_cap",
        "severity": "high",
        "source": "bid-management.events",
        "subject": "li-88121",
        "client_id": "northwind",
        "summary": "Bid over the cap",
        "detected_at": "2026-11-24T09:16:41Z",
    }
    value.update(overrides)
    return value


def refused_field(value: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as refused:
        ExceptionRecord.model_validate(value)
    return [e["loc"] for e in refused.value.errors()]


@pytest.mark.parametrize(
    "exception_id",
    [
        "a/b",
        "../x",
        ".",
        "..",
        "a\r\nb",
        "a b",
        "a?b",
        "a#b",
        "a%2Fb",
        "é",
        "-leading-dash",
        "_leading",
        "x" * 65,
        "",
        *(f"id{c}" for c in INVISIBLE),
    ],
)
def test_an_exception_id_outside_its_charset_is_refused_naming_it(exception_id: str) -> None:
    assert refused_field(record(exception_id=exception_id)) == [("exception_id",)]


@pytest.mark.parametrize(
    "rule_id", ["bid/over", "bid over", "Bid\nOver", "règle", "x" * 65, "", "a;b", "{rule}", "rule\u202e"]
)
def test_a_rule_id_outside_its_charset_is_refused_naming_it(rule_id: str) -> None:
    assert refused_field(record(rule_id=rule_id)) == [("rule_id",)]


@pytest.mark.parametrize("field", ["subject", "client_id", "fingerprint"])
@pytest.mark.parametrize("character", INVISIBLE)
def test_a_text_identifier_with_a_control_or_invisible_character_is_refused_naming_it(
    field: str, character: str
) -> None:
    assert refused_field(record(**{field: f"li{character}1"})) == [(field,)]


@pytest.mark.parametrize(("field", "longest"), [("subject", 255), ("client_id", 255), ("fingerprint", 512)])
def test_a_text_identifier_is_at_most_its_length_and_never_empty(field: str, longest: int) -> None:
    assert ExceptionRecord.model_validate(record(**{field: "x" * longest}))
    assert refused_field(record(**{field: "x" * (longest + 1)})) == [(field,)]
    assert refused_field(record(**{field: ""})) == [(field,)]


@pytest.mark.parametrize(
    "value",
    ["li-88121", "Acme Corp", "Ünïcødé 製品 🚀", "a/b?c#d&e", "<!channel>", "x' OR '1'='1", "bid_over_cap:li-1:evt-9"],
)
def test_a_text_identifier_may_hold_any_visible_character(value: str) -> None:
    parsed = ExceptionRecord.model_validate(record(subject=value, client_id=value, fingerprint=value))
    assert (parsed.subject, parsed.client_id, parsed.fingerprint) == (value, value, value)


@pytest.mark.parametrize(
    "exception_id", ["0b9ad2c4-5d1e-5c55-8a0a-3f1f7d2f5d11", "exc-1", "rec-1-2", "a.b_c:d", "X" * 64]
)
def test_an_exception_id_of_letters_digits_and_dot_underscore_colon_dash_is_accepted(exception_id: str) -> None:
    assert ExceptionRecord.model_validate(record(exception_id=exception_id)).exception_id == exception_id


def test_every_rule_of_the_detector_is_a_known_rule_and_a_valid_rule_id() -> None:
    assert set(CONFIG.severity) == RULE_IDS  # detection.toml's [severity]: every rule the detector has
    for rule_id in RULE_IDS:
        assert ExceptionRecord.model_validate(record(rule_id=rule_id)).rule_id == rule_id


def test_clean_text_id_replaces_only_what_a_text_identifier_may_not_hold() -> None:
    assert clean_text_id("li-1 Ünï/製品") == "li-1 Ünï/製品"
    assert clean_text_id("li\r\n\u202e1") == "li\ufffd\ufffd\ufffd1"


def detector_records(topic: str, event: dict[str, Any]) -> list[ExceptionRecord]:
    outcome = Detector(CONFIG).process(
        topic, orjson.dumps(event), topic=topic, partition=0, offset=7, now=NOW, bid_baselines={}, delivery_baselines={}
    )
    assert outcome.rejected is None, outcome.rejected
    return outcome.records


def firing_example() -> dict[str, Any]:
    # brand_safety fires on any client, audit sampling aside
    [doc] = [json.loads((CONTRACT_EXAMPLES / name).read_text()) for name in VALID_EXAMPLES["content.generated"]]
    doc["data"]["brand_safety_score"] = 0.1
    doc["data"]["product_claims"] = ["cures everything"]
    return doc


def test_the_records_of_the_contracts_examples_pass() -> None:
    produced = 0
    for event_type, names in VALID_EXAMPLES.items():
        for name in names:
            doc = json.loads((CONTRACT_EXAMPLES / name).read_text())
            for r in detector_records(TOPIC_OF[event_type], doc):
                ExceptionRecord.model_validate(orjson.loads(orjson.dumps(r.model_dump(mode="json"))))
                produced += 1
    assert produced  # the over-cap example fires


@pytest.mark.parametrize("character", INVISIBLE)
def test_an_upstream_subject_or_client_with_odd_characters_still_gives_valid_records(character: str) -> None:
    doc = firing_example()
    odd = f"ct{character}9"
    doc["subject"] = doc["data"]["content_id"] = odd
    doc["data"]["client_id"] = f"client{character}x"
    doc["id"] = f"evt{character}1"

    found = detector_records(topics.CONTENT, doc)

    assert {r.rule_id for r in found} >= {"brand_safety", "claim_verification"}
    for r in found:
        valid = ExceptionRecord.model_validate(orjson.loads(orjson.dumps(r.model_dump(mode="json"))))
        assert valid.subject == "ct\ufffd9"
        assert valid.client_id == "client\ufffdx"
        if valid.rule_id != "audit_sample":
            assert valid.fingerprint == f"{valid.rule_id}:ct\ufffd9"
        if character != "\x00":  # the copied event keeps what it came with, but NUL (no store takes it)
            assert valid.event is not None and valid.event["subject"] == odd
