"""Money at risk (contract v2 `impact`): each rule that can estimate it, and the ones that cannot."""

from __future__ import annotations

import json
from typing import Any

from loopgate.detector.anomaly import EMPTY, Baseline, observe
from loopgate.detector.config import AnomalyConfig, DetectionConfig, ImpactConfig
from loopgate.detector.processing import Detector, record_json
from loopgate.detector.rules.anomalies import check_bid_anomaly
from loopgate.detector.rules.base import Firing, money_at_risk
from loopgate.detector.rules.bids import check_bid_adjusted, check_budget_pacing
from loopgate.detector.rules.trafficking import check_delivery_report
from loopgate_schemas import topics
from loopgate_schemas.events import BidAdjusted, BudgetPacing, DeliveryReport
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from loopgate_schemas.exceptions import ExceptionRecord, Impact

CONFIG = DetectionConfig()


def example(name: str, **data: Any) -> dict[str, Any]:
    doc = json.loads((CONTRACT_EXAMPLES / name).read_text())
    doc["data"].update(data)
    return doc


def bid(**data: Any) -> BidAdjusted:
    return BidAdjusted.model_validate_json(json.dumps(example("bid-adjusted.json", **data)))


def pacing(**data: Any) -> BudgetPacing:
    return BudgetPacing.model_validate_json(json.dumps(example("budget-pacing.json", **data)))


def by_rule(firings: list[Firing]) -> dict[str, Firing]:
    return {f.rule_id: f for f in firings}


def test_overspend_carries_the_overspend_so_far() -> None:
    f = by_rule(check_budget_pacing(pacing(daily_budget=1500.0, spend_to_date=1620.5), CONFIG))["overspend"]
    assert f.impact is not None
    assert (f.impact.amount, f.impact.currency) == (120.5, "EUR")
    assert f.impact.basis == "overspend so far on 2026-11-24: spend_to_date 1620.50 - daily_budget 1500.00"


def test_pacing_off_carries_the_spend_ahead_of_even_pace() -> None:
    f = by_rule(check_budget_pacing(pacing(spend_to_date=800.0, expected_spend_to_date=578.1), CONFIG))["pacing_off"]
    assert f.impact is not None
    assert f.impact.amount == 221.9
    assert "spend_to_date 800.00 - expected_spend_to_date 578.10" in f.impact.basis


def test_bid_over_cap_prices_the_excess_over_one_assumed_hour_of_volume() -> None:
    f = by_rule(check_bid_adjusted(bid(bid_cpm=7.2, previous_bid_cpm=7.0, max_bid_cpm=6.0), CONFIG))["bid_over_cap"]
    assert f.impact is not None
    assert f.impact.amount == 12.0  # (7.20 - 6.00) / 1000 x 10000 impressions
    assert "assumed 10000 impressions an hour" in f.impact.basis
    assert "the event carries no volume" in f.impact.basis


def test_the_assumed_volume_is_configuration_and_zero_means_no_bid_impact() -> None:
    bigger = DetectionConfig(impact=ImpactConfig(bid_impressions_per_hour=50000))
    none = DetectionConfig(impact=ImpactConfig(bid_impressions_per_hour=0))
    event = bid(bid_cpm=7.2, previous_bid_cpm=7.0, max_bid_cpm=6.0)
    impact = by_rule(check_bid_adjusted(event, bigger))["bid_over_cap"].impact
    assert impact is not None and impact.amount == 60.0
    assert by_rule(check_bid_adjusted(event, none))["bid_over_cap"].impact is None


def test_a_bid_jump_up_prices_the_increase_and_a_jump_down_has_no_impact() -> None:
    up = by_rule(check_bid_adjusted(bid(bid_cpm=5.0, previous_bid_cpm=2.0, max_bid_cpm=6.0), CONFIG))["bid_jump"]
    down = by_rule(check_bid_adjusted(bid(bid_cpm=1.0, previous_bid_cpm=4.0, max_bid_cpm=6.0), CONFIG))["bid_jump"]
    assert up.impact is not None and up.impact.amount == 30.0  # (5.00 - 2.00) / 1000 x 10000
    assert down.impact is None


def test_a_bid_anomaly_above_its_usual_level_prices_the_excess_over_the_mean() -> None:
    cfg = AnomalyConfig()
    b: Baseline = EMPTY
    for i in range(60):
        b = observe(
            b,
            4.0 + 0.01 * (i % 5),
            alpha=cfg.alpha,
            variance_alpha=cfg.variance_alpha,
            warmup=cfg.warmup,
            z_threshold=cfg.z_threshold,
            min_relative_std=cfg.min_relative_std,
            level_shift_after=cfg.level_shift_after,
            trend_alpha=cfg.trend_alpha,
        ).baseline
    _, high = check_bid_anomaly(bid(bid_cpm=9.0), b, cfg, impressions_per_hour=10000)
    _, low = check_bid_anomaly(bid(bid_cpm=1.0), b, cfg, impressions_per_hour=10000)
    assert high is not None and high.impact is not None
    mean = high.expected["mean"] if high.expected else 0.0
    assert high.impact.amount == round((9.0 - mean) / 1000 * 10000, 2)
    assert low is not None and low.impact is None


def test_a_stalled_placement_has_no_impact_because_the_report_carries_no_price() -> None:
    doc = example("delivery-report.json", impressions=0, clicks=0)
    [f] = check_delivery_report(DeliveryReport.model_validate_json(json.dumps(doc)), CONFIG)
    assert f.rule_id == "delivery_stalled"
    assert f.impact is None


def test_nothing_at_risk_gives_no_impact() -> None:
    assert money_at_risk(0.0, "EUR", "x") is None
    assert money_at_risk(-3.0, "EUR", "x") is None
    assert money_at_risk(0.004, "EUR", "x") is None  # rounds to no cents
    assert money_at_risk(float("inf"), "EUR", "x") is None


def test_an_impact_is_what_the_record_validates() -> None:
    impact = money_at_risk(1e300, "EUR", "b" * 900)
    assert impact is not None
    assert Impact.model_validate(impact.model_dump()) == impact  # basis cut to its 500 characters
    schema = ExceptionRecord.model_json_schema()
    assert "impact" in schema["properties"]


def test_the_detector_publishes_the_impact_in_the_record() -> None:
    no_sampling = {"bid-management.events": 0.0, "trafficking.events": 0.0, "content-pipeline.events": 0.0}
    detector = Detector(DetectionConfig.model_validate({"sampling": no_sampling}))
    doc = example("budget-pacing.json", daily_budget=1000.0, spend_to_date=1100.0, expected_spend_to_date=600.0)
    out = detector.process(
        topics.BIDS, json.dumps(doc).encode(), topic=topics.BIDS, partition=0, offset=1, bid_baselines={}
    )
    published = {r.rule_id: json.loads(record_json(r)) for r in out.records}
    assert published["overspend"]["impact"]["amount"] == 100.0
    assert published["pacing_off"]["impact"] == {
        "amount": 500.0,
        "currency": "EUR",
        "basis": "spend ahead of even pace so far on 2026-11-24: spend_to_date 1100.00 - expected_spend_to_date 600.00",
    }
    assert all(ExceptionRecord.model_validate(r.model_dump()).impact for r in out.records)
