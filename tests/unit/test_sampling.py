"""Audit sampling: deterministic by event id, at the configured rate, favouring low confidence."""

from __future__ import annotations

import pytest

from loopgate.detector.sampling import sample_for_audit, sampling_rate, unit_hash


def test_the_choice_depends_only_on_the_event_id() -> None:
    ids = [f"evt-{i}" for i in range(2000)]
    first = [sample_for_audit(i, 0.9, 0.05, low_confidence=0.6, boost=9) for i in ids]
    again = [sample_for_audit(i, 0.9, 0.05, low_confidence=0.6, boost=9) for i in ids]
    assert first == again


def test_confident_events_are_sampled_at_the_base_rate() -> None:
    assert sampling_rate(0.01, 0.95, low_confidence=0.6, boost=9) == 0.01
    assert sampling_rate(0.01, 0.6, low_confidence=0.6, boost=9) == 0.01
    assert sampling_rate(0.02, None, low_confidence=0.6, boost=9) == 0.02


def test_low_confidence_raises_the_rate_linearly_up_to_one_plus_boost_times() -> None:
    assert sampling_rate(0.01, 0.0, low_confidence=0.6, boost=9) == pytest.approx(0.10)
    assert sampling_rate(0.01, 0.3, low_confidence=0.6, boost=9) == pytest.approx(0.055)
    assert sampling_rate(0.5, 0.0, low_confidence=0.6, boost=9) == 1.0


@pytest.mark.parametrize(("rate", "confidence"), [(0.01, 0.9), (0.05, 0.9), (0.01, 0.0)])
def test_the_sampled_share_matches_the_rate_over_many_ids(rate: float, confidence: float) -> None:
    n = 200_000
    expected = sampling_rate(rate, confidence, low_confidence=0.6, boost=9)
    hits = sum(sample_for_audit(f"id-{i}", confidence, rate, low_confidence=0.6, boost=9) for i in range(n))
    assert abs(hits / n - expected) / expected < 0.05


def test_the_hash_is_uniform_in_the_unit_interval() -> None:
    values = [unit_hash(str(i)) for i in range(10_000)]
    assert 0 <= min(values) and max(values) < 1
    assert abs(sum(values) / len(values) - 0.5) < 0.01
