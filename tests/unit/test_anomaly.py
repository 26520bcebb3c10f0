"""Online baselines: warm-up, z-scores against history, and robustness to a single spike."""

from __future__ import annotations

import random

from loopgate.detector.anomaly import EMPTY, Baseline, observe

PARAMS = {"alpha": 0.05, "warmup": 20, "z_threshold": 5.0, "min_relative_std": 0.02}


def feed(values: list[float], b: Baseline = EMPTY) -> Baseline:
    for v in values:
        b = observe(b, v, **PARAMS).baseline
    return b


def test_nothing_is_scored_before_the_warm_up_is_complete() -> None:
    b = EMPTY
    for v in [5.0] * 19 + [500.0]:
        obs = observe(b, v, **PARAMS)
        assert obs.z is None
        b = obs.baseline
    assert b.count == 20


def test_a_value_far_from_history_scores_in_standard_deviations() -> None:
    rng = random.Random(1)
    b = feed([rng.gauss(10.0, 0.5) for _ in range(200)])
    obs = observe(b, 10.0 + 8 * 0.5, **PARAMS)
    assert obs.z is not None and 6.0 < obs.z < 10.0
    assert abs(obs.expected_mean - 10.0) < 0.3


def test_normal_noise_stays_under_the_threshold() -> None:
    rng = random.Random(2)
    b = feed([rng.gauss(100.0, 5.0) for _ in range(50)])
    flagged = 0
    for _ in range(5000):
        obs = observe(b, rng.gauss(100.0, 5.0), **PARAMS)
        flagged += obs.z is not None and abs(obs.z) > PARAMS["z_threshold"]
        b = obs.baseline
    assert flagged <= 5


def test_one_spike_does_not_blind_the_baseline_to_the_next() -> None:
    rng = random.Random(3)
    b = feed([rng.gauss(10.0, 0.5) for _ in range(100)])
    b = observe(b, 1000.0, **PARAMS).baseline
    second = observe(b, 1000.0, **PARAMS)
    assert second.z is not None and second.z > 5.0
