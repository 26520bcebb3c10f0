"""The simulator: valid, deterministic events; clean ones inside every threshold, faults outside."""

from __future__ import annotations

import datetime as dt
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from loopgate.detector.config import load_detection_config
from loopgate_schemas import topics
from loopgate_schemas.events import EventRejected, parse_event
from loopgate_tools.simulator.generator import RULE_EVENT_TYPE, SimEvent, generate
from loopgate_tools.simulator.ground_truth import read_ground_truth, write_ground_truth
from loopgate_tools.simulator.malformed import VARIANTS, malformed
from loopgate_tools.simulator.world import BID_NOISE, DELIVERY_NOISE, build_world

DETECTION_TOML = Path(__file__).resolve().parents[2] / "services" / "loopgate" / "detector" / "detection.toml"
CONFIG: dict[str, Any] = tomllib.loads(DETECTION_TOML.read_text())
TH = CONFIG["thresholds"]
LIMITS = CONFIG["caption_limits"]
ALLOWED = CONFIG["allowed_domains"]
INJECTABLE = set(CONFIG["severity"]) - {
    "schema_violation",
    "audit_sample",
    "approval_gate",
}  # those three are no anomaly
SEED = 7


@pytest.fixture(scope="module")
def stream() -> list[SimEvent]:
    return list(generate(20_000, anomaly_share=0.05, seed=SEED))


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _data(event: SimEvent) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(event.value)["data"]
    return data


def threshold_rules(event_type: str, d: dict[str, Any]) -> set[str]:
    """The threshold and policy rules of the contract's table that fire on `d`, from detection.toml's
    numbers (anomaly rules need history, so they are checked apart)."""
    fired = set()
    if event_type == "bid.adjusted":
        if d["bid_cpm"] > d["max_bid_cpm"]:
            fired.add("bid_over_cap")
        ratio = d["bid_cpm"] / d["previous_bid_cpm"]
        if ratio > TH["bid_jump_max_ratio"] or ratio < TH["bid_jump_min_ratio"]:
            fired.add("bid_jump")
    elif event_type == "budget.pacing":
        if d["spend_to_date"] > d["daily_budget"]:
            fired.add("overspend")
        expected = d["expected_spend_to_date"]
        if expected > 0 and d["spend_to_date"] / expected > TH["pacing_max_ratio"]:
            fired.add("pacing_off")
    elif event_type == "campaign.constraint_violated":
        fired.add("constraint")
    elif event_type == "placement.trafficked":
        if _parse(d["flight_end"]) <= _parse(d["flight_start"]):
            fired.add("bad_flight")
        if not d["click_url"].startswith("https://"):
            fired.add("click_url")
        if d["client_id"] in ALLOWED and d["landing_domain"] not in ALLOWED[d["client_id"]]:
            fired.add("domain_not_allowed")
        if (d["creative_width"], d["creative_height"]) != (d["slot_width"], d["slot_height"]):
            fired.add("size_mismatch")
    elif event_type == "delivery.report":
        if d["impressions"] == 0 and d["booked_impressions_per_hour"] > 0:
            fired.add("delivery_stalled")
    elif event_type == "content.generated":
        if len(d["caption"]) > LIMITS[d["platform"]]:
            fired.add("caption_too_long")
        if d["brand_safety_score"] < TH["brand_safety_min"]:
            fired.add("brand_safety")
        if d["brand_voice_score"] < TH["brand_voice_min"]:
            fired.add("brand_voice")
        if d["product_claims"]:
            fired.add("claim_verification")
    return fired


def test_every_event_validates_as_an_event_of_its_topic(stream: list[SimEvent]) -> None:
    for event in stream:
        parsed = parse_event(event.topic, event.value)
        assert parsed.id == event.event_id
        assert parsed.type == event.event_type
        assert parsed.subject == event.subject == event.key.decode()
    assert {e.topic for e in stream} == set(topics.UPSTREAM)
    assert len({e.event_id for e in stream}) == len(stream)


def test_same_seed_gives_the_same_bytes() -> None:
    first = list(generate(3000, seed=11))
    again = list(generate(3000, seed=11))
    assert first == again
    other = list(generate(3000, seed=12))
    assert [e.value for e in first] != [e.value for e in other]


