"""Over 100,000 simulated events, each source's audit-sampled share follows the formula."""

from __future__ import annotations

import orjson

from loopgate.detector.config import load_detection_config
from loopgate.detector.sampling import sample_for_audit, sampling_rate
from loopgate_tools.simulator.generator import generate


def test_sampled_share_per_source_is_within_ten_percent_of_the_formula() -> None:
    cfg = load_detection_config().sampling
    predicted: dict[str, float] = {}
    sampled: dict[str, int] = {}
    events: dict[str, int] = {}
    for ev in generate(100_000, seed=3):
        confidence = orjson.loads(ev.value)["data"].get("model_confidence")
        base = cfg.base_rate(ev.topic)
        predicted[ev.topic] = predicted.get(ev.topic, 0.0) + sampling_rate(
            base, confidence, low_confidence=cfg.low_confidence, boost=cfg.boost
        )
        sampled[ev.topic] = sampled.get(ev.topic, 0) + sample_for_audit(
            ev.event_id, confidence, base, low_confidence=cfg.low_confidence, boost=cfg.boost
        )
        events[ev.topic] = events.get(ev.topic, 0) + 1
    assert set(events) == {"bid-management.events", "trafficking.events", "content-pipeline.events"}
    for topic in events:
        expected = predicted[topic]
        assert abs(sampled[topic] - expected) / expected < 0.10, (topic, sampled[topic], expected)


def test_low_confidence_events_are_sampled_more_often_than_confident_ones() -> None:
    cfg = load_detection_config().sampling
    low = [f"low-{i}" for i in range(50_000)]
    high = [f"high-{i}" for i in range(50_000)]
    low_hits = sum(sample_for_audit(i, 0.1, 0.01, low_confidence=cfg.low_confidence, boost=cfg.boost) for i in low)
    high_hits = sum(sample_for_audit(i, 0.9, 0.01, low_confidence=cfg.low_confidence, boost=cfg.boost) for i in high)
    assert low_hits > 5 * high_hits
