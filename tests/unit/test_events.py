"""The upstream CloudEvents contract: the examples, unknown fields, and how rejections read."""

from __future__ import annotations

import json

import pytest

from loopgate_schemas import topics
from loopgate_schemas.events import EventRejected, parse_event
from loopgate_schemas.examples import CONTRACT_EXAMPLES, SHARED_CONTRACT_EXAMPLES

EXAMPLES = CONTRACT_EXAMPLES

VALID = {
    "bid-adjusted.json": (topics.BIDS, "bid.adjusted"),
    "bid-adjusted-over-cap.json": (topics.BIDS, "bid.adjusted"),
    "budget-pacing.json": (topics.BIDS, "budget.pacing"),
    "campaign-constraint.json": (topics.BIDS, "campaign.constraint_violated"),
    "placement-trafficked.json": (topics.TRAFFICKING, "placement.trafficked"),
    "delivery-report.json": (topics.TRAFFICKING, "delivery.report"),
    "content-generated.json": (topics.CONTENT, "content.generated"),
}
INVALID = {
    "invalid-missing-data.json": ("missing_field", "data: Field required"),
    "invalid-not-json.txt": ("invalid_json", "not a JSON object"),
    "invalid-unknown-type.json": ("unknown_type", "type: unknown event type 'bid.teleported'"),
    "invalid-wrong-type.json": ("wrong_type", "data.bid_cpm: Input should be a valid number"),
    "invalid-negative-money.json": ("invalid_value", "data.spend_to_date: Input should be greater than or equal to 0"),
    "invalid-count-too-large.json": ("invalid_value", "data.impressions: Input should be less than 9007199254740992"),
}
INVALID_TOPIC = {"invalid-count-too-large.json": topics.TRAFFICKING}  # the others are read as bid events


