"""Each rule of the contract's table, on the contract's defaults, through Detector.process."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from loopgate.detector.config import DetectionConfig, load_detection_config
from loopgate.detector.processing import Detector
from loopgate_schemas import topics
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from loopgate_schemas.exceptions import ExceptionRecord, Kind, Severity, exception_id_for

EXAMPLES = CONTRACT_EXAMPLES
NO_SAMPLING = {"bid-management.events": 0.0, "trafficking.events": 0.0, "content-pipeline.events": 0.0}


def example(name: str, **data: Any) -> dict[str, Any]:
    doc = json.loads((EXAMPLES / name).read_text())
    doc["data"].update(data)
    return doc


@pytest.fixture(scope="module")
def detector() -> Detector:
    cfg = load_detection_config()
    cfg = DetectionConfig.model_validate({**cfg.model_dump(by_alias=True), "sampling": NO_SAMPLING})
    return Detector(cfg)


def fire(detector: Detector, topic: str, doc: dict[str, Any]) -> list[ExceptionRecord]:
    out = detector.process(
        topic, json.dumps(doc).encode(), topic=topic, partition=0, offset=7, bid_baselines={}, delivery_baselines={}
    )
    assert out.rejected is None
    return out.records


def rules(records: list[ExceptionRecord]) -> list[str]:
    return sorted(r.rule_id for r in records)


def test_clean_examples_raise_nothing(detector: Detector) -> None:
    assert fire(detector, topics.BIDS, example("bid-adjusted.json")) == []
    assert fire(detector, topics.BIDS, example("budget-pacing.json")) == []
    assert fire(detector, topics.TRAFFICKING, example("placement-trafficked.json")) == []
    assert fire(detector, topics.TRAFFICKING, example("delivery-report.json")) == []
    assert fire(detector, topics.CONTENT, example("content-generated.json", product_claims=[])) == []


def test_bid_over_cap_raises_one_high_exception_with_an_actionable_summary(detector: Detector) -> None:
    [record] = fire(detector, topics.BIDS, example("bid-adjusted-over-cap.json", previous_bid_cpm=7.0))
    assert record.rule_id == "bid_over_cap"
    assert record.severity is Severity.HIGH
    assert record.kind is Kind.THRESHOLD_BREACH
    assert record.subject == "li-88121"
    assert record.fingerprint == "bid_over_cap:li-88121"
    assert record.summary == "Bid 7.20 EUR CPM on li-88121 (northwind, ttd) is 20% over the campaign cap of 6.00"
    assert record.observed["bid_cpm"] == 7.2
    assert record.threshold == {"max_bid_cpm": 6.0}
    assert record.score == 1.2
    assert record.exception_id == exception_id_for("b6f1c7e0-0002", "bid_over_cap")
    assert record.event is not None and record.event["id"] == "b6f1c7e0-0002"
    assert record.event_ref is not None and (record.event_ref.partition, record.event_ref.offset) == (0, 7)


@pytest.mark.parametrize(
    ("bid", "previous", "fires"), [(4.0, 1.9, True), (4.0, 2.0, False), (1.9, 4.0, True), (2.0, 4.0, False)]
)
def test_bid_jump_fires_strictly_beyond_two_x_or_half(
    detector: Detector, bid: float, previous: float, fires: bool
) -> None:
    records = fire(detector, topics.BIDS, example("bid-adjusted.json", bid_cpm=bid, previous_bid_cpm=previous))
    assert rules(records) == (["bid_jump"] if fires else [])


def test_overspend_is_critical_and_also_pacing_off_when_far_ahead(detector: Detector) -> None:
    records = fire(
        detector, topics.BIDS, example("budget-pacing.json", spend_to_date=1600.0, expected_spend_to_date=1000.0)
    )
    assert rules(records) == ["overspend", "pacing_off"]
    assert {r.rule_id: r.severity for r in records}["overspend"] is Severity.CRITICAL


def test_pacing_off_needs_a_positive_expected_spend(detector: Detector) -> None:
    assert rules(
        fire(detector, topics.BIDS, example("budget-pacing.json", spend_to_date=800.0, expected_spend_to_date=600.0))
    ) == ["pacing_off"]
    assert (
        fire(detector, topics.BIDS, example("budget-pacing.json", spend_to_date=10.0, expected_spend_to_date=0.0)) == []
    )


def test_a_constraint_violation_always_raises(detector: Detector) -> None:
    [record] = fire(detector, topics.BIDS, example("campaign-constraint.json"))
    assert (record.rule_id, record.severity, record.subject) == ("constraint", Severity.HIGH, "cmp-2001")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"flight_end": "2026-11-24T00:00:00Z"}, ["bad_flight"]),
        ({"click_url": "http://northwind.example/x"}, ["click_url"]),
        ({"click_url": ""}, ["click_url"]),
        ({"landing_domain": "evil.example"}, ["domain_not_allowed"]),
        ({"creative_width": 728, "creative_height": 90}, ["size_mismatch"]),
    ],
)
def test_trafficking_rules(detector: Detector, changes: dict[str, Any], expected: list[str]) -> None:
    assert rules(fire(detector, topics.TRAFFICKING, example("placement-trafficked.json", **changes))) == expected


def test_a_client_without_an_allow_list_is_not_checked_for_domains(detector: Detector) -> None:
    doc = example("placement-trafficked.json", client_id="globex", landing_domain="anything.example")
    assert fire(detector, topics.TRAFFICKING, doc) == []


def test_delivery_stalled_when_zero_impressions_were_booked_for(detector: Detector) -> None:
    [record] = fire(detector, topics.TRAFFICKING, example("delivery-report.json", impressions=0, clicks=0))
    assert (record.rule_id, record.severity, record.subject) == ("delivery_stalled", Severity.HIGH, "plc-9001")
    assert (
        fire(
            detector,
            topics.TRAFFICKING,
            example("delivery-report.json", impressions=0, clicks=0, booked_impressions_per_hour=0),
        )
        == []
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"caption": "x" * 281}, ["caption_too_long", "claim_verification"]),
        ({"caption": "x" * 280, "product_claims": []}, []),
        ({"brand_safety_score": 0.69, "product_claims": []}, ["brand_safety"]),
        ({"brand_voice_score": 0.59, "product_claims": []}, ["brand_voice"]),
        ({}, ["claim_verification"]),
    ],
)
def test_content_rules(detector: Detector, changes: dict[str, Any], expected: list[str]) -> None:
    assert rules(fire(detector, topics.CONTENT, example("content-generated.json", **changes))) == expected


def test_a_client_override_makes_brand_safety_stricter_for_that_client_only() -> None:
    cfg = load_detection_config()
    raw = copy.deepcopy(cfg.model_dump(by_alias=True))
    raw["sampling"] = NO_SAMPLING
    raw["clients"] = {"contoso": {"brand_safety_min": 0.9}}
    strict = Detector(DetectionConfig.model_validate(raw))
    doc = example("content-generated.json", brand_safety_score=0.85, product_claims=[])
    assert rules(fire(strict, topics.CONTENT, doc)) == ["brand_safety"]
    doc["data"]["client_id"] = "northwind"
    assert fire(strict, topics.CONTENT, doc) == []


def test_the_same_event_redelivered_gives_the_same_exception_ids(detector: Detector) -> None:
    doc = example("bid-adjusted-over-cap.json", previous_bid_cpm=2.0)
    first = [r.exception_id for r in fire(detector, topics.BIDS, doc)]
    again = [r.exception_id for r in fire(detector, topics.BIDS, doc)]
    assert first == again and len(set(first)) == 2


def test_a_malformed_message_becomes_one_grouped_data_quality_record(detector: Detector) -> None:
    out = detector.process(topics.BIDS, b'{"specversion": "1.0"', topic="bid-management.events", partition=2, offset=99)
    assert out.rejected is not None and out.rejected.kind == "invalid_json"
    [record] = out.records
    assert record.rule_id == "schema_violation"
    assert record.kind is Kind.DATA_QUALITY and record.severity is Severity.LOW
    assert record.fingerprint == "schema_violation:bid-management.events:invalid_json"
    assert record.exception_id == exception_id_for("bid-management.events/2/99", "schema_violation")