def test_clean_events_stay_safely_inside_every_threshold(stream: list[SimEvent]) -> None:
    world = build_world(SEED, load_detection_config())
    levels = {li.line_item_id: li.level for li in world.line_items}
    clean = [e for e in stream if not e.expected_rules]
    assert len(clean) > 18_000
    for event in clean:
        d = _data(event)
        assert threshold_rules(event.event_type, d) == set(), event.value
        if event.event_type == "bid.adjusted":
            level = levels[d["line_item_id"]]
            assert abs(d["bid_cpm"] / level - 1) <= 0.15
            assert d["bid_cpm"] < d["max_bid_cpm"]
            assert 0.75 <= d["bid_cpm"] / d["previous_bid_cpm"] <= 1.34
        elif event.event_type == "budget.pacing":
            assert d["expected_spend_to_date"] > 0
            assert d["spend_to_date"] / d["expected_spend_to_date"] <= 1.15
            assert d["spend_to_date"] < d["daily_budget"]
        elif event.event_type == "placement.trafficked":
            assert d["click_url"].startswith(f"https://{d['landing_domain']}/")
            assert all(p.startswith("https://") for p in d["tracking_pixels"])
        elif event.event_type == "delivery.report":
            assert d["impressions"] > 0
            assert abs(d["impressions"] / d["booked_impressions_per_hour"] - 1) <= 2.5 * DELIVERY_NOISE + 1e-3
            assert 0 <= d["clicks"] < d["impressions"]
        elif event.event_type == "content.generated":
            assert len(d["caption"]) < LIMITS[d["platform"]]
            assert d["brand_safety_score"] >= 0.8
            assert d["brand_voice_score"] >= 0.7
            assert d["product_claims"] == []


def test_every_injected_threshold_fault_fires_exactly_its_expected_rules(stream: list[SimEvent]) -> None:
    injected = [e for e in stream if e.injected and e.injected not in ("bid_anomaly", "delivery_anomaly")]
    assert injected
    for event in injected:
        assert event.injected in event.expected_rules
        assert threshold_rules(event.event_type, _data(event)) == set(event.expected_rules), event.value


def test_overspend_lists_pacing_off_only_when_the_ratio_breaks_it(stream: list[SimEvent]) -> None:
    overspends = [e for e in stream if e.injected == "overspend"]
    assert {e.expected_rules for e in overspends} <= {("overspend",), ("overspend", "pacing_off")}
    for event in overspends:
        d = _data(event)
        ratio = d["spend_to_date"] / d["expected_spend_to_date"]
        assert abs(ratio / TH["pacing_max_ratio"] - 1) >= 0.04  # never decided by a rounding


def test_bid_anomalies_are_far_from_the_level_under_the_cap_and_without_a_jump(
    stream: list[SimEvent],
) -> None:
    world = build_world(SEED, load_detection_config())
    levels = {li.line_item_id: li.level for li in world.line_items}
    clean_since: Counter[str] = Counter()
    anomalies = 0
    for event in stream:
        if event.event_type != "bid.adjusted":
            continue
        d = _data(event)
        li = d["line_item_id"]
        if event.injected == "bid_anomaly":
            anomalies += 1
            assert event.expected_rules == ("bid_anomaly",)
            assert clean_since[li] >= 30
            assert abs(d["bid_cpm"] - levels[li]) >= 8 * BID_NOISE * levels[li] - 0.01
            assert threshold_rules(event.event_type, d) == set()
            clean_since[li] = 0
        elif not event.expected_rules:
            clean_since[li] += 1
    assert anomalies > 0


def test_delivery_anomalies_are_far_off_booked_but_never_zero(stream: list[SimEvent]) -> None:
    clean_since: Counter[str] = Counter()
    anomalies = 0
    for event in stream:
        if event.event_type != "delivery.report":
            continue
        d = _data(event)
        plc = d["placement_id"]
        if event.injected == "delivery_anomaly":
            anomalies += 1
            assert event.expected_rules == ("delivery_anomaly",)
            assert clean_since[plc] >= 30
            assert d["impressions"] > 0
            assert abs(d["impressions"] / d["booked_impressions_per_hour"] - 1) >= 8 * DELIVERY_NOISE
            clean_since[plc] = 0
        elif not event.expected_rules:
            clean_since[plc] += 1
    assert anomalies > 0