def test_the_examples_directory_is_the_one_tested() -> None:
    assert {p.name for p in EXAMPLES.iterdir()} == set(VALID) | set(INVALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_valid_example_validates_as_its_type(name: str) -> None:
    topic, event_type = VALID[name]
    event = parse_event(topic, (EXAMPLES / name).read_bytes())
    assert event.type == event_type
    assert event.id == json.loads((EXAMPLES / name).read_text())["id"]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_every_invalid_example_is_rejected_with_the_field_named(name: str) -> None:
    kind, reason = INVALID[name]
    with pytest.raises(EventRejected) as caught:
        parse_event(INVALID_TOPIC.get(name, topics.BIDS), (EXAMPLES / name).read_bytes())
    assert caught.value.kind == kind
    assert caught.value.reason.startswith(reason)


def _example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_unknown_extra_attributes_and_data_fields_are_ignored() -> None:
    doc = _example("bid-adjusted.json")
    doc["traceparent"] = "00-abc"
    doc["data"]["new_upstream_field"] = {"nested": [1, 2]}
    event = parse_event(topics.BIDS, json.dumps(doc))
    assert event.data.bid_cpm == 4.35  # type: ignore[attr-defined]
    assert not hasattr(event.data, "new_upstream_field")


def test_a_number_sent_as_a_string_is_a_schema_violation() -> None:
    doc = _example("delivery-report.json")
    doc["data"]["impressions"] = "10412"
    with pytest.raises(EventRejected) as caught:
        parse_event(topics.TRAFFICKING, json.dumps(doc))
    assert caught.value.reason.startswith("data.impressions: Input should be a valid integer")


def test_an_event_type_of_another_topic_is_rejected() -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(topics.BIDS, (EXAMPLES / "content-generated.json").read_bytes())
    assert caught.value.kind == "unknown_type"
    assert "'content.generated'" in caught.value.reason


def test_rates_outside_zero_to_one_are_rejected() -> None:
    doc = _example("content-generated.json")
    doc["data"]["brand_safety_score"] = 1.5
    with pytest.raises(EventRejected) as caught:
        parse_event(topics.CONTENT, json.dumps(doc))
    assert caught.value.reason.startswith("data.brand_safety_score: Input should be less than or equal to 1")


@pytest.mark.parametrize(
    ("value", "kind"),
    [(b"", "empty"), (b"\xff\xfe{", "invalid_json"), (b"[1, 2]", "wrong_type"), (b"x" * 2000, "too_large")],
)
def test_bytes_that_are_not_an_event_are_rejected_with_a_kind(value: bytes, kind: str) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(topics.BIDS, value, max_bytes=1024)
    assert caught.value.kind == kind


def test_the_subject_attribute_is_required() -> None:
    doc = _example("bid-adjusted.json")
    del doc["subject"]
    with pytest.raises(EventRejected) as caught:
        parse_event(topics.BIDS, json.dumps(doc))
    assert caught.value.reason == "subject: Field required"


@pytest.mark.skipif(not SHARED_CONTRACT_EXAMPLES.is_dir(), reason="the contract is not checked out beside the repo")
def test_the_vendored_examples_equal_the_contracts() -> None:
    shared = {p.name: p.read_bytes() for p in SHARED_CONTRACT_EXAMPLES.iterdir()}
    vendored = {p.name: p.read_bytes() for p in EXAMPLES.iterdir()}
    assert vendored == shared


# --- numbers safe by construction (contract: "Every number must be finite; ...") -------------

NUMBER_FIELDS = [  # (example, field, a value out of bounds, the reason's start)
    ("bid-adjusted.json", "bid_cpm", b"1e309", "data.bid_cpm: Input should be a finite number"),
    ("bid-adjusted.json", "bid_cpm", b"-1e309", "data.bid_cpm: Input should be a finite number"),
    ("bid-adjusted.json", "previous_bid_cpm", b"NaN", "data.previous_bid_cpm: Input should be a finite number"),
    ("bid-adjusted.json", "max_bid_cpm", b"Infinity", "data.max_bid_cpm: Input should be a finite number"),
    ("bid-adjusted.json", "bid_cpm", b"-0.01", "data.bid_cpm: Input should be greater than or equal to 0"),
    ("bid-adjusted.json", "model_confidence", b"NaN", "data.model_confidence: Input should be a finite number"),
    ("budget-pacing.json", "daily_budget", b"-1", "data.daily_budget: Input should be greater than or equal to 0"),
    (
        "budget-pacing.json",
        "expected_spend_to_date",
        b"1e400",
        "data.expected_spend_to_date: Input should be a finite number",
    ),
    (
        "delivery-report.json",
        "booked_impressions_per_hour",
        b"18446744073709551616",
        "data.booked_impressions_per_hour: Input should be less than 9007199254740992",
    ),
    ("delivery-report.json", "clicks", b"9007199254740992", "data.clicks: Input should be less than 9007199254740992"),
    ("delivery-report.json", "impressions", b"-1", "data.impressions: Input should be greater than or equal to 0"),
    ("delivery-report.json", "impressions", b"1" + b"0" * 30, "data.impressions: Input should be less than"),
    (
        "placement-trafficked.json",
        "creative_width",
        b"-300",
        "data.creative_width: Input should be greater than or equal to 0",
    ),
    (
        "placement-trafficked.json",
        "slot_height",
        b"99999999999999999999",
        "data.slot_height: Input should be less than 9007199254740992",
    ),
    (
        "content-generated.json",
        "brand_safety_score",
        b"-1e309",
        "data.brand_safety_score: Input should be a finite number",
    ),
]
TOPIC_OF = {name: topic for name, (topic, _) in VALID.items()}


def _with_raw_number(name: str, field: str, raw: bytes) -> bytes:
    doc = _example(name)
    doc["data"][field] = "@@"
    return json.dumps(doc).encode().replace(b'"@@"', raw)


@pytest.mark.parametrize(("name", "field", "raw", "reason"), NUMBER_FIELDS)
def test_a_number_out_of_bounds_is_a_schema_violation_naming_the_field(
    name: str, field: str, raw: bytes, reason: str
) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_event(TOPIC_OF[name], _with_raw_number(name, field, raw))
    assert caught.value.kind == "invalid_value"
    assert caught.value.reason.startswith(reason)


def test_the_largest_count_and_huge_finite_money_are_legal() -> None:
    event = parse_event(
        topics.TRAFFICKING, _with_raw_number("delivery-report.json", "impressions", str(2**53 - 1).encode())
    )
    assert event.data.impressions == 2**53 - 1  # type: ignore[attr-defined]
    event = parse_event(topics.BIDS, _with_raw_number("bid-adjusted.json", "bid_cpm", b"1e160"))
    assert event.data.bid_cpm == 1e160  # type: ignore[attr-defined]