def test_every_constraint_event_is_expected_to_fire_constraint(stream: list[SimEvent]) -> None:
    constraints = [e for e in stream if e.event_type == "campaign.constraint_violated"]
    assert constraints
    assert all(e.expected_rules == ("constraint",) for e in constraints)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2])
def test_injected_share_is_close_to_anomaly_share(share: float) -> None:
    events = list(generate(20_000, anomaly_share=share, seed=3))
    injected = sum(1 for e in events if e.expected_rules)
    assert injected / len(events) == pytest.approx(share, abs=0.01)
    assert all(bool(e.injected) == bool(e.expected_rules) for e in events)


def test_default_mix_is_mostly_bids_and_delivery_reports(stream: list[SimEvent]) -> None:
    counts = Counter(e.event_type for e in stream)
    ranked = [t for t, _ in counts.most_common()]
    assert ranked[:3] == ["bid.adjusted", "delivery.report", "budget.pacing"]
    assert ranked[-1] == "campaign.constraint_violated"


def test_every_rule_of_detection_toml_is_injected_within_5000_events() -> None:
    injected = Counter(e.injected for e in generate(5000, seed=SEED) if e.injected)
    assert set(RULE_EVENT_TYPE) >= INJECTABLE
    assert set(injected) == INJECTABLE
    assert not {r for e in generate(5000, seed=SEED) for r in e.expected_rules} - INJECTABLE


def test_clean_landing_domains_come_from_the_allow_list(stream: list[SimEvent]) -> None:
    for event in stream:
        if event.event_type == "placement.trafficked" and event.injected != "domain_not_allowed":
            d = _data(event)
            if d["client_id"] in ALLOWED:
                assert d["landing_domain"] in ALLOWED[d["client_id"]]


def test_a_mix_can_leave_out_event_types() -> None:
    events = list(generate(3000, seed=5, mix={"bid.adjusted": 1.0}))
    assert {e.topic for e in events} == {topics.BIDS}
    injected = {e.injected for e in events if e.injected}
    assert injected == {"bid_over_cap", "bid_jump", "bid_anomaly", "constraint"}


def test_constraint_events_cannot_be_put_in_the_clean_mix() -> None:
    with pytest.raises(ValueError, match="always an exception"):
        generate(10, mix={"campaign.constraint_violated": 0.1})


def test_malformed_messages_are_rejected_with_their_stated_kind() -> None:
    messages = list(malformed(3 * len(VARIANTS), seed=SEED))
    assert {m.description for m in messages} == {v[0] for v in VARIANTS}
    for message in messages:
        with pytest.raises(EventRejected) as rejected:
            parse_event(message.topic, message.value)
        assert rejected.value.kind == message.expected_kind, (message.description, rejected.value.reason)
    assert {m.expected_kind for m in messages} == {
        "invalid_json",
        "unknown_type",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "empty",
    }


def test_malformed_includes_a_content_event_on_the_bid_topic() -> None:
    wrong_topic = [m for m in malformed(200, seed=SEED) if m.description == "event type of another topic"]
    assert any(m.topic == topics.BIDS and b'"content.generated"' in m.value for m in wrong_topic)


def test_ground_truth_has_one_line_per_event(tmp_path: Path) -> None:
    events = list(generate(500, anomaly_share=0.2, seed=SEED))
    path = tmp_path / "truth.jsonl"
    assert write_ground_truth(path, events) == 500
    lines = list(read_ground_truth(path))
    assert lines[0] == {
        "event_id": events[0].event_id,
        "topic": events[0].topic,
        "event_type": events[0].event_type,
        "subject": events[0].subject,
        "expected_rules": list(events[0].expected_rules),
    }
    assert [tuple(line["expected_rules"]) for line in lines] == [e.expected_rules for e in events]  # type: ignore[arg-type]


def test_generating_a_hundred_thousand_events_gives_exactly_that_many() -> None:
    # How fast is `make bench`'s to say (never a timed assertion in a test).
    assert sum(1 for _ in generate(100_000)) == 100_000
